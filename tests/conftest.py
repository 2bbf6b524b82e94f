from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _torch_single_thread() -> None:
    from synflow.runtime import configure_torch_threads

    configure_torch_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data beside the project; tests that need it skip with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (the ../shared/data folder)")
    return SHARED_DATA
