"""``synflow reward-model fit|list``: fit a reward model to your measurements without the service.

``fit`` runs the service's fit (``POST /api/v1/reward-models``: rows screened, a random forest and a
Tanimoto GP cross-validated, the better one refitted) on a CSV on this machine, with no upload size or
request time to bound it. ``-o FILE.npz`` writes the model for ``synflow train`` / ``synflow score``
(``"model": "FILE.npz"``); ``--name NAME`` stores it in the service's database and data directory as
the next version of NAME, which runs then name (``"model": "NAME@VERSION"``) as if it was uploaded.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, cast

import typer

from app.cli.service import _DB_HELP, _DIR_HELP, load_settings
from app.core.db import Database

# Above the service's per-upload cap (app.libraries.reward_models.MAX_ROWS): offline, a forest on
# 50,000 molecules is minutes of CPU; the GP is only considered up to GP_MAX_ROWS molecules.
DEFAULT_MAX_ROWS = 50_000
_SHOWN_REJECTED = 20
# the CSV reader's field names → this command's options
_OPTIONS = {"smiles_column": "--smiles-column", "value_column": "--value-column", "file": "CSV"}


def _fit(csv: Path, smiles_column: str, value_column: str, direction: str, max_rows: int) -> Any:
    from app.libraries.reward_models import RewardModelError, fit, read_assay_csv
    from synflow.rewards.assay import Direction

    try:
        data = read_assay_csv(csv, smiles_column, value_column, max_rows)
        model = fit(data, cast(Direction, direction))
    except RewardModelError as error:
        raise typer.BadParameter(error.message, param_hint=_OPTIONS.get(error.field, error.field)) from None
    for rejected in data.rejected[:_SHOWN_REJECTED]:
        typer.echo(f"rejected line {rejected.row}: {rejected.smiles!r}: {rejected.reason}", err=True)
    if len(data.rejected) > _SHOWN_REJECTED:
        typer.echo(f"... and {len(data.rejected) - _SHOWN_REJECTED} more rejected rows", err=True)
    return model


def _store(csv: Path, name: str, model: Any, upload: Any, database_url: str | None,
           data_dir: Path | None) -> dict[str, Any]:
    from sqlalchemy.exc import IntegrityError

    from app.libraries.reward_models import RewardModelError, reward_model_root, store

    settings = load_settings(database_url, data_dir)
    root = reward_model_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    # `store` moves the CSV beside the model: give it a copy, never the user's file
    with tempfile.NamedTemporaryFile(dir=root, prefix=".cli-", suffix=".csv", delete=False) as handle:
        copy = Path(handle.name)
    db = Database.from_settings(settings)
    try:
        shutil.copyfile(csv, copy)
        with db.session() as session:
            try:
                row = store(session, settings, upload, copy, model)
            except RewardModelError as error:
                raise typer.BadParameter(error.message, param_hint="--name") from None
            except IntegrityError:
                raise typer.BadParameter(
                    f"another fit of {name!r} took this version; retry", param_hint="--name"
                ) from None
            return {"reference": f"{row.name}@{row.version}", "file": row.path, "sha256": row.sha256}
    finally:
        copy.unlink(missing_ok=True)
        db.dispose()


def register(cli: typer.Typer) -> None:
    group = typer.Typer(
        help="Reward models fitted to your own measurements (the `assay_model` component).",
        no_args_is_help=True,
    )

    @group.command("fit")
    def fit_command(
        csv: Path = typer.Argument(
            ..., exists=True, dir_okay=False, help="CSV or TSV with a header row, optionally .gz"
        ),
        value_column: str = typer.Option(..., "--value-column", help="the column of measured values"),
        smiles_column: str = typer.Option("smiles", "--smiles-column"),
        direction: str = typer.Option("higher", "--direction", help="higher | lower: the better values"),
        out: Path | None = typer.Option(None, "-o", "--out", help="write the model here (.npz)"),
        name: str | None = typer.Option(
            None, "--name", help="store it in the service as the next version of NAME (instead of -o)"
        ),
        max_rows: int = typer.Option(DEFAULT_MAX_ROWS, "--max-rows", min=1, help="refuse larger files"),
        database_url: str | None = typer.Option(None, help=_DB_HELP),
        data_dir: Path | None = typer.Option(None, help=_DIR_HELP),
    ) -> None:
        """Fit a cross-validated model to a CSV of SMILES and values; print its CV metrics as JSON."""
        from app.libraries.reward_models import RewardModelError, Upload, check_model_name
        from synflow.rewards.assay import Direction

        if direction not in ("higher", "lower"):
            raise typer.BadParameter("use higher or lower", param_hint="--direction")
        if (out is None) == (name is None):
            raise typer.BadParameter("give one of -o FILE.npz and --name NAME", param_hint="-o/--name")
        if out is not None and out.suffix != ".npz":
            raise typer.BadParameter(f"{out} must end with .npz", param_hint="-o")
        if name is not None:
            try:
                check_model_name(name)
            except RewardModelError as error:
                raise typer.BadParameter(error.message, param_hint="--name") from None
        model = _fit(csv, smiles_column, value_column, direction, max_rows)
        report = model.report
        summary: dict[str, Any] = {
            "estimator": model.estimator,
            "cv": report["cv"],
            "folds": report["folds"],
            "molecules": report["n_molecules"],
            "rejected": report["n_rejected"],
        }
        if out is not None:
            summary.update(file=str(out), sha256=model.save(out))
        else:
            assert name is not None
            upload = Upload(name, smiles_column, value_column, cast(Direction, direction))
            summary.update(_store(csv, name, model, upload, database_url, data_dir))
        typer.echo(json.dumps(summary))

    @group.command("list")
    def list_command(
        database_url: str | None = typer.Option(None, help=_DB_HELP),
        data_dir: Path | None = typer.Option(None, help=_DIR_HELP),
    ) -> None:
        """The service's stored models: the newest version of each, its estimator and CV R²."""
        from app.libraries.reward_models import latest_models

        db = Database.from_settings(load_settings(database_url, data_dir))
        try:
            with db.session() as session:
                for row, versions in latest_models(session):
                    r2 = row.metrics["cv"][row.estimator]["r2"]
                    typer.echo(
                        f"{row.name}@{row.version}\t{versions} version(s)\t{row.estimator}\t"
                        f"CV R² {r2:.3f}\t{row.n_molecules} molecules"
                    )
        finally:
            db.dispose()

    cli.add_typer(group, name="reward-model")
