"""``synflow serve --api-workers N``: N API processes share the port (the default is one per core),
each with the settings the parent resolved, and /metrics adds up every process's request counts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devsupport.postgres import free_port
from tests.app.pages.conftest import _wait_ready


def _spawned_children(pid: int) -> list[int]:
    """Child processes started by multiprocessing's spawn (uvicorn's API workers, training workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        parent = re.search(r"^PPid:\s+(\d+)", status, re.M)
        if parent and int(parent.group(1)) == pid and "spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("api_workers", [1, 2])
def test_api_processes_share_the_port_and_their_metrics(tmp_path: Path, api_workers: int) -> None:
    port = free_port()
    env = {**os.environ, "SYNFLOW_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", "0",
               "--api-workers", str(api_workers)]
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        # every process up (each answers /readyz once it has started)
        time.sleep(1.0)
        assert len(_spawned_children(proc.pid)) == (api_workers if api_workers > 1 else 0)
        for _ in range(40):  # a new connection each time: the kernel spreads them over the processes
            assert httpx.get(url + "/healthz", timeout=10).status_code == 200
        metrics = httpx.get(url + "/metrics", timeout=10).text
        counted = re.search(
            r'synflow_http_requests_total\{method="GET",route="/healthz",status="200"\} (\d+)', metrics
        )
        assert counted and float(counted.group(1)) == 40, metrics[:3000]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert not _spawned_children(proc.pid)
