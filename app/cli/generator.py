"""``synflow generator export|import|sample``: share a trained generator as one safetensors file.

``export`` takes a run id of the service (its final checkpoint) or a checkpoint file written by
``synflow train``; ``import`` adds a file to the service's database as a finished run to sample from;
``sample`` draws from a file without the service, on the bundled library or ``--library``. The data
files the reward reads travel inside the file: ``import`` writes them to DATA_DIR/generators/<run id>/,
``sample`` to ``--reward-dir`` (default: a temporary folder, removed when it is done).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from app.cli.service import _DB_HELP, _DIR_HELP, load_settings
from app.core.db import Database
from app.core.models import Run
from synflow.config import ConfigError, parse_sampling_config

_OUT_HELP = "the generator file to write (.safetensors)"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def _export_checkpoint(checkpoint: Path, out: Path) -> None:
    """A checkpoint of ``synflow train``: its config names the library and templates to fingerprint."""
    from synflow.assembly import load_chemistry
    from synflow.bundle import export_generator
    from synflow.checkpoint import read_checkpoint
    from synflow.config import parse_run_config

    state = read_checkpoint(checkpoint)  # a file of our own trainer (pickle): only export yours
    env = parse_run_config(state["config"]).environment
    export_generator(state, load_chemistry(env), out)


def _export_run(run_id: str, out: Path, database_url: str | None, data_dir: Path | None) -> None:
    from app.runs.generators import GeneratorUnavailable, export_run_generator

    settings = load_settings(database_url, data_dir)
    db = Database.from_settings(settings)
    try:
        with db.session() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise typer.BadParameter(
                    f"no run {run_id!r} in the database, and no such checkpoint file", param_hint="RUN"
                )
            try:
                path = export_run_generator(session, settings, run)
            except GeneratorUnavailable as error:
                raise _fail(str(error)) from None
    finally:
        db.dispose()
    shutil.copyfile(path, out)


def _summary(path: Path) -> dict[str, Any]:
    from synflow.bundle import read_generator

    generator = read_generator(path)
    return {
        "file": str(path),
        "name": generator.name,
        "step": generator.step,
        "library": {k: generator.library.get(k) for k in ("name", "size", "sha256")},
        "templates": {k: generator.templates.get(k) for k in ("name", "count", "sha256")},
        "reward_files": [
            {"field": f.where, "name": f.name, "bytes": len(f.data)} for f in generator.reward_files
        ],
    }


@contextmanager
def _reward_folder(chosen: Path | None) -> Iterator[Path]:
    """``chosen``, or a temporary folder removed afterwards: where the reward files are written."""
    if chosen is not None:
        yield chosen
        return
    with tempfile.TemporaryDirectory(prefix="synflow-reward-files-") as folder:
        yield Path(folder)


def register(cli: typer.Typer) -> None:
    generator_cli = typer.Typer(
        help="Share a trained generator as one safetensors file.", no_args_is_help=True
    )
    cli.add_typer(generator_cli, name="generator")

    @generator_cli.command("export")
    def export(
        run: str = typer.Argument(..., help="a run id of the service, or a checkpoint file (last.pt)"),
        out: Path = typer.Option(..., "--out", "-o", dir_okay=False, help=_OUT_HELP),
        database_url: str | None = typer.Option(None, help=_DB_HELP),
        data_dir: Path | None = typer.Option(None, help=_DIR_HELP),
    ) -> None:
        """Write a trained policy, its config, its chemistry's fingerprints and the data files its
        reward reads (receptor, assay model, catalogue file; at most 64 MiB) as one file."""
        from synflow.bundle import RewardFileError
        from synflow.runtime import configure_torch_threads  # torch: 2.6 s, see `train`

        configure_torch_threads()
        try:
            if Path(run).is_file():
                _export_checkpoint(Path(run), out)
            else:
                _export_run(run, out, database_url, data_dir)
        except RewardFileError as error:
            raise _fail(str(error)) from None
        typer.echo(json.dumps(_summary(out)))

    @generator_cli.command("import")
    def import_(
        file: Path = typer.Argument(..., exists=True, dir_okay=False, help="a generator file"),
        name: str | None = typer.Option(None, help="the new run's name (default: NAME (imported))"),
        database_url: str | None = typer.Option(None, help=_DB_HELP),
        data_dir: Path | None = typer.Option(None, help=_DIR_HELP),
    ) -> None:
        """Add a generator file to the service as a finished run to sample from. Its library and
        templates must be ones this installation has; its reward code must be on the allowlist; the
        reward files it carries are written to DATA_DIR/generators/RUN_ID/."""
        from app.runs.configs import CodeNotAllowed
        from app.runs.generators import import_generator_file
        from synflow.bundle import ChemistryMismatch, GeneratorFileError
        from synflow.runtime import configure_torch_threads

        configure_torch_threads()
        settings = load_settings(database_url, data_dir)
        settings.ensure_dirs()
        db = Database.from_settings(settings)
        try:
            with db.session() as session:
                run = import_generator_file(session, settings, file, name)
                out = {"id": run.id, "name": run.name, "step": run.step, "status": run.status}
        except (GeneratorFileError, ChemistryMismatch, CodeNotAllowed, ConfigError) as error:
            raise _fail(f"{file}: {error}") from None
        finally:
            db.dispose()
        typer.echo(json.dumps(out))

    @generator_cli.command("sample")
    def sample(
        file: Path = typer.Argument(..., exists=True, dir_okay=False, help="a generator file"),
        n: int = typer.Option(100, "-n", min=1, help="number of molecules to draw"),
        temperature: float = typer.Option(1.0, help="sampling temperature (1: the trained distribution)"),
        out: Path | None = typer.Option(None, "--out", "-o", help="JSON lines file (default: stdout)"),
        library: Path | None = typer.Option(
            None, exists=True, dir_okay=False, help="building blocks (default: the bundled library)"
        ),
        templates: Path | None = typer.Option(
            None, exists=True, dir_okay=False, help="reaction templates (default: the bundled set)"
        ),
        trust_reward_code: bool = typer.Option(
            False, help="run the file's python or command reward components (only for files you trust)"
        ),
        reward_dir: Path | None = typer.Option(
            None,
            file_okay=False,
            help="where the reward files the generator carries (receptor, assay model, catalogue) are "
            "written (default: a temporary folder, removed afterwards)",
        ),
    ) -> None:
        """Draw N molecules (routes, rewards) from a generator file without the service, on the
        library and templates it was trained on (checked)."""
        from app.cli.train import SampleWriter
        from app.runs.configs import CodeNotAllowed, check_code_allowed
        from synflow.assembly import load_chemistry
        from synflow.bundle import (
            ChemistryMismatch,
            GeneratorFileError,
            check_chemistry,
            generator_checkpoint,
            load_policy,
            portable_config,
            read_generator,
            write_reward_files,
        )
        from synflow.runtime import configure_torch_threads
        from synflow.trainer import Trainer

        configure_torch_threads()
        try:
            sampling = parse_sampling_config({"count": n, "temperature": temperature})
            generator = read_generator(file)  # the embedded reward files checked against their SHA-256
            if not trust_reward_code:
                check_code_allowed(generator.config, [], [])
            config = portable_config(generator.config)  # an earlier synflow's file may name its pose folder
            env = config.environment.model_copy(update={"building_blocks": library, "templates": templates})
            config = config.model_copy(update={"environment": env})
            chemistry = load_chemistry(env)
            check_chemistry(generator, chemistry.library, chemistry.templates)
            load_policy(generator, chemistry)  # every tensor present, every shape right
        except CodeNotAllowed as error:
            raise _fail(f"{error}; pass --trust-reward-code to run it") from None
        except (GeneratorFileError, ChemistryMismatch, ConfigError) as error:
            raise _fail(f"{file}: {error}") from None
        sink = out.open("w") if out else sys.stdout
        try:
            writer = SampleWriter(sink)
            with _reward_folder(reward_dir) as folder:
                config = write_reward_files(generator, config, folder)
                with Trainer(config, callbacks=[writer], chemistry=chemistry) as trainer:
                    trainer.load_state(generator_checkpoint(generator, config))
                    outcome = trainer.draw(sampling)
        finally:
            if out:
                sink.close()
        typer.echo(f"{writer.count} molecules ({outcome.message})", err=True)
