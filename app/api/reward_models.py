"""``/api/v1/reward-models``: upload measurements (CSV), get a cross-validated, versioned reward model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.api.catalogues import spool_upload, upload_name
from app.api.deps import SESSION, get_settings
from app.api.errors import ApiError
from app.api.schemas import ErrorOut, RejectedRow, RewardModelOut, RewardModelUploadOut
from app.core.models import RewardModel
from app.core.settings import Settings
from app.libraries.reward_models import (
    MAX_ROWS,
    MODEL_NAME_PATTERN,
    RewardModelError,
    Upload,
    check_model_name,
    find_version,
    fit,
    latest_models,
    read_assay_csv,
    reward_model_root,
    store,
    versions_of,
)
from synflow.rewards.assay import GP_MAX_ROWS, MIN_ROWS, AssayData, AssayModel

router = APIRouter(prefix="/reward-models", tags=["reward models"])
_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz")
_SHOWN_REJECTED = 1000
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no such reward model or version"}
}


_UPLOAD_DESCRIPTION = f"""Upload a CSV of SMILES and measured values. Rows are screened (bad SMILES
or values are rejected with their line number; duplicates are averaged), then a random forest and, up to
{GP_MAX_ROWS} molecules, a Gaussian process with a Tanimoto kernel are cross-validated on Morgan
count fingerprints and the one with the lower RMSE is refitted on all data and stored as the next
version of ``name``. At least {MIN_ROWS} distinct molecules and at most {MAX_ROWS} rows; the fit
runs while the request waits (seconds for a few hundred rows, minutes at the limit). Use it in a
RunConfig as ``{{"type": "assay_model", "model": "NAME"}}`` (or ``"NAME@VERSION"``)."""


def reward_model_out(row: RewardModel, versions: int | None = None) -> RewardModelOut:
    metrics = row.metrics
    return RewardModelOut(
        name=row.name,
        version=row.version,
        reference=f"{row.name}@{row.version}",
        created_at=row.created_at,
        n_rows=row.n_rows,
        n_molecules=row.n_molecules,
        n_duplicates=row.n_duplicates,
        n_rejected=row.n_rejected,
        direction=row.direction,
        estimator=row.estimator,
        cv=metrics["cv"],
        folds=metrics["folds"],
        value_min=metrics["value_min"],
        value_max=metrics["value_max"],
        transform=metrics["transform"],
        smiles_column=row.smiles_column,
        value_column=row.value_column,
        path=row.path,
        sha256=row.sha256,
        versions=versions,
    )


async def _save(upload: UploadFile, settings: Settings) -> Path:
    """Stream the upload to a temporary file (bounded by ``max_upload_bytes``), never whole into memory."""
    name = upload_name(upload.filename).lower()
    if not name.endswith(_SUFFIXES):
        raise ApiError(
            422, f"file: expected a .csv or .tsv file (optionally .gz), got {name[:200]!r}", "file"
        )
    suffix = ".csv.gz" if name.endswith(".gz") else ".csv"
    root, limit = reward_model_root(settings), settings.max_upload_bytes
    partial, _ = await spool_upload(upload, root, limit, suffix=suffix)
    return partial


def _read_and_fit(path: Path, upload: Upload) -> tuple[AssayData, AssayModel]:
    data = read_assay_csv(path, upload.smiles_column, upload.value_column)
    return data, fit(data, upload.direction)


@router.post(
    "",
    status_code=201,
    response_model=RewardModelUploadOut,
    summary="Fit a reward model to uploaded measurements",
    description=_UPLOAD_DESCRIPTION,
    responses={
        413: {"model": ErrorOut, "description": "the file is larger than max_upload_bytes"},
        409: {"model": ErrorOut, "description": "another upload of this name took the version; retry"},
        422: {
            "model": ErrorOut,
            "description": "a bad field, a missing column, too few usable rows, too many",
        },
    },
)
async def upload_reward_model(
    name: str = Form(
        ..., pattern=MODEL_NAME_PATTERN, description="the model's name; a new upload adds a version"
    ),
    value_column: str = Form(..., min_length=1, max_length=200, description="the column of measured values"),
    smiles_column: str = Form("smiles", min_length=1, max_length=200),
    direction: Literal["higher", "lower"] = Form("higher", description="which values are better"),
    file: UploadFile = File(..., description="CSV (comma or tab separated, a header row), optionally .gz"),
    session: Session = SESSION,
    settings: Settings = Depends(get_settings),
) -> RewardModelUploadOut:
    """Upload measurements and fit the next version of ``name`` (see the description)."""
    try:
        check_model_name(name)
    except RewardModelError as error:
        raise ApiError(422, str(error), error.field) from None
    for field, value in (("smiles_column", smiles_column), ("value_column", value_column)):
        if "\x00" in value:
            raise ApiError(422, f"{field}: must not contain NUL characters", field)
    path = await _save(file, settings)
    upload = Upload(name, smiles_column, value_column, direction)
    try:
        # RDKit and scikit-learn are CPU work: off the event loop, so other requests keep answering.
        data, model = await run_in_threadpool(_read_and_fit, path, upload)
        row = store(session, settings, upload, path, model)
    except RewardModelError as error:
        raise ApiError(422, str(error), error.field) from None
    except IntegrityError:
        raise ApiError(409, f"name: another upload of {name!r} took this version; retry", "name") from None
    finally:
        path.unlink(missing_ok=True)  # moved beside the model when stored
    rejected = [RejectedRow(line=r.row, smiles=r.smiles, reason=r.reason) for r in data.rejected]
    out = reward_model_out(row, versions=row.version)
    return RewardModelUploadOut(**out.model_dump(), rejected_rows=rejected[:_SHOWN_REJECTED])


@router.get("", response_model=list[RewardModelOut], summary="Reward models, newest version of each")
def list_reward_models(session: Session = SESSION) -> list[RewardModelOut]:
    """Every reward model's newest version with its cross-validated metrics and number of versions."""
    return [reward_model_out(row, versions) for row, versions in latest_models(session)]


@router.get(
    "/{name}",
    response_model=list[RewardModelOut],
    summary="The versions of a reward model",
    responses=_ERRORS,
)
def reward_model_versions(
    name: str = PathParam(..., max_length=100), session: Session = SESSION
) -> list[RewardModelOut]:
    """Every version of ``name``, oldest first."""
    rows = versions_of(session, name)
    if not rows:
        raise ApiError(404, f"name: no reward model named {name!r}", "name")
    return [reward_model_out(row, len(rows)) for row in rows]


@router.get(
    "/{name}/{version}",
    response_model=RewardModelOut,
    summary="One version of a reward model",
    responses=_ERRORS,
)
def reward_model_version(
    name: str = PathParam(..., max_length=100),
    version: int = PathParam(..., ge=1),
    session: Session = SESSION,
) -> RewardModelOut:
    row = find_version(session, name, version)
    if row is None:
        raise ApiError(404, f"version: reward model {name!r} has no version {version}", "version")
    return reward_model_out(row)
