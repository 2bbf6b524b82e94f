from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from rdkit import Chem, DataStructs, rdBase
from rdkit.Chem import QED, AllChem, Descriptors
from rdkit.Contrib.SA_Score import sascorer

from synflow.rewards import (
    BudgetExhausted,
    RewardConfig,
    build_reward,
    log_reward,
)
from synflow.rewards.base import Scorer

REFERENCE = "CC(=O)Oc1ccccc1C(=O)O"  # aspirin
FORBIDDEN = "[N+](=O)[O-]"  # nitro
SMILES = [
    "CC(=O)Oc1ccccc1C(=O)O",  # aspirin itself
    "OC(=O)c1ccccc1O",  # salicylic acid
    "c1ccccc1[N+](=O)[O-]",  # nitrobenzene: forbidden
    "CCN(CC)CC",
    "not a smiles",
    "O=C(O)c1ccccc1OC(C)=O",  # aspirin written differently
]


def combined_config() -> RewardConfig:
    return RewardConfig.model_validate({
        "aggregation": "geometric",
        "components": [
            {"type": "qed", "weight": 2.0},
            {"type": "sa", "weight": 1.0},
            {"type": "similarity", "weight": 1.0, "references": [REFERENCE], "radius": 2, "n_bits": 2048},
            {"type": "substructure", "forbidden": [FORBIDDEN]},
        ],
    })


def by_hand(smiles: str) -> float:
    """The same reward computed with bare RDKit, without any synflow code."""
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return 0.0
    qed = QED.qed(mol)
    sa = (10.0 - sascorer.calculateScore(mol)) / 9.0
    with rdBase.BlockLogs():
        fp = AllChem.GetMorganFingerprintAsBitVect(mol, 2, nBits=2048)
        ref = AllChem.GetMorganFingerprintAsBitVect(Chem.MolFromSmiles(REFERENCE), 2, nBits=2048)
    sim = DataStructs.TanimotoSimilarity(fp, ref)
    if mol.HasSubstructMatch(Chem.MolFromSmarts(FORBIDDEN)):
        return 0.0
    return (qed**2 * sa * sim) ** (1.0 / 4.0)


def test_combined_reward_matches_values_computed_by_hand() -> None:
    batch = build_reward(combined_config()).score(SMILES)
    expected = [by_hand(s) for s in SMILES]
    np.testing.assert_allclose(batch.reward, expected, rtol=1e-9, atol=1e-12)
    assert batch.reward[0] > 0.3 and batch.reward[2] == 0.0 and batch.reward[4] == 0.0
    assert batch.reward[0] == batch.reward[5]
    assert list(batch.valid) == [True, True, True, True, False, True]
    assert batch.scores["similarity"][0] == pytest.approx(1.0)
    assert batch.scores["substructure"].tolist() == [1.0, 1.0, 0.0, 1.0, 0.0, 1.0]


@pytest.mark.parametrize("fingerprint", ["morgan", "atom_pair", "maccs"])
def test_similarity_references_with_explicit_hydrogens(fingerprint: str) -> None:
    config = RewardConfig.model_validate({"components": [
        {"type": "similarity", "references": ["[H]OC([H])([H])c1ccccc1"], "fingerprint": fingerprint}]})
    assert build_reward(config).score(["OCc1ccccc1"]).reward[0] == pytest.approx(1.0)


def test_scores_are_per_component_and_in_unit_interval() -> None:
    batch = build_reward(combined_config()).score(SMILES)
    assert set(batch.scores) == {"qed", "sa", "similarity", "substructure"}
    for values in batch.scores.values():
        assert np.all((values >= 0) & (values <= 1))
    mol = batch[0]
    assert mol.canonical_smiles == Chem.MolToSmiles(Chem.MolFromSmiles(SMILES[0]))
    assert mol.to_json()["scores"]["qed"] == pytest.approx(QED.qed(Chem.MolFromSmiles(SMILES[0])))


def test_arithmetic_aggregation_and_penalty_filter() -> None:
    config = RewardConfig.model_validate({
        "aggregation": "arithmetic",
        "components": [
            {"type": "qed", "weight": 3.0},
            {"type": "physchem", "descriptor": "mw", "weight": 1.0,
             "transform": {"type": "step", "low": 0, "high": 150}},
            {"type": "substructure", "forbidden": ["c1ccccc1", "[OX2H]"], "mode": "penalty", "penalty": 0.5},
        ],
    })
    smiles = ["Oc1ccccc1", "CCCCCC", "c1ccccc1C(=O)NCCCCCCCCCCCC"]
    batch = build_reward(config).score(smiles)
    for i, s in enumerate(smiles):
        mol = Chem.MolFromSmiles(s)
        mw_ok = 1.0 if Descriptors.MolWt(mol) <= 150 else 0.0
        hits = sum(mol.HasSubstructMatch(Chem.MolFromSmarts(p)) for p in ["c1ccccc1", "[OX2H]"])
        expected = (3 * QED.qed(mol) + mw_ok) / 4 * 0.5**hits
        assert batch.reward[i] == pytest.approx(expected, rel=1e-12)
    assert batch.scores["mw_raw"][1] == pytest.approx(Descriptors.MolWt(Chem.MolFromSmiles("CCCCCC")))


