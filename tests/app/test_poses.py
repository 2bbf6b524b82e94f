"""Docked poses in the service, on SQLite and PostgreSQL: a molecule's ``notes["pose"]`` reaches the
``molecules.pose`` column through the store; the API serves the pose (SDF), the receptor kept beside
it and the docking box, 404s that name the molecule when there is none, never a file a tampered row
or a config outside the data directory names; the SDF export gives the pose's 3-D block (the run's and
the browser's selection export alike); runs get
DATA_DIR/poses from the worker, and the API refuses a ``pose_dir`` outside the data directory.

The pose files are written with ``synflow.rewards.poses`` from an RDKit 3-D embedding (the docking
itself is tested in tests/synflow/rewards/test_docking_poses.py and, end to end through a real
service run, in tests/app/pages/test_docked_pose_page.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rdkit import Chem
from rdkit.Chem import rdDistGeom
from sqlalchemy import select, update

from app.core.db import Database
from app.core.models import Molecule, Run
from app.core.settings import Settings
from app.main import create_app
from app.runs.poses import pose_root
from app.runs.store import write_molecules
from app.worker.execution import _with_server_defaults
from synflow.callbacks import SampledMolecule
from synflow.config import parse_run_config
from synflow.rewards.poses import RECEPTOR_FILE, SETUP_FILE, ligand_file, setup_digest, write_atomic

RECEPTOR = "ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00  0.00    -0.346 N \n"
CENTER, SIZE = [1.0, 2.0, 3.0], [12.0, 12.0, 12.0]
DOCKED, PLAIN = "CC(=O)Nc1ccc(O)cc1", "CCO"


def docking_config(receptor: Path, pose_dir: Path | None = None) -> dict[str, object]:
    component: dict[str, object] = {"type": "docking", "receptor": str(receptor), "center": CENTER}
    if pose_dir is not None:
        component["pose_dir"] = str(pose_dir)
    return {"reward": {"components": [component]}, "training": {"steps": 1, "batch_size": 2}}


def write_pose(pose_dir: Path, smiles: str) -> str:
    """A pose as the docking scorer keeps it: an SDF named by content, receptor and set-up beside it."""
    setup = {"center": CENTER, "size": SIZE, "exhaustiveness": 1, "n_poses": 1, "seed": 0}
    folder = setup_digest(RECEPTOR, setup)
    write_atomic(pose_dir / folder / RECEPTOR_FILE, RECEPTOR)
    write_atomic(pose_dir / folder / SETUP_FILE, json.dumps({**setup, "receptor": "receptor.pdbqt"}))
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    rdDistGeom.EmbedMolecule(mol, randomSeed=7)
    mol.SetProp("vina_affinity", "-7.125")
    name = f"{folder}/{ligand_file(smiles)}"
    write_atomic(pose_dir / name, Chem.MolToMolBlock(mol) + ">  <vina_affinity>\n-7.125\n\n$$$$\n")
    return name


@dataclass
class Docked:
    client: TestClient
    settings: Settings
    run_id: str
    docked_id: int
    plain_id: int
    pose: str


def add_run(
    db: Database, config: dict[str, object], records: list[SampledMolecule]
) -> tuple[str, dict[str, int]]:
    with db.session() as session:
        run = Run(config=config, total_steps=1, status="succeeded", name="docked")
        session.add(run)
        session.flush()
        run_id = run.id
    with db.session() as session:
        write_molecules(session, run_id, records)
    with db.session() as session:
        rows = session.execute(select(Molecule.smiles, Molecule.id).where(Molecule.run_id == run_id))
        return run_id, {smiles: mol_id for smiles, mol_id in rows}


@pytest.fixture
def docked(settings: Settings, db: Database, tmp_path: Path) -> Iterator[Docked]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    receptor = tmp_path / "receptor.pdbqt"
    receptor.write_text(RECEPTOR)
    pose = write_pose(pose_root(settings.data_dir), DOCKED)
    records = [
        SampledMolecule(DOCKED, reward=0.6, step=0, scores={"docking": 0.6}, notes={"pose": pose}),
        SampledMolecule(PLAIN, reward=0.1, step=0, scores={"docking": 0.1}),
    ]
    run_id, ids = add_run(db, docking_config(receptor), records)
    with TestClient(create_app(settings, db)) as client:
        yield Docked(client, settings, run_id, ids[DOCKED], ids[PLAIN], pose)


def test_a_pose_note_reaches_the_column_and_the_molecule(docked: Docked, db: Database) -> None:
    with db.session() as session:
        assert session.scalar(select(Molecule.pose).where(Molecule.id == docked.docked_id)) == docked.pose
        assert session.scalar(select(Molecule.pose).where(Molecule.id == docked.plain_id)) is None
    body = docked.client.get(f"/api/v1/molecules/{docked.docked_id}").json()
    assert body["pose_url"] == f"/api/v1/molecules/{docked.docked_id}/pose"
    assert docked.client.get(f"/api/v1/molecules/{docked.plain_id}").json()["pose_url"] is None


def test_the_pose_receptor_and_box_are_served(docked: Docked) -> None:
    pose = docked.client.get(f"/api/v1/molecules/{docked.docked_id}/pose")
    assert pose.status_code == 200 and pose.headers["content-type"].startswith("chemical/x-mdl-sdfile")
    mol = Chem.MolFromMolBlock(pose.text, removeHs=False)
    assert mol.GetConformer().Is3D() and Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.CanonSmiles(DOCKED)
    receptor = docked.client.get(f"/api/v1/molecules/{docked.docked_id}/receptor")
    assert receptor.status_code == 200 and receptor.text == RECEPTOR
    info = docked.client.get(f"/api/v1/molecules/{docked.docked_id}/docking").json()
    assert info == {
        "molecule_id": docked.docked_id,
        "pose_url": f"/api/v1/molecules/{docked.docked_id}/pose",
        "receptor_url": f"/api/v1/molecules/{docked.docked_id}/receptor",
        "receptor_name": "receptor.pdbqt", "center": CENTER, "size": SIZE, "affinity": -7.125,
        "exhaustiveness": 1, "seed": 0,
    }


def test_a_molecule_without_a_pose_gets_404s_that_name_it(docked: Docked) -> None:
    for what in ("pose", "receptor", "docking"):
        answer = docked.client.get(f"/api/v1/molecules/{docked.plain_id}/{what}")
        assert answer.status_code == 404, what
        assert f"molecule {docked.plain_id} has no docked pose" in answer.json()["message"]
        assert answer.json()["errors"][0]["field"] == "molecule_id"
        assert docked.client.get(f"/api/v1/molecules/999999/{what}").status_code == 404


def test_a_tampered_pose_name_or_a_pose_dir_outside_reads_nothing(
    docked: Docked, db: Database, tmp_path: Path
) -> None:
    secret = docked.settings.data_dir / "synflow-secret.sdf"
    secret.write_text("secret\n")
    folder = docked.pose.split("/")[0]
    for bad in ("../synflow-secret.sdf", "/etc/passwd", f"{folder}/../../synflow-secret.sdf"):
        with db.session() as session:
            session.execute(update(Molecule).where(Molecule.id == docked.docked_id).values(pose=bad))
        for what in ("pose", "receptor", "docking"):
            answer = docked.client.get(f"/api/v1/molecules/{docked.docked_id}/{what}")
            assert answer.status_code == 404, (bad, what)
            assert "secret" not in answer.text and "root:" not in answer.text
    outside = tmp_path / "outside-poses"
    name = write_pose(outside, DOCKED)
    run_id, ids = add_run(
        db, docking_config(tmp_path / "receptor.pdbqt", outside),
        [SampledMolecule(DOCKED, reward=0.6, step=0, notes={"pose": name})],
    )
    assert docked.client.get(f"/api/v1/molecules/{ids[DOCKED]}/pose").status_code == 404
    sdf = docked.client.get(f"/api/v1/runs/{run_id}/export", params={"format": "sdf"}).text
    assert "<coordinates>\n2d" in sdf


def test_a_receptor_or_pose_dir_outside_the_data_dir_is_refused(docked: Docked, tmp_path: Path) -> None:
    receptor = docked.settings.data_dir / "receptors" / "receptor.pdbqt"
    config = docking_config(receptor, tmp_path / "elsewhere")
    answer = docked.client.post("/api/v1/runs", json=config)
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["reward.components.0.pose_dir"]
    escaping = docking_config(docked.settings.data_dir / ".." / "receptor.pdbqt")
    answer = docked.client.post("/api/v1/runs", json=escaping)
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["reward.components.0.receptor"]
    inside = docking_config(receptor, docked.settings.data_dir / "my-poses")
    assert docked.client.post("/api/v1/runs", json=inside).status_code == 201


def test_the_sdf_export_gives_the_docked_pose_in_3d(docked: Docked) -> None:
    sdf = docked.client.get(f"/api/v1/runs/{docked.run_id}/export", params={"format": "sdf"}).text
    supplier = Chem.SDMolSupplier()
    supplier.SetData(sdf, removeHs=False)
    records = {m.GetProp("smiles"): m for m in supplier}
    pose = records[DOCKED]
    assert pose.GetProp("coordinates") == "docked_3d" and pose.GetConformer().Is3D()
    assert pose.GetProp("_Name") == f"{docked.run_id}:{docked.docked_id}"
    assert float(pose.GetProp("reward")) == pytest.approx(0.6) and pose.HasProp("score_docking")
    served = Chem.MolFromMolBlock(
        docked.client.get(f"/api/v1/molecules/{docked.docked_id}/pose").text, removeHs=False
    )
    assert pose.GetConformer().GetPositions() == pytest.approx(served.GetConformer().GetPositions())
    plain = records[PLAIN]
    assert plain.GetProp("coordinates") == "2d" and not plain.GetConformer().Is3D()


def test_the_selection_sdf_gives_the_docked_pose_as_the_run_export_does(docked: Docked) -> None:
    run_sdf = docked.client.get(f"/api/v1/runs/{docked.run_id}/export", params={"format": "sdf"}).text
    form = {"ids": f"{docked.plain_id},{docked.docked_id}", "format": "sdf"}
    selection = docked.client.post(f"/runs/{docked.run_id}/molecules/export", data=form)
    assert selection.status_code == 200, selection.text
    records = run_sdf.split("$$$$\n")[:-1]  # the run's: best first, the docked molecule
    assert selection.text == records[1] + "$$$$\n" + records[0] + "$$$$\n"  # the selection's order
    supplier = Chem.SDMolSupplier()
    supplier.SetData(selection.text, removeHs=False)
    plain, pose = list(supplier)
    assert pose.GetProp("coordinates") == "docked_3d" and pose.GetConformer().Is3D()
    assert plain.GetProp("coordinates") == "2d"
    assert pose.GetProp("_Name") == f"{docked.run_id}:{docked.docked_id}"


def test_the_pose_endpoints_are_documented(docked: Docked) -> None:
    paths = docked.client.get("/openapi.json").json()["paths"]
    for what in ("pose", "receptor", "docking"):
        operation = paths[f"/api/v1/molecules/{{molecule_id}}/{what}"]["get"]
        assert operation["summary"] and operation["description"] and "404" in operation["responses"]
    pose_200 = paths["/api/v1/molecules/{molecule_id}/pose"]["get"]["responses"]["200"]
    assert "chemical/x-mdl-sdfile" in pose_200["content"]


def test_a_run_gets_the_servers_pose_dir_unless_it_names_one(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    receptor = tmp_path / "receptor.pdbqt"
    stored = parse_run_config(docking_config(receptor))
    used = _with_server_defaults(stored, settings)
    assert used.reward.components[0].pose_dir == tmp_path / "poses"  # type: ignore[union-attr]
    assert stored.reward.components[0].pose_dir is None  # type: ignore[union-attr]
    own = parse_run_config(docking_config(receptor, tmp_path / "mine"))
    assert _with_server_defaults(own, settings).reward.components[0].pose_dir == tmp_path / "mine"  # type: ignore[union-attr]
