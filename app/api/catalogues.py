"""Catalogues: reward components with their parameter schemas, building-block libraries, template sets."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.api.deps import get_session, get_settings
from app.api.errors import ApiError
from app.catalogue import (
    BUILDING_BLOCKS,
    TEMPLATES,
    CatalogueUnavailable,
    bundled_entries,
    inspect_building_blocks,
    inspect_templates,
    reward_components,
)
from app.models import Library
from app.schemas import LibraryOut, LibraryUploadOut, RejectedRow
from app.settings import Settings

router = APIRouter(tags=["catalogues"])
_ALLOWED_SUFFIXES = {".smi", ".smiles", ".txt", ".csv", ".tsv", ".sdf", ".sd", ".gz"}


@router.get("/catalogue/reward-components")
def list_reward_components() -> list[dict[str, Any]]:
    return reward_components()


def ensure_bundled(request: Request, session: Session) -> None:
    """Record the bundled library and template set once per process (sizes need loading them)."""
    if getattr(request.app.state, "bundled_registered", False):
        return
    existing = {(kind, name) for kind, name in session.execute(select(Library.kind, Library.name))}
    for entry in bundled_entries():
        if (entry["kind"], entry["name"]) not in existing:
            session.add(Library(name=entry["name"], kind=entry["kind"], bundled=True, size=entry["size"]))
    try:
        session.commit()
    except IntegrityError:
        # Two first requests (or two API processes) raced to register the same bundled entry:
        # the other one won, which is all we wanted.
        session.rollback()
    request.app.state.bundled_registered = True


def library_out(row: Library) -> LibraryOut:
    return LibraryOut(
        id=row.id,
        name=row.name,
        kind=row.kind,
        bundled=row.bundled,
        size=row.size,
        rejected=row.rejected,
        path=row.path,
        created_at=row.created_at,
    )


def _list(request: Request, session: Session, kind: str) -> list[LibraryOut]:
    ensure_bundled(request, session)
    rows = session.scalars(select(Library).where(Library.kind == kind).order_by(Library.id))
    return [library_out(r) for r in rows]


@router.get("/libraries", response_model=list[LibraryOut])
def list_libraries(request: Request, session: Session = Depends(get_session)) -> list[LibraryOut]:
    return _list(request, session, BUILDING_BLOCKS)


@router.get("/template-sets", response_model=list[LibraryOut])
def list_template_sets(request: Request, session: Session = Depends(get_session)) -> list[LibraryOut]:
    return _list(request, session, TEMPLATES)


async def _save_upload(upload: UploadFile, settings: Settings) -> tuple[Path, str]:
    name = Path(upload.filename or "upload.smi").name
    suffix = "".join(Path(name).suffixes[-2:]) if name.endswith(".gz") else Path(name).suffix
    if Path(name).suffix.lower() not in _ALLOWED_SUFFIXES:
        raise ApiError(
            422,
            f"file: unsupported file type {name!r} (use .smi, .csv, .sdf or .txt, optionally .gz)",
            "file",
        )
    data = await upload.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, f"file: larger than {settings.max_upload_bytes} bytes", "file")
    digest = hashlib.sha256(data).hexdigest()
    path = settings.upload_root() / f"{digest}{suffix.lower()}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, digest


async def _upload(
    kind: str, name: str, upload: UploadFile, session: Session, settings: Settings
) -> LibraryUploadOut:
    if session.scalar(select(Library.id).where(Library.kind == kind, Library.name == name)) is not None:
        raise ApiError(409, f"name: a {kind} entry named {name!r} exists", "name")
    path, digest = await _save_upload(upload, settings)
    try:
        result = inspect_building_blocks(path) if kind == BUILDING_BLOCKS else inspect_templates(path)
    except CatalogueUnavailable as error:
        raise ApiError(503, str(error)) from None
    except (ValueError, OSError) as error:
        raise ApiError(422, f"file: {error}", "file") from None
    rejected = [RejectedRow(**r) for r in result.rejected_rows]
    if not result.usable:
        reasons = "; ".join(f"line {r.line}: {r.reason}" for r in rejected[:5]) or "no usable entries"
        raise ApiError(422, f"file: not usable ({reasons})", "file")
    row = Library(
        name=name,
        kind=kind,
        path=str(path.resolve()),
        size=result.size,
        rejected=len(rejected),
        sha256=digest,
    )
    session.add(row)
    session.flush()
    return LibraryUploadOut(**library_out(row).model_dump(), rejected_rows=rejected)


@router.post("/libraries", status_code=201, response_model=LibraryUploadOut)
async def upload_library(
    name: str = Form(..., min_length=1, max_length=200),
    file: UploadFile = File(...),
    session: Session = Depends(get_session),
    settings: Settings = Depends(get_settings),
) -> LibraryUploadOut:
    """Upload a building-block file; the answer lists every rejected row with its reason. Use the
    returned ``path`` as ``environment.building_blocks`` in a RunConfig."""
    return await _upload(BUILDING_BLOCKS, name, file, session, settings)


@router.post("/template-sets", status_code=201, response_model=LibraryUploadOut)
async def upload_template_set(
    name: str = Form(..., min_length=1, max_length=200),
    file: UploadFile = File(...),
    session: Session = Depends(get_session),
    settings: Settings = Depends(get_settings),
) -> LibraryUploadOut:
    """Upload a template file (one reaction SMARTS per line, optional name); use ``path`` as
    ``environment.templates``."""
    return await _upload(TEMPLATES, name, file, session, settings)
