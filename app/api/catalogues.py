"""Catalogues: reward components with their parameter schemas, building-block libraries, template sets."""

from __future__ import annotations

import gzip
import hashlib
import re
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.api.deps import SESSION, get_settings
from app.api.errors import ApiError
from app.api.schemas import LibraryOut, LibraryUploadOut, RejectedRow
from app.chem.parsing import DEFAULT_LIMITS, ChemLimits, ChemQueryError, check_smarts, check_smiles
from app.core.models import Library
from app.core.settings import Settings
from app.libraries.catalogue import (
    BUILDING_BLOCKS,
    TEMPLATES,
    Inspection,
    bundled_entries,
    inspect_building_blocks,
    inspect_templates,
    reward_components,
)
from app.libraries.purchasable import CATALOGUES, bundled_catalogues, inspect_catalogue
from synflow.config import PRESET_DESCRIPTIONS, PRESETS

router = APIRouter(tags=["catalogues"])
_ALLOWED_SUFFIXES = {".smi", ".smiles", ".txt", ".csv", ".tsv", ".sdf", ".sd", ".gz"}


@router.get("/catalogue/reward-components")
def list_reward_components() -> list[dict[str, Any]]:
    return reward_components()


@router.get("/catalogue/presets")
def list_presets() -> list[dict[str, Any]]:
    """The RunConfig presets: what each is for and the values it sets (explicit keys override them)."""
    return [
        {"name": name, "description": PRESET_DESCRIPTIONS[name], "sets": values, "default": name == "sample"}
        for name, values in PRESETS.items()
    ]


def ensure_bundled(request: Request, session: Session) -> None:
    """Record the bundled library and template set once per process (sizes need loading them)."""
    if getattr(request.app.state, "bundled_registered", False):
        return
    existing = {(kind, name) for kind, name in session.execute(select(Library.kind, Library.name))}
    for entry in [*bundled_entries(), *bundled_catalogues()]:
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
def list_libraries(request: Request, session: Session = SESSION) -> list[LibraryOut]:
    return _list(request, session, BUILDING_BLOCKS)


@router.get("/template-sets", response_model=list[LibraryOut])
def list_template_sets(request: Request, session: Session = SESSION) -> list[LibraryOut]:
    return _list(request, session, TEMPLATES)


UPLOAD_CHUNK = 1024 * 1024


def upload_name(filename: str | None) -> str:
    """The client's file name if it is a plain name; anything that looks like a path is refused
    (also URL-encoded). Stored files are named by their SHA-256, never by what the client sent."""
    name = filename or "upload.smi"
    decoded = unquote(unquote(name))
    bad = any(sep in text for text in (name, decoded) for sep in ("/", "\\", "\0"))
    if bad or decoded in ("", ".", "..") or decoded.startswith("..") or ":" in decoded:
        raise ApiError(422, f"file: the file name must be a plain name, not a path: {name[:200]!r}", "file")
    return name


