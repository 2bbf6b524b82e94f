"""A reduced ``benchmarks/pmo.py``: a development task under the optimise preset with a small budget,
and the table with both published tables beside ours."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from synflow.rewards.pmo import PMO_TARGETS
from tests.scripts import load_script


@pytest.fixture(scope="module")
def pmo() -> ModuleType:
    return load_script("benchmarks/pmo.py")


def test_development_tasks_are_not_scored_tasks_nor_their_references(pmo: ModuleType) -> None:
    from rdkit import Chem, DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    assert not set(pmo.DEV_TASKS) & set(pmo.TASKS)
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    targets = [generator.GetFingerprint(Chem.MolFromSmiles(s)) for s in PMO_TARGETS.values()]
    for task, reward in pmo.DEV_TASKS.items():
        for component in reward["components"]:
            for smiles in component.get("references", []):
                fp = generator.GetFingerprint(Chem.MolFromSmiles(smiles))
                assert max(DataStructs.BulkTanimotoSimilarity(fp, targets)) < 0.5, (task, smiles)


def test_a_budgeted_run_of_the_preset_counts_calls_and_reports_diversity(pmo: ModuleType) -> None:
    budget = 300
    run = pmo.run_task("dev_imatinib_rediscovery", 0, budget, None, "cpu", "route")
    assert run["oracle_calls"] == budget
    assert 0.0 < run["auc"] <= run["top10_mean"] <= 1.0
    assert 0.0 < run["top100_diversity"] <= 1.0
    assert 1 <= run["top100_scaffolds"] <= 100
    report = pmo.summarise({"dev_imatinib_rediscovery": {0: {"seed": 0, **run}}}, budget, "route")
    lines = pmo.table(report)
    assert lines[0].startswith("| task | synflow AUC top-10")
    assert any(line.startswith("| dev_imatinib_rediscovery |") for line in lines)


def test_the_table_sums_both_published_tables(pmo: ModuleType, shared_data: Path) -> None:
    runs = {task: {0: {"seed": 0, "auc": 0.5, "top10_mean": 0.6}} for task in pmo.TASKS}
    report = pmo.summarise(runs, 10_000, "route")
    assert report["sum"] == pytest.approx(10.0)
    assert report["reruns"]["sums_same_tasks"]["syngbo"] == pytest.approx(13.849)
    assert report["reruns"]["sums_same_tasks"]["synga"] == pytest.approx(10.873)
    lines = pmo.table(report)
    total = next(line for line in lines if line.startswith("| **sum (20 tasks)**"))
    assert "13.849" in total and "10.873" in total and "10.353" in total


def test_each_ablation_turns_off_one_mechanism_of_the_preset(pmo: ModuleType) -> None:
    from synflow.config import merge_config, parse_run_config

    base = {"preset": "optimise", "reward": {"components": [{"type": "qed"}]}}
    full = parse_run_config(base)
    assert full.search.genetic.offspring > 0 and full.search.local.candidates > 0
    assert full.training.inner_steps > 1 and full.replay.sampling == "rank"
    off = {name: parse_run_config(merge_config(base, changes)) for name, changes in pmo.ABLATIONS.items()}
    assert off["full"] == full
    assert off["no_genetic"].search.genetic.offspring == 0
    assert off["no_local_search"].search.local.candidates == 0
    assert off["no_inner_updates"].training.inner_steps == 1
    for name, config in off.items():
        changed = {k for k in type(full).model_fields if getattr(config, k) != getattr(full, k)}
        assert len(changed) <= 2, (name, changed)  # one mechanism: its own sections only


def test_the_ablation_table_pairs_seeds_and_uses_only_seeds_every_run_has(pmo: ModuleType) -> None:
    def runs(auc: dict[int, float]) -> dict:
        return {
            t: {s: {"seed": s, "auc": a, "top100_scaffolds": 10} for s, a in auc.items()}
            for t in pmo.ABLATION_TASKS
        }

    full = runs({0: 0.5, 1: 0.7, 2: 0.9})  # seed 2 only in full: left out of every mean
    lines = pmo.ablation_table({"full": full, "no_genetic": runs({0: 0.4, 1: 0.5})})
    n = len(pmo.ABLATION_TASKS)
    assert lines[2].startswith("| full | 0.600 |") and f"| {0.6 * n:.3f} | — |" in lines[2]
    change = [(0.4 - 0.5) * n, (0.5 - 0.7) * n]  # per seed, paired
    mean, std = sum(change) / 2, abs(change[0] - change[1]) / 2
    assert lines[3].startswith("| no_genetic | 0.450 |") and f"{mean:+.3f} ± {std:.3f}" in lines[3]
    assert lines[-1].endswith("seeds with every task in every run: [0, 1]")
