"""``synflow serve``, ``worker``, ``db upgrade``, ``export``, ``token create|list|revoke``: service commands.

Each reads ``Settings`` from the environment; ``--database-url`` and ``--data-dir`` override it.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, cast, get_args

import typer
import uvicorn

from app.core.auth import create_token, list_tokens, revoke_token
from app.core.db import Database
from app.core.migrate import upgrade
from app.core.models import Run
from app.core.settings import Settings
from app.main import SERVE_SETTINGS_VARIABLE, create_app
from app.runs.export import ExportFormat, export_stream
from app.runs.poses import run_pose_dir

_DB_HELP = "SQLAlchemy URL (env SYNFLOW_DATABASE_URL); default sqlite under the data dir"
_DIR_HELP = "data directory for the SQLite file, checkpoints and uploads (env SYNFLOW_DATA_DIR)"


def load_settings(database_url: str | None, data_dir: Path | None) -> Settings:
    settings = Settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    if data_dir:
        settings = settings.model_copy(update={"data_dir": data_dir})
    return settings


def default_api_workers() -> int:
    """One API process per core (at most 8): the training worker runs in its own process anyway."""
    return max(1, min(os.cpu_count() or 1, 8))


def _serve(settings: Settings, host: str, port: int, workers: int, api_workers: int, migrate: bool) -> None:
    settings.ensure_dirs()
    if migrate:
        upgrade(settings.resolved_database_url())
    procs = []
    if workers:
        # the trainer stack (torch, PyG: 2.6 s measured with -X importtime) loads only with workers, and
        # then only in their processes; the API alone runs without torch installed (the slim image)
        from app.worker.process import worker_process_main

        context = multiprocessing.get_context("spawn")
        args = (settings.model_dump_json(), os.getpid())
        procs = [context.Process(target=worker_process_main, args=args, daemon=False) for _ in range(workers)]
    for proc in procs:
        proc.start()
    # uvicorn re-raises SIGTERM after its graceful shutdown with the previous handler in place; with
    # the default one the process would die before ``finally`` and leave the workers orphaned.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    metrics_dir = None
    # keep idle connections 75 s (uvicorn's default is 5 s): a client reusing a connection just as
    # the server drops it gets a read error; benchmarks/load.py with think time hit exactly that
    options: dict[str, Any] = {"host": host, "port": port, "log_level": "info", "timeout_keep_alive": 75}
    try:
        if api_workers == 1:
            uvicorn.run(create_app(settings), **options)
        else:
            # N processes share the socket; each builds its app from the settings resolved here, and
            # their Prometheus counters meet in one directory (prometheus_client's multiprocess mode)
            metrics_dir = tempfile.mkdtemp(prefix="synflow-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            os.environ[SERVE_SETTINGS_VARIABLE] = settings.model_dump_json()
            uvicorn.run("app.main:create_app_from_environment", factory=True, workers=api_workers, **options)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(timeout=30)
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _export(settings: Settings, run_id: str, fmt: ExportFormat, out: Path | None) -> None:

    db = Database.from_settings(settings)
    with db.session() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise typer.BadParameter(f"no run {run_id!r}", param_hint="RUN_ID")
        pose_dir = run_pose_dir(session, run, settings.data_dir)  # SDF: docked poses as 3-D blocks
    handle = out.open("w") if out else sys.stdout
    try:
        for chunk in export_stream(db, run_id, fmt, pose_dir):
            handle.write(chunk)
    finally:
        if out:
            handle.close()
        db.dispose()


def register(cli: typer.Typer) -> None:
    db_cli = typer.Typer(help="Database schema commands.", no_args_is_help=True)
    token_cli = typer.Typer(help="API tokens (bearer auth).", no_args_is_help=True)
    cli.add_typer(db_cli, name="db")
    cli.add_typer(token_cli, name="token")

    @cli.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1"),
        port: int = typer.Option(8000),
        workers: int = typer.Option(1, min=0, help="embedded worker processes (0: API only)"),
        api_workers: int | None = typer.Option(
            None, min=1, help="API processes sharing the port (default: one per core, at most 8)"
        ),
        migrate: bool = typer.Option(True, help="upgrade the schema before serving"),
        database_url: str | None = typer.Option(None, help=_DB_HELP),
        data_dir: Path | None = typer.Option(None, help=_DIR_HELP),
    ) -> None:
        """The REST API (OpenAPI at /docs) in N processes, with embedded training workers in their own
        processes; SQLite by default."""
        n_api = api_workers if api_workers is not None else default_api_workers()
        _serve(load_settings(database_url, data_dir), host, port, workers, n_api, migrate)

    @cli.command("worker")
    def worker(
        database_url: str | None = typer.Option(None, help=_DB_HELP),
        data_dir: Path | None = typer.Option(None, help=_DIR_HELP),
    ) -> None:
        """Claim and train queued runs until stopped (SIGTERM hands the current run back)."""
        from app.worker.process import worker_process_main  # the trainer stack: 2.6 s, see _serve

        worker_process_main(load_settings(database_url, data_dir).model_dump_json())

    @db_cli.command("upgrade")
    def db_upgrade(
        revision: str = typer.Argument("head"),
        database_url: str | None = typer.Option(None, help=_DB_HELP),
        data_dir: Path | None = typer.Option(None, help=_DIR_HELP),
    ) -> None:
        """Apply Alembic migrations up to REVISION (default: the newest)."""
        settings = load_settings(database_url, data_dir)
        settings.ensure_dirs()
        upgrade(settings.resolved_database_url(), revision)
        typer.echo(f"database at revision {revision}")

    @cli.command("export")
    def export(
        run_id: str = typer.Argument(..., help="run id"),
        format: str = typer.Option("csv", "--format", help="csv | sdf | jsonl"),
        out: Path | None = typer.Option(None, "--out", help="file to write (default: stdout)"),
        database_url: str | None = typer.Option(None, help=_DB_HELP),
        data_dir: Path | None = typer.Option(None, help=_DIR_HELP),
    ) -> None:
        """Write a run's molecules (best reward first) with scores and routes."""
        if format not in get_args(ExportFormat):
            raise typer.BadParameter("use csv, sdf or jsonl", param_hint="--format")
        _export(load_settings(database_url, data_dir), run_id, cast(ExportFormat, format), out)

    @token_cli.command("create")
    def token_create(
        name: str = typer.Option("default", help="a label for the token"),
        database_url: str | None = typer.Option(None, help=_DB_HELP),
        data_dir: Path | None = typer.Option(None, help=_DIR_HELP),
    ) -> None:
        """Create an API token, print it once; only its hash is stored. Auth is on once one exists."""
        db = Database.from_settings(load_settings(database_url, data_dir))
        with db.session() as session:
            token = create_token(session, name)
        db.dispose()
        typer.echo(token)

    @token_cli.command("list")
    def token_list(
        database_url: str | None = typer.Option(None, help=_DB_HELP),
        data_dir: Path | None = typer.Option(None, help=_DIR_HELP),
    ) -> None:
        """List tokens (id, prefix, name, state); tokens themselves are never stored."""
        db = Database.from_settings(load_settings(database_url, data_dir))
        with db.session() as session:
            for row in list_tokens(session):
                state = "revoked" if row.revoked else "active"
                typer.echo(f"{row.id}\t{row.prefix}\t{row.name}\t{state}\tlast used {row.last_used_at}")
        db.dispose()

    @token_cli.command("revoke")
    def token_revoke(
        key: str = typer.Argument(..., help="token id or its shown prefix (sfk_...)"),
        database_url: str | None = typer.Option(None, help=_DB_HELP),
        data_dir: Path | None = typer.Option(None, help=_DIR_HELP),
    ) -> None:
        """Revoke a token at once; auth stays on even when no active token is left."""
        db = Database.from_settings(load_settings(database_url, data_dir))
        with db.session() as session:
            row = revoke_token(session, key)
        db.dispose()
        if row is None:
            raise typer.BadParameter(f"no token {key!r}", param_hint="KEY")
        typer.echo(f"revoked token {row.id} ({row.prefix})")
