"""Fixtures for the security tests: a seeded SQLite database (one run with molecules, so paths with
ids hit real rows), an in-process app, and a real ``synflow serve`` process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.core.db import Database
from app.core.models import Run
from app.core.settings import Settings
from app.runs.store import write_molecules
from devsupport.postgres import free_port
from synflow.callbacks import SampledMolecule

SEED_SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "CCN(CC)CC", "c1ccncc1", "Clc1ccccc1"]
SERVER_BODY_LIMIT = 256 * 1024
SERVER_UPLOAD_LIMIT = 512 * 1024
QED_CONFIG = {"reward": {"components": [{"type": "qed"}]}, "training": {"steps": 4, "batch_size": 2}}


def seed_run(db: Database, molecules: int = 30) -> tuple[str, list[int]]:
    """A finished run with ``molecules`` distinct molecules; returns its id and the molecule ids."""
    with db.session() as session:
        run = Run(config=QED_CONFIG, total_steps=4, status="succeeded", name="seeded")
        session.add(run)
        session.flush()
        run_id = run.id
    records = [
        SampledMolecule(
            SEED_SMILES[i % len(SEED_SMILES)] + "C" * (i // len(SEED_SMILES)),
            reward=(i * 7 % 10) / 10,
            step=i,
            scores={"qed": i / 100},
            route={"steps": [{"action": "start", "product": SEED_SMILES[i % len(SEED_SMILES)]}]},
        )
        for i in range(molecules)
    ]
    with db.session() as session:
        write_molecules(session, run_id, records)
    with db.session() as session:
        from sqlalchemy import select

        from app.core.models import Molecule

        ids = list(session.scalars(select(Molecule.id).where(Molecule.run_id == run_id)))
    return run_id, ids


@dataclass
class Seeded:
    settings: Settings
    db: Database
    run_id: str
    molecule_ids: list[int]


@pytest.fixture
def seeded(migrated_sqlite: Path, tmp_path: Path) -> Iterator[Seeded]:
    target = tmp_path / "synflow.db"
    shutil.copyfile(migrated_sqlite, target)
    settings = Settings(database_url=f"sqlite:///{target}", data_dir=tmp_path / "data")
    db = Database.from_settings(settings)
    run_id, ids = seed_run(db)
    try:
        yield Seeded(settings, db, run_id, ids)
    finally:
        db.dispose()


@dataclass
class Server:
    client: httpx.Client
    url: str
    data_dir: Path
    run_id: str
    proc: subprocess.Popen
    database_url: str


def start_server(tmp_path: Path, database_url: str, env_extra: dict[str, str] | None = None) -> Server:
    """``synflow serve --workers 0`` on a seeded database; the caller stops it with ``stop_server``."""
    db = Database(database_url)
    run_id, _ = seed_run(db)
    db.dispose()
    port = free_port()
    env = {
        **os.environ,
        "SYNFLOW_DATABASE_URL": database_url,
        "SYNFLOW_DATA_DIR": str(tmp_path / "data"),
        **(env_extra or {}),
    }
    log = tmp_path / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", "0"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited: {log.read_text()[-3000:]}")
        try:
            if client.get("/healthz").status_code == 200:
                return Server(
                    client, f"http://127.0.0.1:{port}", tmp_path / "data", run_id, proc, database_url
                )
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.terminate()
    pytest.fail(f"server not ready in 60 s: {log.read_text()[-3000:]}")


def stop_server(server: Server) -> None:
    server.client.close()
    server.proc.terminate()
    server.proc.wait(timeout=60)


@pytest.fixture(scope="session")
def server(migrated_sqlite: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server per test session (per xdist worker), shared by the tests that only read or
    send hostile input to it; small body limits so the 413 tests need not send megabytes."""
    tmp_path = tmp_path_factory.mktemp("server")
    target = tmp_path / "synflow.db"
    shutil.copyfile(migrated_sqlite, target)
    limits = {
        "SYNFLOW_MAX_BODY_BYTES": str(SERVER_BODY_LIMIT),
        "SYNFLOW_MAX_UPLOAD_BYTES": str(SERVER_UPLOAD_LIMIT),
    }
    running = start_server(tmp_path, f"sqlite:///{target}", limits)
    try:
        yield running
    finally:
        stop_server(running)
