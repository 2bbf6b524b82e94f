"""Forks ``synflow worker`` processes from one parent that has already imported the trainer stack.

A fresh worker spends ~6 CPU-seconds importing torch, PyTorch Geometric and RDKit (far more on a
loaded two-core machine); tests that kill and replace workers would spend most of their time there.
This parent pays once per test session: each line on stdin is JSON ``{"log": PATH, "env": {...}}``,
and the parent forks a child that adds ``env`` to its environment (``SYNFLOW_*`` settings) and runs
the real command line (``synflow worker``) with stdout and stderr in ``log``, then prints the
child's pid. Children are reaped automatically; the parent exits when stdin closes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any


def _child(request: dict[str, Any]) -> None:
    code = 1
    try:
        os.environ.update(request["env"])
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # subprocess.run in plugins must see its children
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        from app.cli.main import main

        sys.argv = ["synflow", "worker"]
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    from app.cli import main  # noqa: F401
    from app.worker import process  # noqa: F401  (imports the trainer stack once, before forking)
    from synflow.runtime import configure_torch_threads

    configure_torch_threads()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print("ready", flush=True)
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            _child(json.loads(line))
        print(pid, flush=True)


if __name__ == "__main__":
    serve()