def test_geometric_zero_score_zeroes_reward_but_zero_weight_is_ignored() -> None:
    def reward(weight: float) -> float:
        config = RewardConfig.model_validate({"components": [
            {"type": "qed"},
            {"type": "physchem", "descriptor": "mw", "weight": weight,
             "transform": {"type": "right_step", "high": 1000}},
        ]})
        return float(build_reward(config).score(["CCO"]).reward[0])

    assert reward(1.0) == 0.0
    assert reward(0.0) == pytest.approx(QED.qed(Chem.MolFromSmiles("CCO")))


def test_cache_and_oracle_calls_count_unique_valid_molecules() -> None:
    reward = build_reward(combined_config())
    first = reward.score(["CCO", "OCC", "C(O)C", "bad(", "c1ccccc1"])
    assert reward.oracle_calls == 2  # ethanol three ways, benzene; the invalid one is free
    second = reward.score(["CCO", "c1ccccc1", "CCN"])
    assert reward.oracle_calls == 3
    assert second.reward[0] == first.reward[0]


def test_budget_stops_scoring_new_molecules() -> None:
    config = combined_config().model_copy(update={"budget": 3})
    reward = build_reward(config)
    batch = reward.score(["CCO", "CCN", "CCC", "CCCl", "CCBr"])
    assert reward.oracle_calls == 3 and reward.exhausted and batch.budget_exhausted
    assert batch.scored.tolist() == [True, True, True, False, False]
    assert batch.reward[3] == 0.0
    again = reward.score(["CCO", "CCN"])  # cached molecules still score once the budget is spent
    assert not again.budget_exhausted and again.reward[0] == batch.reward[0]
    with pytest.raises(BudgetExhausted) as info:
        reward.score(["CCO", "CCCCO"], raise_on_budget=True)
    assert info.value.batch.scored.tolist() == [True, False]


def test_log_reward_uses_beta_and_floor() -> None:
    r = np.array([1.0, 0.5, 0.0, 1e-300])
    got = log_reward(r, beta=4.0, floor=-50.0)
    np.testing.assert_allclose(got, [0.0, 4 * math.log(0.5), -50.0, -50.0])
    config = combined_config().model_copy(update={"beta": 2.0, "log_reward_floor": -10.0})
    reward = build_reward(config)
    batch = reward.score(["CC(=O)Oc1ccccc1C(=O)O", "bad("])
    np.testing.assert_allclose(reward.log_reward(batch.reward), [2 * math.log(batch.reward[0]), -10.0])
    assert np.all(np.isfinite(batch.log_reward(beta=64.0)))


class _NotingScorer(Scorer):
    """Values 0.5 and, for molecules with sulphur, an alert note (what an alerts scorer reports)."""

    def __call__(self, mols: Sequence[Chem.Mol], smiles: Sequence[str]) -> np.ndarray:
        return np.full(len(mols), 0.5)

    def notes(self, smiles: Sequence[str]) -> list[dict[str, Any]]:
        return [{"alerts": ["sulphur"]} if "S" in s else {} for s in smiles]


def test_scorer_notes_reach_the_batch_and_survive_a_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("synflow.rewards.reward.build_scorer", lambda config, placement: _NotingScorer())
    reward = build_reward(RewardConfig(components=[{"type": "qed"}]))
    batch = reward.score(["CCS", "CCO", "not a smiles"])
    assert batch.notes == [{"alerts": ["sulphur"]}, {}, {}]
    assert batch[0].to_json()["notes"] == {"alerts": ["sulphur"]} and "notes" not in batch[1].to_json()
    again = build_reward(RewardConfig(components=[{"type": "qed"}]))
    again.load_state_dict(reward.state_dict())
    assert again.score(["CCS"]).notes == [{"alerts": ["sulphur"]}] and again.oracle_calls == 2
    # a checkpoint written before notes existed holds (reward, scores, error) per molecule
    legacy = {"oracle_calls": 1, "cache": {"CCS": (0.5, {"qed": 0.5}, None)}}
    again.load_state_dict(legacy)
    assert again.score(["CCS"]).notes == [{}] and again.oracle_calls == 1
