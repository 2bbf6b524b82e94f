"""The worker loop and its process entry point (``synflow worker``, or embedded in ``synflow serve``)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid

from app.core.db import Database
from app.core.settings import Settings
from app.runs.lifecycle import claim_run, fail_exhausted
from app.worker.execution import execute_run, touch_health
from synflow.runtime import configure_torch_threads

log = logging.getLogger("synflow.worker")


def worker_name() -> str:
    """``host:pid:suffix``: unique per worker, and says where it runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Claims runs one at a time until ``shutdown`` is set."""

    def __init__(self, db: Database, settings: Settings, worker_id: str | None = None) -> None:
        self.db, self.settings = db, settings
        self.worker_id = worker_id or worker_name()
        self.shutdown = threading.Event()

    def run_once(self) -> str | None:
        fail_exhausted(self.db)
        run_id = claim_run(self.db, self.worker_id, self.settings.worker_lease_seconds)
        if run_id is not None:
            log.info("worker %s claimed run %s", self.worker_id, run_id)
            execute_run(self.db, self.settings, run_id, self.worker_id, self.shutdown)
        return run_id

    def run_forever(self) -> None:
        while not self.shutdown.is_set():
            try:
                claimed = self.run_once()
                touch_health(self.settings)
            except Exception:
                log.exception("worker %s: claim failed", self.worker_id)
                claimed = None
            if claimed is None:
                self.shutdown.wait(self.settings.worker_poll_seconds)


def worker_process_main(settings_json: str, parent_pid: int | None = None) -> None:
    """Entry point of a worker process: ``synflow worker``, or an embedded worker of ``synflow serve``
    (``parent_pid`` set), which stops by itself when its parent is gone, however the parent died."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.model_validate_json(settings_json)
    db = Database.from_settings(settings)
    worker = Worker(db, settings)
    # One intra-op thread: measured faster for these small networks on 2 cores, and the other core
    # stays free for chemistry and the API (``SYNFLOW_TORCH_THREADS`` overrides).
    configure_torch_threads()
    signal.signal(signal.SIGTERM, lambda *_: worker.shutdown.set())
    signal.signal(signal.SIGINT, lambda *_: worker.shutdown.set())
    if parent_pid is not None:
        threading.Thread(target=_stop_when_orphaned, args=(worker, parent_pid), daemon=True).start()
    try:
        worker.run_forever()
    finally:
        db.dispose()


def _stop_when_orphaned(worker: Worker, parent_pid: int, interval: float = 1.0) -> None:
    while not worker.shutdown.wait(interval):
        if os.getppid() != parent_pid:
            log.warning("worker %s: parent %s is gone; stopping", worker.worker_id, parent_pid)
            worker.shutdown.set()
