from __future__ import annotations

import math
from pathlib import Path

import pytest

from synflow.rewards import RewardConfig, build_reward
from synflow.rewards.docking import ligand_pdbqt, receptor_box

pytest.importorskip("vina", reason="AutoDock Vina (pip install vina) is not installed")
pytest.importorskip("meeko", reason="meeko (pip install meeko gemmi) is not installed")

ESTRADIOL = "C[C@]12CC[C@H]3[C@@H](CCc4cc(O)ccc43)[C@@H]1CC[C@@H]2O"


def docking_config(shared: Path, **extra: object) -> RewardConfig:
    receptor, center = receptor_box(shared / "receptors" / "ESR1_ant")
    return RewardConfig.model_validate({"components": [{
        "type": "docking", "receptor": receptor, "center": center, "size": [20, 20, 20],
        "exhaustiveness": 1, "processes": 1, **extra,
    }]})


def test_ligand_preparation_gives_a_pdbqt_with_torsions() -> None:
    text = ligand_pdbqt(ESTRADIOL)
    assert "ROOT" in text and "TORSDOF" in text
    assert sum(line.startswith(("ATOM", "HETATM")) for line in text.splitlines()) >= 20


def test_estradiol_docks_into_esr1(shared_data: Path) -> None:
    with build_reward(docking_config(shared_data)) as reward:
        batch = reward.score([ESTRADIOL, "not a smiles", "CCO"])
    affinity = batch.scores["docking_raw"][0]
    assert -13.0 < affinity < -7.5  # estradiol is ESR1's natural ligand (~-10 kcal/mol with Vina)
    assert batch.reward[0] == pytest.approx(min(1.0, -affinity / 12.0))
    assert batch.reward[1] == 0.0 and math.isnan(batch.scores["docking_raw"][1])
    assert batch.scores["docking_raw"][2] > affinity + 3  # ethanol binds far more weakly
    assert reward.oracle_calls == 2


def test_ligand_timeout_scores_zero_and_is_recorded(shared_data: Path) -> None:
    with build_reward(docking_config(shared_data, timeout_s=0.05)) as reward:
        batch = reward.score([ESTRADIOL])
        failures = reward.scorer("docking").failures
    assert batch.reward[0] == 0.0 and math.isnan(batch.scores["docking_raw"][0])
    assert "timed out" in next(iter(failures.values()))


def test_missing_receptor_fails_when_built(tmp_path: Path) -> None:
    config = RewardConfig.model_validate({"components": [
        {"type": "docking", "receptor": str(tmp_path / "none.pdbqt"), "center": [0, 0, 0]}]})
    with pytest.raises(FileNotFoundError, match="receptor"):
        build_reward(config)


def test_docking_is_reproducible_with_the_same_seed(shared_data: Path) -> None:
    """Vina picks a random seed when given 0; the component's seed is always passed as a fixed one."""
    affinities = []
    for _ in range(3):
        with build_reward(docking_config(shared_data)) as reward:
            affinities.append(float(reward.score([ESTRADIOL]).scores["docking_raw"][0]))
    assert affinities[0] == affinities[1] == affinities[2], affinities