async def spool_upload(
    upload: UploadFile, directory: Path, max_bytes: int, prefix: str = ".upload-", suffix: str = ""
) -> tuple[Path, str]:
    """Copy an upload in chunks (never whole into memory) to a new temporary file in ``directory``;
    (its path, its SHA-256). Past ``max_bytes`` a 413 naming ``file``, and nothing is left behind."""
    directory.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with tempfile.NamedTemporaryFile(dir=directory, prefix=prefix, suffix=suffix, delete=False) as handle:
        partial = Path(handle.name)
        try:
            while chunk := await upload.read(UPLOAD_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise ApiError(413, f"file: larger than {max_bytes} bytes", "file")
                digest.update(chunk)
                handle.write(chunk)
        except BaseException:
            handle.close()
            partial.unlink(missing_ok=True)
            raise
    return partial, digest.hexdigest()


async def _save_upload(upload: UploadFile, settings: Settings) -> tuple[Path, str]:
    """Copy the upload in chunks (never whole into memory) into the upload directory, hashing it."""
    name = upload_name(upload.filename)
    suffix = "".join(Path(name).suffixes[-2:]) if name.endswith(".gz") else Path(name).suffix
    if Path(name).suffix.lower() not in _ALLOWED_SUFFIXES:
        raise ApiError(
            422,
            f"file: unsupported file type {name[:200]!r} (use .smi, .csv, .sdf or .txt, optionally .gz)",
            "file",
        )
    root = settings.upload_root()
    partial, digest = await spool_upload(upload, root, settings.max_upload_bytes)
    path = root / f"{digest}{suffix.lower()}"
    partial.replace(path)
    return path, digest


def _text_lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", errors="replace") as handle:
        yield from handle


def screen_upload(path: Path, kind: str, limits: ChemLimits = DEFAULT_LIMITS) -> None:
    """Refuse a file whose chemistry would stall the parser (RDKit holds the GIL): a SMILES or
    SMARTS beyond ``app.chem`` limits, or an SDF record with too many atoms. Raises ``ApiError``."""
    sdf = ".sd" in "".join(path.suffixes).lower()
    csv = ".csv" in path.name.lower() or ".tsv" in path.name.lower()
    smiles_column, number = 0, 0
    try:
        for number, line in enumerate(_text_lines(path), start=1):
            if len(line) > 10 * limits.max_reaction_chars:
                raise ChemQueryError(f"the line is {len(line)} characters long")
            if sdf:
                _screen_sdf_line(line, limits)
                continue
            fields = [f.strip() for f in re.split(r"[,\t]", line)] if csv else line.split()
            if not fields or not fields[0] or fields[0].startswith("#"):
                continue
            lowered = [f.lower() for f in fields]
            if number == 1 and "smiles" in lowered:
                smiles_column = lowered.index("smiles")
                continue
            token = fields[smiles_column] if smiles_column < len(fields) else fields[0]
            if kind == TEMPLATES:
                check_smarts(token, limits, reaction=True)
            else:
                check_smiles(token, limits)
    except ChemQueryError as error:
        raise ApiError(422, f"file: line {number}: {error}", "file") from None
    except (OSError, EOFError, zlib.error) as error:
        raise ApiError(422, f"file: cannot be read: {error}", "file") from None


def _screen_sdf_line(line: str, limits: ChemLimits) -> None:
    """Atom counts from V2000 counts lines and V3000 ``COUNTS`` lines."""
    v3000 = re.match(r"M  V30 COUNTS (\d+)", line)
    v2000 = re.match(r"^([ \d]{3})([ \d]{3}).*V2000", line)
    count = int(v3000.group(1)) if v3000 else int(v2000.group(1)) if v2000 and v2000.group(1).strip() else 0
    if count > limits.max_atoms:
        raise ChemQueryError(f"an SDF record has {count} atoms; at most {limits.max_atoms} are accepted")


def _inspect(path: Path, kind: str) -> Inspection:
    screen_upload(path, kind)
    inspect = {
        BUILDING_BLOCKS: inspect_building_blocks, TEMPLATES: inspect_templates, CATALOGUES: inspect_catalogue,
    }[kind]
    try:
        return inspect(path)
    except (ValueError, OSError, EOFError, zlib.error) as error:
        raise ApiError(422, f"file: {error}", "file") from None


async def _upload(
    kind: str, name: str, upload: UploadFile, session: Session, settings: Settings
) -> LibraryUploadOut:
    if "\x00" in name:
        raise ApiError(422, "name: must not contain NUL characters", "name")
    if session.scalar(select(Library.id).where(Library.kind == kind, Library.name == name)) is not None:
        raise ApiError(409, f"name: a {kind} entry named {name!r} exists", "name")
    path, digest = await _save_upload(upload, settings)
    # RDKit parsing is CPU work: off the event loop, so other requests (and /healthz) keep answering.
    result = await run_in_threadpool(_inspect, path, kind)
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
    session: Session = SESSION,
    settings: Settings = Depends(get_settings),
) -> LibraryUploadOut:
    """Upload a building-block file; the answer lists every rejected row with its reason. Use the
    returned ``path`` as ``environment.building_blocks`` in a RunConfig."""
    return await _upload(BUILDING_BLOCKS, name, file, session, settings)


@router.post("/template-sets", status_code=201, response_model=LibraryUploadOut)
async def upload_template_set(
    name: str = Form(..., min_length=1, max_length=200),
    file: UploadFile = File(...),
    session: Session = SESSION,
    settings: Settings = Depends(get_settings),
) -> LibraryUploadOut:
    """Upload a template file (one reaction SMARTS per line, optional name); use ``path`` as
    ``environment.templates``."""
    return await _upload(TEMPLATES, name, file, session, settings)


@router.get(
    "/catalogues",
    response_model=list[LibraryOut],
    summary="List purchasability catalogues",
    description="The bloom filter bundled with molbloom (`zinc-instock-mini`, bundled) and every "
    "uploaded catalogue. Use a name as `source` of a `purchasable` reward component.",
)
def list_catalogues(request: Request, session: Session = SESSION) -> list[LibraryOut]:
    return _list(request, session, CATALOGUES)


@router.post(
    "/catalogues",
    status_code=201,
    response_model=LibraryUploadOut,
    summary="Upload a purchasability catalogue",
    description="A molecule file (.smi, .csv with a SMILES column, .sdf; optionally .gz) of molecules one "
    "can buy. Each entry is matched by the InChIKey of its largest fragment, neutralised; `size` counts "
    "distinct molecules and `rejected_rows` lists every row that gave none, with the reason. Use the "
    "name as `source` of a `purchasable` reward component: the run is pinned to this file when it is "
    "created.",
    responses={
        409: {"description": "a catalogue with this name exists (`zinc-instock-mini` is bundled)"},
        413: {"description": "the file is larger than the server accepts"},
        422: {"description": "the file type, a row's chemistry, or the whole file is unusable"},
    },
)
async def upload_catalogue(
    request: Request,
    name: str = Form(..., min_length=1, max_length=200),
    file: UploadFile = File(...),
    session: Session = SESSION,
    settings: Settings = Depends(get_settings),
) -> LibraryUploadOut:
    ensure_bundled(request, session)  # so a name taken by the bundled filter is refused (409)
    return await _upload(CATALOGUES, name, file, session, settings)
