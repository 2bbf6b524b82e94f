"""A reduced ``benchmarks/load.py``: 10 clients for 5 s browse, search and export a real server while
a thread keeps inserting molecules into the run they browse; every request must succeed (no timing
assertions: the figures are the benchmark's job)."""

from __future__ import annotations

import asyncio
import threading
from types import ModuleType

from sqlalchemy import select

from app.core.db import Database
from app.core.models import Molecule
from app.runs.store import write_molecules
from synflow.callbacks import SampledMolecule
from tests.app.security.conftest import Server
from tests.scripts import load_script


def _load_module() -> ModuleType:
    return load_script("benchmarks/load.py")


def _keep_writing(url: str, run_id: str, stop: threading.Event, written: list[int]) -> None:
    db = Database(url)
    step = 10_000
    try:
        while not stop.is_set():
            records = [SampledMolecule(f"CC{'C' * (step % 40)}N{'O' * (i % 3)}", 0.5, step) for i in range(5)]
            with db.session() as session:
                written.append(write_molecules(session, run_id, records))
            step += 1
            stop.wait(0.05)
    finally:
        db.dispose()


def test_concurrent_clients_get_no_errors_while_molecules_are_written(server: Server) -> None:
    load = _load_module()
    db = Database(server.database_url)
    with db.session() as session:
        ids = list(session.scalars(select(Molecule.id).where(Molecule.run_id == server.run_id)))
    db.dispose()
    stop, written = threading.Event(), []
    writer = threading.Thread(target=_keep_writing, args=(server.database_url, server.run_id, stop, written))
    writer.start()
    try:
        target = load.Target(server.url, server.run_id, ids, live_run_id=server.run_id)
        results = asyncio.run(load.drive(target, clients=10, seconds=5))
    finally:
        stop.set()
        writer.join(timeout=30)
    summary = results.summary()
    assert summary["errors"] == 0, summary["error_samples"]
    assert set(summary["endpoints"]) == {name for name, _ in load.MIX}  # every kind of request ran
    assert sum(written) > 0
