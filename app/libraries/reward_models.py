"""Reward models fitted to uploaded measurements, seen from the service: read and screen the CSV, fit
(``synflow.rewards.assay``), store each version's model and data under ``DATA_DIR/reward-models``,
and resolve a RunConfig's ``assay_model`` components to stored versions."""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.models import RewardModel
from app.core.settings import Settings
from synflow.config import ConfigError, RunConfig
from synflow.rewards.assay import (
    AssayData,
    AssayDataError,
    AssayModel,
    Direction,
    collect_assay_data,
    fit_assay_model,
    read_csv_rows,
)
from synflow.rewards.components import MODEL_REFERENCE, AssayModelComponent, is_model_reference

# The fit runs while the upload request waits (in a worker thread, so other requests are served):
# a forest of 200 trees on 5,000 molecules, cross-validated 5 times, takes a few minutes on two
# cores; beyond that, ``synflow reward-model fit`` fits offline (and ``--name`` stores it here).
MAX_ROWS = 5000
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class RewardModelError(ValueError):
    """An upload that cannot become a model; ``field`` names the form field (HTTP 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def check_model_name(name: str) -> None:
    """A model's name: ``MODEL_NAME_PATTERN``, and not ending in ``.npz`` (a config would read it as
    a file). Raises ``RewardModelError`` naming ``name``."""
    if not re.match(MODEL_NAME_PATTERN, name):
        raise RewardModelError("name", f"{name[:200]!r}: letters, digits, '_', '.', '-' (up to 100)")
    if name.endswith(".npz"):
        raise RewardModelError("name", "must not end with .npz (that reads as a file)")


def reward_model_root(settings: Settings) -> Path:
    return settings.data_dir / "reward-models"


def _text_lines(path: Path) -> Iterator[str]:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", errors="replace", newline="") as handle:
        yield from handle


def read_assay_csv(
    path: Path, smiles_column: str, value_column: str, max_rows: int | None = None
) -> AssayData:
    """The usable rows of an uploaded CSV, averaged per molecule, and every rejected row with its
    line and reason. Every SMILES is bounded (length, atoms) before RDKit sanitises it."""
    rows = read_csv_rows(_text_lines(path), smiles_column, value_column)
    try:
        return collect_assay_data(_bounded(rows, max_rows or MAX_ROWS))
    except AssayDataError as error:
        field, _, message = str(error).partition(": ")
        raise RewardModelError(field if message else "file", message or str(error)) from None
    except csv.Error as error:
        raise RewardModelError("file", f"not a readable CSV: {error}") from None
    except (OSError, EOFError, zlib.error) as error:
        raise RewardModelError("file", f"cannot be read: {error}") from None


def _bounded(rows: Iterator[tuple[int, str, str]], max_rows: int) -> Iterator[tuple[int, str, str]]:
    for count, row in enumerate(rows, start=1):
        if count > max_rows:
            raise RewardModelError(
                "file",
                f"more than {max_rows} data rows, the limit of this fit (larger files: "
                "`synflow reward-model fit --max-rows N`, then `--name` to store the model here)",
            )
        yield row


def fit(data: AssayData, direction: Direction) -> AssayModel:
    """CPU work (seconds to minutes): call it off the event loop."""
    try:
        return fit_assay_model(data, direction)
    except AssayDataError as error:
        field, _, message = str(error).partition(": ")
        raise RewardModelError(field if message else "file", message or str(error)) from None


@dataclass(frozen=True)
class Upload:
    name: str
    smiles_column: str
    value_column: str
    direction: Direction


def store(
    session: Session, settings: Settings, upload: Upload, csv_path: Path, model: AssayModel
) -> RewardModel:
    """Write the next version of ``upload.name``: its model file, its CSV beside it, and the row.
    Two uploads racing for one version number: the loser's flush fails on the unique constraint
    and its files are removed (nothing stored earlier is touched)."""
    version = (
        session.scalar(select(func.max(RewardModel.version)).where(RewardModel.name == upload.name)) or 0
    ) + 1
    folder = reward_model_root(settings).resolve() / upload.name
    stem = f"{upload.name}-v{version}"
    model_path, data_path = folder / f"{stem}.npz", folder / f"{stem}.csv"
    if model_path.exists():  # never overwrite a file a run may use
        raise RewardModelError(
            "name",
            f"{model_path.name} already exists: another upload of {upload.name!r} is being stored "
            "(retry), or its database row was removed by hand (move the file away)",
        )
    sha256 = model.save(model_path)
    csv_path.replace(data_path)
    report = model.report
    row = RewardModel(
        name=upload.name,
        version=version,
        n_rows=report["n_rows"],
        n_molecules=report["n_molecules"],
        n_duplicates=report["n_duplicates"],
        n_rejected=report["n_rejected"],
        direction=upload.direction,
        estimator=model.estimator,
        metrics=_metrics(model),
        smiles_column=upload.smiles_column,
        value_column=upload.value_column,
        path=str(model_path),
        sha256=sha256,
    )
    session.add(row)
    try:
        session.flush()
    except Exception:
        model_path.unlink(missing_ok=True)
        data_path.unlink(missing_ok=True)
        raise
    return row


def _metrics(model: AssayModel) -> dict[str, Any]:
    report = model.report
    keys = ("cv", "folds", "seed", "gp_considered", "value_min", "value_max")
    transform = {"low": model.transform.low, "high": model.transform.high}
    return {**{k: report[k] for k in keys}, "transform": transform}


def latest_models(session: Session) -> list[tuple[RewardModel, int]]:
    """The newest version of every name, with its number of versions, by name."""
    counts = (
        select(RewardModel.name, func.max(RewardModel.version).label("latest"), func.count().label("n"))
        .group_by(RewardModel.name)
        .subquery()
    )
    rows = session.execute(
        select(RewardModel, counts.c.n)
        .join(counts, (RewardModel.name == counts.c.name) & (RewardModel.version == counts.c.latest))
        .order_by(RewardModel.name)
    )
    return [(model, int(n)) for model, n in rows]


def versions_of(session: Session, name: str) -> list[RewardModel]:
    return list(
        session.scalars(select(RewardModel).where(RewardModel.name == name).order_by(RewardModel.version))
    )


def find_version(session: Session, name: str, version: int | None) -> RewardModel | None:
    """``name@version``, or the newest version of ``name`` when ``version`` is None."""
    query = select(RewardModel).where(RewardModel.name == name)
    query = query.where(RewardModel.version == version) if version is not None else query
    return session.scalars(query.order_by(RewardModel.version.desc()).limit(1)).first()


def resolve_assay_models(config: RunConfig, session: Session) -> RunConfig:
    """Pin every ``assay_model`` component to a stored version: ``model`` becomes the file's path and
    ``reference`` / ``sha256`` record ``name@version`` and its content, so the stored config says
    which version the run used. ``model`` may be a name, ``name@version``, or the path of a stored
    version (a stored config submitted again); anything else is refused, so an API caller cannot
    point a reward at an arbitrary file. Raises ``ConfigError`` naming ``reward.components.<i>.model``."""
    components = list(config.reward.components)
    errors: list[tuple[str, str]] = []
    for i, component in enumerate(components):
        if not isinstance(component, AssayModelComponent):
            continue
        field = f"reward.components.{i}.model"
        row, problem = _lookup(session, component.model)
        if row is None:
            errors.append((field, problem))
        elif component.sha256 is not None and component.sha256 != row.sha256:
            errors.append((f"reward.components.{i}.sha256", f"not the SHA-256 of {row.name}@{row.version}"))
        else:
            components[i] = component.model_copy(
                update={"model": row.path, "reference": f"{row.name}@{row.version}", "sha256": row.sha256}
            )
    if errors:
        raise ConfigError(errors)
    reward = config.reward.model_copy(update={"components": components})
    return config.model_copy(update={"reward": reward})


def _lookup(session: Session, model: str) -> tuple[RewardModel | None, str]:
    if "\x00" in model:  # PostgreSQL text cannot hold one: refuse before querying
        return None, "must not contain NUL characters"
    if is_model_reference(model):
        match = MODEL_REFERENCE.match(model)
        assert match is not None
        name, version = match["name"], match["version"]
        row = find_version(session, name, int(version) if version else None)
        if row is not None:
            return row, ""
        known = versions_of(session, name)
        if known:
            listed = ", ".join(str(r.version) for r in known)
            return None, f"reward model {name!r} has no version {version} (versions: {listed})"
        return None, f"no reward model named {name!r} (upload one: POST /api/v1/reward-models)"
    row = session.scalars(select(RewardModel).where(RewardModel.path == model)).first()
    if row is not None:
        return row, ""
    return None, "give a stored reward model's name or `name@version`, not a file path"
