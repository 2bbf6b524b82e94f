"""A throwaway Ray head on 127.0.0.1 for tests (``ray start --head --block``, ended with the test).

Every port is a free one picked here, so two test processes (pytest-xdist) can each run a head at
once, and ending this head (SIGTERM to the ``--block`` process) stops only its own processes,
unlike ``ray stop``, which stops every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextlib.contextmanager
def ray_head(num_cpus: int = 2, timeout: float = 120.0) -> Iterator[str]:
    """Start a head with ``num_cpus`` CPUs (so that many one-CPU actors), yield its address.

    Token authentication is off for this loopback-only test head: Ray reads its auth mode once per
    process, and the default token file (~/.ray/auth_token) is shared by every local cluster, so
    another test starting a local Ray at the same moment could rewrite it under this one.
    """
    ray_bin = Path(sys.executable).with_name("ray")
    gcs, agent, agent_grpc, runtime_env, metrics = _free_ports(5)
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a limit
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    command = [
        str(ray_bin), "start", "--head", "--block",
        "--node-ip-address=127.0.0.1", f"--port={gcs}", f"--num-cpus={num_cpus}",
        "--include-dashboard=false", "--disable-usage-stats",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={runtime_env}",
        f"--metrics-export-port={metrics}", f"--temp-dir={temp_dir}",
    ]  # fmt: skip
    head = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    address = f"127.0.0.1:{gcs}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if head.poll() is not None:
                raise RuntimeError(f"ray start failed:\n{head.stdout.read() if head.stdout else ''}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", gcs)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not listen on {address} within {timeout:.0f} s")
            time.sleep(0.5)
        yield address
    finally:
        head.terminate()
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(10)
        shutil.rmtree(temp_dir, ignore_errors=True)

