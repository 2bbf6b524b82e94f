"""The list of PMO target molecules that libraries built from ZINC250k keep out."""

from __future__ import annotations

from rdkit import Chem

from synflow.rewards import pmo
from synflow.rewards.pmo import PMO_TARGET_TASKS, PMO_TARGETS, pmo_tasks, score_smiles

QUERIES = {"VALSARTAN_SMARTS", "HOP_SCAFFOLD"}  # substructure queries, not molecules to compare with


def test_every_target_is_a_molecule_with_its_tasks() -> None:
    assert set(PMO_TARGETS) == set(PMO_TARGET_TASKS)
    for name, smiles in PMO_TARGETS.items():
        assert Chem.MolFromSmiles(smiles) is not None, name
        assert set(PMO_TARGET_TASKS[name]) <= set(pmo_tasks()), name


def test_every_reference_molecule_of_the_oracles_is_listed() -> None:
    listed = {Chem.CanonSmiles(s) for s in PMO_TARGETS.values()}
    constants = {
        name: value for name, value in vars(pmo).items()
        if name.isupper() and isinstance(value, str) and name not in QUERIES
    }
    assert len(constants) >= len(PMO_TARGETS)
    for name, smiles in constants.items():
        assert Chem.CanonSmiles(smiles) in listed, name


def test_similarity_tasks_score_their_listed_target_highest() -> None:
    for name, tasks in PMO_TARGET_TASKS.items():
        for task in tasks:
            if task.endswith(("_rediscovery", "_similarity")):
                assert score_smiles(task, [PMO_TARGETS[name]]) == [1.0], (name, task)
