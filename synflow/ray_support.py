"""Connecting to Ray for ``training.executor = "ray"`` (an optional dependency: ``synflow[ray]``).

Nothing here runs at import time and ``ray`` is imported only when a run asks for it. A run either
joins an existing cluster (``training.ray_address``: ``auto``, ``ray://head:10001`` or
``host:6379``; every node needs the same synflow install) or starts a local instance on 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["RayUnavailable", "connect_ray", "import_ray"]


class RayUnavailable(RuntimeError):
    """``executor = "ray"`` was asked for and the ``ray`` package is not installed."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise RayUnavailable(
            "training.executor: 'ray' needs the ray package: pip install 'synflow[ray]'"
        ) from exc
    return ray


def connect_ray(address: str | None = None, num_cpus: int | None = None) -> Any:
    """The ``ray`` module, initialised: joined to ``address``, or a local instance when it is None
    (an instance already initialised in this process, e.g. by a test or a notebook, is reused)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": False,
    }
    if address is None:
        # "local": start one, never join whatever RAY_ADDRESS or /tmp/ray/ray_current_cluster names
        options["address"] = "local"
        options["num_cpus"] = num_cpus
        options["_node_ip_address"] = "127.0.0.1"
    else:
        options["address"] = address
    ray.init(**options)
    return ray
