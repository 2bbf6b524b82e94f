"""Shared pieces of the reliability tests: a tiny real chemistry on disk, run configs that train in
about a second, real ``synflow worker`` processes, and polling with a deadline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from app.core.db import Database
from app.core.models import Run
from app.core.settings import Settings
from synflow.config import parse_run_config
from tests.synflow.tiny_setting import BLOCKS, TEMPLATES

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def tiny_chemistry_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny enumerable setting of tests/synflow as the files a RunConfig names."""
    folder = tmp_path_factory.mktemp("tiny-chemistry")
    blocks, templates = folder / "blocks.smi", folder / "templates.txt"
    blocks.write_text("".join(f"{s} TINY{i:02d}\n" for i, s in enumerate(BLOCKS)))
    templates.write_text("".join(f"{t}\n" for t in TEMPLATES))
    return blocks, templates


@pytest.fixture
def tiny_run(tiny_chemistry_files: tuple[Path, Path]) -> Callable[..., dict[str, Any]]:
    """``tiny_run(steps=…, reward=…)``: a validated RunConfig on the tiny chemistry, CPU, small nets."""
    blocks, templates = tiny_chemistry_files

    def make(reward: dict[str, Any] | None = None, environment: dict[str, Any] | None = None,
             replay: dict[str, Any] | None = None, **training: Any) -> dict[str, Any]:
        return parse_run_config({
            "name": "reliability",
            "reward": reward or {"components": [{"type": "qed"}]},
            "environment": {"max_reactions": 2, "building_blocks": str(blocks), "templates": str(templates),
                            **(environment or {})},
            "replay": replay or {},
            "model": {"hidden": 16, "layers": 1, "block_hidden": 16},
            "training": {"steps": 4, "batch_size": 4, "checkpoint_every": 1, "log_every": 1, "seed": 1,
                         "device": "cpu", **training},
        }).model_dump(mode="json")

    return make


def queue_run(db: Database, config: dict[str, Any], name: str = "run") -> str:
    with db.session() as session:
        run = Run(name=name, config=config, total_steps=int(config["training"]["steps"]))
        session.add(run)
        session.flush()
        return run.id


def read_run(db: Database, run_id: str) -> Run:
    with db.session() as session:
        return session.get(Run, run_id)


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class WorkerZygote:
    """A pre-imported parent that forks worker processes (``worker_zygote.py``), one per session."""

    def __init__(self) -> None:
        # one thread each: several workers share two cores
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.app.reliability.worker_zygote"], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.ready = False

    def fork(self, log: Path, env: dict[str, str]) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if not self.ready:
            line = self.proc.stdout.readline().strip()
            assert line == "ready", f"worker parent failed to start: {line!r}"
            self.ready = True
        self.proc.stdin.write(json.dumps({"log": str(log), "env": env}) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.kill()  # it holds nothing worth a graceful exit (seconds of torch teardown)
        self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture(scope="session")
def worker_zygote() -> Iterator[WorkerZygote]:
    zygote = WorkerZygote()
    try:
        yield zygote
    finally:
        zygote.close()


class WorkerProcesses:
    """Real ``synflow worker`` processes sharing one database and data folder.

    They are forked from a pre-imported parent (``worker_zygote.py``), so starting one costs
    milliseconds, not the seconds of importing torch; each runs the real command line.
    """

    def __init__(self, zygote: WorkerZygote, settings: Settings, logs: Path) -> None:
        self.zygote, self.settings, self.logs = zygote, settings, logs
        self.pids: list[int] = []
        self.env = {
            "SYNFLOW_DATABASE_URL": settings.resolved_database_url(),
            "SYNFLOW_DATA_DIR": str(settings.data_dir),
            "SYNFLOW_WORKER_LEASE_SECONDS": str(settings.worker_lease_seconds),
            "SYNFLOW_WORKER_POLL_SECONDS": str(settings.worker_poll_seconds),
            "SYNFLOW_DATABASE_RETRY_SECONDS": str(settings.database_retry_seconds),
        }

    def start(self, n: int = 1) -> list[int]:
        started = []
        for _ in range(n):
            self.pids.append(self.zygote.fork(self.logs / f"worker-{len(self.pids)}.log", self.env))
            started.append(self.pids[-1])
        return started

    @staticmethod
    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self, pid: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (SIGKILL by default) and wait until the process is gone."""
        os.kill(pid, sig)
        wait_for(lambda: not self.alive(pid), 30, f"worker {pid} to exit")

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("worker-*.log")))

    def stop(self) -> None:
        for pid in self.pids:
            if self.alive(pid):
                self.kill(pid)


@pytest.fixture
def worker_processes(
    worker_zygote: WorkerZygote, settings: Settings, tmp_path: Path
) -> Iterator[WorkerProcesses]:
    pool = WorkerProcesses(worker_zygote, settings, tmp_path)
    try:
        yield pool
    finally:
        pool.stop()


def pid_of(worker_id: str) -> int:
    """``app.worker.process.worker_name`` is ``host:pid:suffix``."""
    return int(worker_id.split(":")[1])


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """A short lease so a killed worker's run is reclaimed within seconds."""
    return Settings(database_url=database_url, data_dir=tmp_path / "data", worker_lease_seconds=3,
                    worker_poll_seconds=0.1, database_retry_seconds=60)
