"""Sharing trained generators: ``GET /runs/{run_id}/generator`` downloads a finished run's policy as
one safetensors file; ``POST /generators`` imports such a file as a new finished run to sample from.

The training stack (torch) is imported inside the endpoints: the API image without it still starts,
and answers these two with 503.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from app.api.catalogues import spool_upload, upload_name
from app.api.deps import SESSION, get_settings
from app.api.errors import ApiError
from app.api.runs import get_run, run_out
from app.api.schemas import ErrorOut, RunOut
from app.core.settings import Settings

router = APIRouter(tags=["generators"])

_IMPORT_DESCRIPTION = """Upload a generator file (from ``GET /runs/{run_id}/generator`` of this or
another installation). It is read with safetensors (tensors and JSON, never pickle: nothing in it can
run) and checked: format and version, its RunConfig, its reward code against this server's allowlist
(403), its building-block library and template set against the ones this installation has (the
bundled defaults and every uploaded entry: the same SHA-256 fingerprint, else 409 naming the first
differing block or template), and every weight tensor against the policy its config describes. It
becomes a new training run, ``succeeded``, with the config re-pointed at the matching library and
templates here; ``POST /runs/{id}/sample`` then draws from it. The data files its reward reads
(docking receptor, assay model, catalogue file), embedded in the file, are checked against their
SHA-256 (422, field ``file``, for a damaged or altered one), written under
``DATA_DIR/generators/{run_id}/`` and the config re-pointed at them. The file is limited by
``max_upload_bytes``."""


def _generators() -> ModuleType:
    """``app.runs.generators`` (torch, RDKit), or 503 where the training stack is not installed."""
    try:
        from app.runs import generators
    except ImportError as error:
        raise ApiError(
            503,
            f"generator files need the training stack (torch) on the API server: {error}; use the full "
            "image or `synflow generator export|import`",
        ) from None
    return generators


@router.get(
    "/runs/{run_id}/generator",
    response_class=FileResponse,
    summary="Download a finished run's generator (safetensors)",
    description="The run's trained sampling policy as one safetensors file: the weights, the resolved "
    "RunConfig and the fingerprints of its building-block library and template set (no optimiser, "
    "replay or RNG state: the file samples, it does not resume training), and the data files its reward "
    "reads (docking receptor, assay model, catalogue file; at most 64 MiB in all). Import it elsewhere "
    "with ``POST /generators`` or `synflow generator import`.",
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "a .safetensors file"},
        404: {"model": ErrorOut, "description": "no such run"},
        409: {
            "model": ErrorOut,
            "description": "the run has no final checkpoint (not a succeeded training; field run_id), "
            "or a reward file cannot be embedded (missing, changed, past 64 MiB; field "
            "reward.components.<i>.<field>)",
        },
        503: {"model": ErrorOut, "description": "this API server has no training stack (torch)"},
    },
)
def download_generator(
    run_id: str, session: Session = SESSION, settings: Settings = Depends(get_settings)
) -> FileResponse:
    run = get_run(session, run_id)
    generators = _generators()
    from synflow.bundle import RewardFileError  # torch: after the 503 check

    try:
        path = generators.export_run_generator(session, settings, run)
    except generators.GeneratorUnavailable as error:
        raise ApiError(409, f"run_id: {error}", "run_id") from None
    except RewardFileError as error:
        raise ApiError(409, str(error), error.field) from None
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", run.name).strip("-")[:60] or "run"
    return FileResponse(
        path, media_type="application/octet-stream", filename=f"{slug}-{run.id[:8]}.safetensors"
    )


async def _save(upload: UploadFile, settings: Settings) -> Path:
    """Stream the upload to a temporary file under the data directory, bounded by max_upload_bytes."""
    upload_name(upload.filename or "generator.safetensors")  # refuses names that look like paths
    partial, _ = await spool_upload(
        upload, settings.data_dir / "incoming", settings.max_upload_bytes, ".generator-", ".st"
    )
    return partial


@router.post(
    "/generators",
    status_code=201,
    response_model=RunOut,
    summary="Import a generator file as a new run",
    description=_IMPORT_DESCRIPTION,
    responses={
        403: {"model": ErrorOut, "description": "its reward code is not on this server's allowlist"},
        409: {
            "model": ErrorOut,
            "description": "its library or templates are not on this installation (field library or "
            "templates; the message names the first difference)",
        },
        413: {"model": ErrorOut, "description": "the file is larger than max_upload_bytes"},
        422: {
            "model": ErrorOut,
            "description": "not a generator file: format, version, metadata, tensors, an embedded reward "
            "file whose SHA-256 does not match (field file)",
        },
        503: {"model": ErrorOut, "description": "this API server has no training stack (torch)"},
    },
)
async def import_generator(
    file: UploadFile = File(..., description="a .safetensors generator file"),
    name: str | None = Form(None, min_length=1, max_length=200, description="the new run's name"),
    session: Session = SESSION,
    settings: Settings = Depends(get_settings),
) -> RunOut:
    if name is not None and "\x00" in name:
        raise ApiError(422, "name: must not contain NUL characters", "name")
    generators = _generators()
    from synflow.bundle import ChemistryMismatch, GeneratorFileError  # torch: after the 503 check

    path = await _save(file, settings)
    try:
        candidates = generators.import_candidates(session)
        session.commit()  # hand the connection back while the checks run (seconds on a big library)
        try:
            # RDKit and torch are CPU work: off the event loop, so other requests keep answering
            prepared = await run_in_threadpool(generators.prepare_import, path, candidates, settings, name)
        except GeneratorFileError as error:
            raise ApiError(422, f"file: {error}", "file") from None
        except ChemistryMismatch as error:
            raise ApiError(409, str(error), error.field) from None
        run = generators.store_import(session, settings, prepared, path)
        return run_out(run, session, detail=True)
    finally:
        path.unlink(missing_ok=True)
