"""``benchmarks/chem_filters.py --quick``: each subcommand runs on real data and its figures are
consistent (no timing assertions: the figures are the benchmark's job)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.scripts import load_script


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("benchmarks/chem_filters.py")


def run(bench: ModuleType, tmp_path: Path, *argv: str) -> dict:
    out = tmp_path / f"{argv[0]}.json"
    result = bench.main([*argv, "--quick", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    return result


def test_alerts(bench: ModuleType, tmp_path: Path, shared_data: Path) -> None:
    result = run(bench, tmp_path, "alerts", "--molecules", "60")
    rows = {r["catalogues"]: r for r in result["rows"]}
    together = next(r for name, r in rows.items() if name.startswith("five defaults"))
    singles = [rows[name] for name in ("PAINS_A", "PAINS_B", "PAINS_C", "BRENK", "NIH")]
    # a molecule flagged by the five together is flagged by at least one alone, and vice versa
    assert max(r["flagged"] for r in singles) <= together["flagged"] <= sum(r["flagged"] for r in singles)
    assert together["flagged"] > 0 and result["reference_qed"]["cpu_ms"] > 0


def test_purchasable(bench: ModuleType, tmp_path: Path, shared_data: Path) -> None:
    result = run(bench, tmp_path, "purchasable")
    bloom = result["bloom"]
    assert 0.02 < bloom["hexapeptides_positive"] / bloom["hexapeptides"] < 0.15
    assert 0.02 < bloom["random_strings_positive"] / bloom["random_strings"] < 0.15
    assert bloom["zincfrag_found"] > 0
    for catalogue in result["catalogue_file"]:  # an exact catalogue finds exactly what it lists
        assert catalogue["found"] == catalogue["expected"] == result["molecules"] // 2


def test_pareto_on_sqlite(bench: ModuleType, tmp_path: Path) -> None:
    result = run(bench, tmp_path, "pareto", "--sizes", "3000", "--databases", "sqlite")
    (sqlite,) = result["databases"]["SQLite"]
    assert sqlite["reference"]["rows"] == 3000
    for k in (2, 3):
        timings = sqlite[f"{k} scores"]
        assert timings["considered"] == 3000 and 1 <= timings["front_size"] < 3000


def test_assay(bench: ModuleType, tmp_path: Path, shared_data: Path) -> None:
    result = run(bench, tmp_path, "assay")
    (row,) = result["rows"]
    assert set(row["cv"]) == {"random_forest", "gaussian_process"}
    # logP is learnable: the chosen model beats predicting the mean
    assert row["cv"][row["chosen"]]["rmse"] < row["mean_predictor_rmse"]
