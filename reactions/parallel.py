"""Run a function over chunks of work on all cores (RDKit holds the GIL, so processes, not threads)."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """The cores this process may use (honours CPU affinity, e.g. under taskset or a container)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def split_evenly(n_items: int, n_chunks: int) -> list[tuple[int, int]]:
    """`n_chunks` contiguous [start, stop) ranges covering range(n_items), sizes differing by at most 1."""
    n_chunks = max(1, min(n_chunks, n_items))
    bounds = [n_items * i // n_chunks for i in range(n_chunks + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(n_chunks) if bounds[i] < bounds[i + 1]]


def map_chunks(function: Callable[[T], R], chunks: Sequence[T], workers: int) -> list[R]:
    """`[function(c) for c in chunks]`, on `workers` processes when that can pay off; order kept."""
    if workers <= 1 or len(chunks) <= 1:
        return [function(chunk) for chunk in chunks]
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=_context()) as pool:
        return list(pool.map(function, chunks))


def _context() -> multiprocessing.context.BaseContext:
    # fork starts a worker in milliseconds instead of re-importing RDKit and numpy (~0.5 s each);
    # the workers only run RDKit/numpy code, which is safe after fork. Elsewhere use the default.
    if sys.platform == "linux":
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()
