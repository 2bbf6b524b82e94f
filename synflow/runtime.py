"""Process-level runtime settings, applied explicitly by entry points (never at import time)."""

from __future__ import annotations

import os

import torch


def configure_torch_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count and return it.

    On the 2-core machines this project targets, torch's default of one thread per core was
    measured slower than a single thread for the small tensors a GFlowNet uses (a 4096x256 matmul
    15.8 ms with 2 threads vs 5.6 ms with 1; tiny ops up to 20x slower), and the second core is
    better spent on RDKit. ``SYNFLOW_TORCH_THREADS`` overrides; the default is 1.
    """
    if n is None:
        n = int(os.environ.get("SYNFLOW_TORCH_THREADS", "1"))
    n = max(1, n)
    torch.set_num_threads(n)
    return n


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
