from __future__ import annotations

from pathlib import Path

import pytest

from reactions.library import BuildingBlockLibrary, load_building_blocks


@pytest.fixture(scope="session")
def zinc_library(shared_data: Path) -> BuildingBlockLibrary:
    """The 10k ZINC fragments of ../shared/data as a library (loaded once per test session)."""
    return load_building_blocks(shared_data / "building_blocks" / "zincfrag_10k.smi.gz")
