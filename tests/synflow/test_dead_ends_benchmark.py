"""``benchmarks/dead_ends.py``: both settings run and report consistent figures (no timing or
convergence assertions: a few steps only; the figures are the benchmark's job)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.scripts import load_script


def test_tiny_and_library_settings_run(tmp_path: Path) -> None:
    bench = load_script("benchmarks/dead_ends.py")
    tiny = bench.main(["tiny", "--weights", "0", "0.1", "--steps", "5", "--out", str(tmp_path / "t.json")])
    assert json.loads((tmp_path / "t.json").read_text()) == json.loads(json.dumps(tiny))
    for row in tiny["rows"]:
        assert 0 <= row["dead_end_mass"] <= 1 and 0 <= row["l1"] <= 2
    library = bench.main([
        "library", "--weights", "0.1", "--steps", "2", "--cache", str(tmp_path / "cache"),
        "--out", str(tmp_path / "l.json"),
    ])
    (row,) = library["rows"]
    assert 0 <= row["dead_ends_mean"] <= 32 and row["unique"] >= 1
