"""A generator file carries the data files its reward reads: ``POST /api/v1/generators`` (in-process)
writes them under DATA_DIR/generators/<run id>/, re-points the imported run at them, and a sampling
job of the imported run scores with the embedded assay model; an altered file is refused (422,
``file``) and nothing is stored. SQLite only: the import and the job are the same on both databases,
and the store is covered on both elsewhere."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from rdkit import Chem
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

from app.cli.main import build_cli
from app.core.db import Database
from app.core.settings import Settings
from app.main import create_app
from app.worker.process import Worker
from synflow.assembly import build_policy, load_chemistry
from synflow.bundle import export_generator, read_generator
from synflow.checkpoint import CHECKPOINT_NAME, read_checkpoint, write_checkpoint
from synflow.config import parse_run_config
from synflow.rewards.assay import load_assay_model
from tests.app.test_generators import BLOCKS, TEMPLATES, tiny_run
from tests.synflow.rewards.assay_data import save_logp_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    return _exported(tmp_path_factory.mktemp("exporter"))


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db)) as test_client:
        yield test_client


def _export(component: dict[str, Any], path: Path) -> Path:
    """A generator file (untrained weights: enough to sample) of the tiny run rewarded by QED and
    ``component``, as the exporting machine writes it."""
    raw = tiny_run(str(BLOCKS), str(TEMPLATES))
    raw["reward"] = {"components": [{"type": "qed"}, component]}
    config = parse_run_config(raw)
    chemistry = load_chemistry(config.environment)
    policy, _ = build_policy(config, chemistry)
    state = {"config": config.model_dump(mode="json"), "sampling_model": policy.state_dict(), "step": 0}
    export_generator(state, chemistry, path)
    return path


def _exported(tmp_path: Path) -> tuple[bytes, bytes]:
    """A generator file (untrained weights: enough to sample) whose reward scores QED and an assay
    model's logP, exported on "another machine" whose model file is then gone; and the model's bytes."""
    model = tmp_path / "elsewhere" / "logp.npz"
    digest = save_logp_model(model, 30)
    path = _export({"type": "assay_model", "model": str(model)}, tmp_path / "g.safetensors")
    content, model_bytes = path.read_bytes(), model.read_bytes()
    assert hashlib.sha256(model_bytes).hexdigest() == digest
    model.unlink()
    path.unlink()
    return content, model_bytes


def _altered(content: bytes, tmp_path: Path) -> bytes:
    """The same file with one byte of the embedded model flipped (the metadata unchanged)."""
    source = tmp_path / "source.safetensors"
    source.write_bytes(content)
    with safe_open(str(source), framework="pt") as handle:
        meta = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    tensors["reward_file.1.model"] = tensors["reward_file.1.model"].clone()
    tensors["reward_file.1.model"][100] ^= 0xFF
    target = tmp_path / "altered.safetensors"
    save_file(tensors, str(target), metadata=meta)
    return target.read_bytes()


def _upload(client: TestClient, kind: str, path: Path) -> None:
    with path.open("rb") as handle:
        response = client.post(
            f"/api/v1/{kind}", data={"name": path.stem}, files={"file": (path.name, handle)}
        )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_imported_generator_samples_with_its_embedded_assay_model(
    client: TestClient, db: Database, settings: Settings, exported: tuple[bytes, bytes], tmp_path: Path
) -> None:
    content, model_bytes = exported
    _upload(client, "libraries", BLOCKS)
    _upload(client, "template-sets", TEMPLATES)

    refused = client.post(
        "/api/v1/generators", files={"file": ("g.safetensors", _altered(content, tmp_path))}
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "file"
    assert "reward.components.1.model ('logp.npz'): its SHA-256 is not the one recorded" in refused.text
    assert client.get("/api/v1/runs").json()["items"] == []
    assert not (settings.data_dir / "generators").exists() or not any(
        (settings.data_dir / "generators").iterdir()
    )

    created = client.post("/api/v1/generators", files={"file": ("g.safetensors", content)})
    assert created.status_code == 201, created.text
    run = created.json()
    folder = (settings.data_dir / "generators" / run["id"]).resolve()
    component: dict[str, Any] = run["config"]["reward"]["components"][1]
    assert component["model"] == str(folder / "1" / "logp.npz")
    assert component["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert Path(component["model"]).read_bytes() == model_bytes
    checkpoint = read_checkpoint(settings.checkpoint_root() / run["id"] / CHECKPOINT_NAME)
    runtime = checkpoint["config"]["reward"]["components"][1]
    assert runtime["model"] == component["model"]  # what the sampling job builds its reward from

    job = client.post(f"/api/v1/runs/{run['id']}/sample", json={"count": 8})
    assert job.status_code in (201, 202), job.text
    assert Worker(db, settings).run_once() == job.json()["id"]
    finished = client.get(f"/api/v1/runs/{job.json()['id']}").json()
    assert finished["status"] == "succeeded", finished["error"]
    items = client.get(f"/api/v1/runs/{job.json()['id']}/molecules", params={"limit": 500}).json()["items"]
    scored = [m for m in items if m["scores"].get("logp") is not None]
    assert scored, items
    model = load_assay_model(component["model"])
    expected = model.score([Chem.MolFromSmiles(m["smiles"]) for m in scored])
    np.testing.assert_allclose([m["scores"]["logp"] for m in scored], expected, rtol=1e-6)

    # exported again from its checkpoint (not the cached upload), it carries the model it was given
    served = settings.checkpoint_root() / run["id"] / "generator.safetensors"
    os.utime(served, ns=(0, 0))
    again = client.get(f"/api/v1/runs/{run['id']}/generator")
    assert again.status_code == 200, again.text
    (tmp_path / "again.safetensors").write_bytes(again.content)
    assert read_generator(tmp_path / "again.safetensors").reward_files[0].data == model_bytes
    Path(component["model"]).unlink()
    os.utime(served, ns=(0, 0))
    gone = client.get(f"/api/v1/runs/{run['id']}/generator")
    assert gone.status_code == 409 and gone.json()["errors"][0]["field"] == "reward.components.1.model"
    assert "cannot be read" in gone.json()["message"]

    assert client.delete(f"/api/v1/runs/{job.json()['id']}").status_code == 204
    assert client.delete(f"/api/v1/runs/{run['id']}").status_code == 204
    assert not folder.exists()  # an imported run's reward files go with it


def test_cli_sample_writes_the_reward_files_and_scores_with_them(
    exported: tuple[bytes, bytes], tmp_path: Path
) -> None:
    content, model_bytes = exported
    generator = tmp_path / "g.safetensors"
    generator.write_bytes(content)
    chemistry = ["--library", str(BLOCKS), "--templates", str(TEMPLATES)]
    out, folder = tmp_path / "drawn.jsonl", tmp_path / "reward-files"
    sample = ["generator", "sample", str(generator), "-n", "6", *chemistry, "-o", str(out)]
    result = CliRunner().invoke(build_cli(), [*sample, "--reward-dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert (folder / "1" / "logp.npz").read_bytes() == model_bytes
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    scored = [line for line in lines if line["scores"].get("logp") is not None]
    assert scored, lines
    expected = load_assay_model(folder / "1" / "logp.npz").score(
        [Chem.MolFromSmiles(x["smiles"]) for x in scored]
    )
    np.testing.assert_allclose([x["scores"]["logp"] for x in scored], expected, rtol=1e-6)
    result = CliRunner().invoke(build_cli(), sample)  # a temporary folder, removed afterwards
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 6

    generator.write_bytes(_altered(content, tmp_path))
    result = CliRunner().invoke(build_cli(), sample)
    assert result.exit_code == 2
    assert "reward.components.1.model ('logp.npz'): its SHA-256 is not the one recorded" in result.output


def _docking_generator(tmp_path: Path, receptor: Path, embed: bool) -> bytes:
    """A generator whose reward docks on ``receptor`` (no docking runs here); with ``embed`` False,
    a file as an earlier synflow wrote it (format 1: the receptor's path only, no bytes)."""
    docking = {"type": "docking", "receptor": str(receptor), "center": [0.0, 0.0, 0.0]}
    path = _export(docking, tmp_path / "docking.safetensors")
    if not embed:
        with safe_open(str(path), framework="pt") as handle:
            meta = dict(handle.metadata())
            names = [k for k in handle.keys() if k != "reward_file.1.receptor"]  # noqa: SIM118
            tensors = {k: handle.get_tensor(k) for k in names}
        info = json.loads(meta["generator"])
        del info["reward_files"]
        meta.update(generator=json.dumps(info), format_version="1")
        save_file(tensors, str(path), metadata=meta)
    return path.read_bytes()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_receptors_come_from_the_data_directory_or_inside_the_file(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    """A run's docking receptor must lie inside the data directory (a file read from anywhere would
    leave the server inside the run's generator file); an imported file's embedded receptor is
    written there; a run that names one outside is never exported."""
    _upload(client, "libraries", BLOCKS)
    _upload(client, "template-sets", TEMPLATES)
    receptor = tmp_path / "elsewhere" / "receptor.pdbqt"
    receptor.parent.mkdir()
    receptor.write_text("ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00  0.00    -0.346 N \n")
    docking = {"type": "docking", "receptor": "/etc/passwd", "center": [0, 0, 0]}
    refused = client.post("/api/v1/runs", json={"reward": {"components": [docking]}})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "reward.components.0.receptor"

    old = _docking_generator(tmp_path, receptor, False)
    legacy = client.post("/api/v1/generators", files={"file": ("old.safetensors", old)})
    assert legacy.status_code == 422, legacy.text
    assert legacy.json()["errors"][0]["field"] == "reward.components.1.receptor"

    new = _docking_generator(tmp_path, receptor, True)
    created = client.post("/api/v1/generators", files={"file": ("g.safetensors", new)})
    assert created.status_code == 201, created.text
    run = created.json()
    written = Path(run["config"]["reward"]["components"][1]["receptor"])
    assert written.is_relative_to(settings.data_dir.resolve() / "generators" / run["id"])
    assert written.read_bytes() == receptor.read_bytes()

    # a run whose checkpoint names a receptor outside (created before receptors were checked)
    checkpoint_path = settings.checkpoint_root() / run["id"] / CHECKPOINT_NAME
    state = read_checkpoint(checkpoint_path)
    state["config"]["reward"]["components"][1]["receptor"] = "/etc/passwd"
    write_checkpoint(state, checkpoint_path, 0)
    os.utime(settings.checkpoint_root() / run["id"] / "generator.safetensors", ns=(0, 0))
    export = client.get(f"/api/v1/runs/{run['id']}/generator")
    assert export.status_code == 409, export.text
    assert export.json()["errors"][0]["field"] == "reward.components.1.receptor"
    assert "root:" not in export.text
