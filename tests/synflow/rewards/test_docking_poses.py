"""Docked poses: a real Vina run on ESR1 (12 Å box, exhaustiveness 1: about a second a ligand) keeps
each molecule's best pose as an SDF that RDKit reads, with the molecule's heavy atoms and bond
orders, inside the box, named by content (shared by two scorers with the same set-up), with the
receptor and set-up beside it; the affinities are those of a scorer that keeps no poses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from synflow.rewards import RewardConfig, build_reward
from synflow.rewards.docking import receptor_box
from synflow.rewards.poses import RECEPTOR_FILE, SETUP_FILE, resolve_pose

pytest.importorskip("vina", reason="AutoDock Vina (pip install vina) is not installed")
pytest.importorskip("meeko", reason="meeko (pip install meeko gemmi) is not installed")

ESTRADIOL = "C[C@]12CC[C@H]3[C@@H](CCc4cc(O)ccc43)[C@@H]1CC[C@@H]2O"
PARACETAMOL = "CC(=O)Nc1ccc(O)cc1"
SALT = "CC(=O)[O-].[Na+]"  # docked as its largest fragment
BOX = (12.0, 12.0, 12.0)


def config(shared: Path, pose_dir: Path | None) -> RewardConfig:
    receptor, center = receptor_box(shared / "receptors" / "ESR1_ant")
    component = {
        "type": "docking", "receptor": receptor, "center": center, "size": BOX, "exhaustiveness": 1,
        "processes": 1,
    }
    reward = RewardConfig.model_validate({"components": [component]})
    return reward if pose_dir is None else reward.with_pose_dir(pose_dir)


def canonical(smiles: str) -> str:
    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles))


@pytest.mark.slow
@pytest.mark.long
def test_docking_keeps_each_best_pose_as_sdf_in_the_box(shared_data: Path, tmp_path: Path) -> None:
    ligands = [canonical(s) for s in (ESTRADIOL, PARACETAMOL, SALT)]
    with build_reward(config(shared_data, tmp_path / "poses")) as reward:
        batch = reward.score([*ligands, "not a smiles"])
        again = reward.score(ligands[:1])  # from the cache: the same note, no second docking
    assert again.notes[0] == batch.notes[0]
    assert batch.notes[3] == {}
    _, center = receptor_box(shared_data / "receptors" / "ESR1_ant")
    for smiles, note, affinity in zip(ligands, batch.notes, batch.scores["docking_raw"], strict=False):
        path = resolve_pose(tmp_path / "poses", str(note["pose"]))
        assert path is not None, note
        mol = Chem.MolFromMolFile(str(path), removeHs=False)
        assert mol is not None and mol.GetNumConformers() == 1 and mol.GetConformer().Is3D()
        fragments = Chem.GetMolFrags(Chem.MolFromSmiles(smiles), asMols=True)
        largest = max(fragments, key=lambda m: m.GetNumAtoms())
        # the same molecule, bond orders included, not just the same heavy atoms
        assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.MolToSmiles(largest)
        heavy = np.array([
            list(mol.GetConformer().GetAtomPosition(a.GetIdx()))
            for a in mol.GetAtoms() if a.GetAtomicNum() > 1
        ])
        assert np.all(np.abs(heavy - np.array(center)) <= np.array(BOX) / 2 + 0.5), smiles
        record = next(iter(Chem.SDMolSupplier(str(path))))
        assert record.GetProp("smiles") == smiles
        assert float(record.GetProp("vina_affinity")) == pytest.approx(affinity, abs=1e-3)
    folder = (tmp_path / "poses" / str(batch.notes[0]["pose"])).parent
    receptor, _ = receptor_box(shared_data / "receptors" / "ESR1_ant")
    assert (folder / RECEPTOR_FILE).read_text() == Path(receptor).read_text()
    setup = json.loads((folder / SETUP_FILE).read_text())
    assert setup["center"] == pytest.approx(list(center)) and setup["size"] == list(BOX)
    assert not list((tmp_path / "poses").rglob("*.part"))  # written through a rename


@pytest.mark.slow
@pytest.mark.long
def test_poses_are_shared_by_content_and_leave_affinities_unchanged(
    shared_data: Path, tmp_path: Path
) -> None:
    ligand = canonical(PARACETAMOL)
    with build_reward(config(shared_data, None)) as plain:
        without = plain.score([ligand])
    assert without.notes == [{}]  # no pose directory: nothing kept
    names, affinities = [], []
    for _ in range(2):  # two runs of the same set-up share one file
        with build_reward(config(shared_data, tmp_path / "poses")) as reward:
            batch = reward.score([ligand])
        names.append(str(batch.notes[0]["pose"]))
        affinities.append(float(batch.scores["docking_raw"][0]))
    assert names[0] == names[1]
    assert affinities == [float(without.scores["docking_raw"][0])] * 2
    assert len(list((tmp_path / "poses").rglob("*.sdf"))) == 1
    other = config(shared_data, tmp_path / "poses").model_copy(deep=True)
    moved = other.components[0].model_copy(update={"center": (30.0, -1.0, 25.0)})
    with build_reward(other.model_copy(update={"components": [moved]})) as reward:
        elsewhere = str(reward.score([ligand]).notes[0]["pose"])
    assert elsewhere.split("/")[0] != names[0].split("/")[0]  # another box: another set-up folder
