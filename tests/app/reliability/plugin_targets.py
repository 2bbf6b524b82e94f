"""Reward plugins that misbehave on purpose, loaded by worker processes as
``tests.app.reliability.plugin_targets:NAME``.

``flaky`` picks its victims by a checksum of the SMILES, so the test can tell for every stored
molecule what should have happened to it: ``kind(s) == 0`` raises, ``1`` gives NaN, ``2`` hangs;
the rest score ``0.5``. Like a real batch model, one bad molecule spoils the whole batch call.
"""

from __future__ import annotations

import math
import time
import zlib

HANG_SECONDS = 5.0


def kind(smiles: str) -> int:
    return zlib.crc32(smiles.encode()) % 10


def flaky(smiles: list[str]) -> list[float]:
    kinds = [kind(s) for s in smiles]
    if 2 in kinds:
        time.sleep(HANG_SECONDS)
    if 0 in kinds:
        raise ValueError(f"cannot featurise {smiles[kinds.index(0)]}")
    return [math.nan if k == 1 else 0.5 for k in kinds]


def always_raises(smiles: list[str]) -> list[float]:
    raise ValueError("model file missing")


def always_nan(smiles: list[str]) -> list[float]:
    return [math.nan] * len(smiles)
