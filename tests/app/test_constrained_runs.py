"""Constrained starts through the service: a malformed constraint is a 422 naming the field; one the
library refuses fails the run with a message naming the entry; a run with fixed start blocks and a
scaffold finishes and every stored molecule starts with an allowed block and contains the scaffold.
A real ``synflow serve`` process (embedded worker) on the tiny chemistry of tests/synflow."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from rdkit import Chem

from app.core.db import Database
from app.core.settings import Settings
from app.main import create_app
from devsupport.postgres import free_port
from tests.app.test_end_to_end import _wait_finished, _wait_ready
from tests.routes import route_replays
from tests.synflow.tiny_setting import BLOCKS, TEMPLATES

QED = {"components": [{"type": "qed"}]}


def test_a_malformed_constraint_is_a_422_naming_the_field(settings: Settings, db: Database) -> None:
    with TestClient(create_app(settings, db)) as client:
        bad = {"reward": QED, "environment": {"scaffold": "c1cc(", "start_blocks": ["CCO", ""]}}
        answer = client.post("/api/v1/runs", json=bad)
        assert answer.status_code == 422
        fields = {e["field"]: e["message"] for e in answer.json()["errors"]}
        assert set(fields) == {"environment.scaffold", "environment.start_blocks.1"}
        assert "c1cc(" in fields["environment.scaffold"] and "SMARTS" in fields["environment.scaffold"]
        empty = client.post("/api/v1/runs", json={"reward": QED, "environment": {"start_blocks": []}})
        assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "environment.start_blocks"


@pytest.fixture
def tiny_server(database_url: str, tmp_path: Path) -> Iterator[tuple[httpx.Client, dict]]:
    """A server whose data directory holds the tiny chemistry, and the environment naming it."""
    data = tmp_path / "data"
    data.mkdir()
    blocks, templates = data / "blocks.smi", data / "templates.txt"
    blocks.write_text("".join(f"{s} TINY{i:02d}\n" for i, s in enumerate(BLOCKS)))
    templates.write_text("".join(f"{t}\n" for t in TEMPLATES))
    port = free_port()
    env = {
        **os.environ,
        "SYNFLOW_DATABASE_URL": database_url,
        "SYNFLOW_DATA_DIR": str(data),
        "SYNFLOW_WORKER_POLL_SECONDS": "0.2",
        "SYNFLOW_WORKER_LEASE_SECONDS": "30",
    }
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", "1"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        try:
            _wait_ready(client, proc, log_path)
            yield client, {"max_reactions": 2, "building_blocks": str(blocks), "templates": str(templates)}
        finally:
            client.close()
            proc.terminate()
            proc.wait(timeout=60)


def _run(environment: dict, steps: int = 6) -> dict:
    return {
        "name": "constrained",
        "reward": QED,
        "environment": environment,
        "model": {"hidden": 16, "layers": 1, "block_hidden": 16},
        "training": {"steps": steps, "batch_size": 16, "checkpoint_every": 5, "log_every": 1, "seed": 3,
                     "device": "cpu"},
    }


def test_a_constrained_run_stores_only_routes_from_allowed_blocks_with_the_scaffold(tiny_server) -> None:
    client, chemistry = tiny_server
    # glycine by SMILES, benzylamine by catalogue ID; every final molecule needs an amide
    environment = {**chemistry, "start_blocks": ["NCC(O)=O", "TINY02"], "scaffold": "C(=O)N"}
    created = client.post("/api/v1/runs", json=_run(environment))
    assert created.status_code == 201, created.text
    run = _wait_finished(client, created.json()["id"])
    assert run["status"] == "succeeded", run["error"]
    items = client.get(f"/api/v1/runs/{run['id']}/molecules", params={"limit": 500}).json()["items"]
    assert items, "the run stored molecules"
    amide = Chem.MolFromSmarts("C(=O)N")
    for item in items:
        first = item["route"]["steps"][0]
        assert first["action"] == "start"
        assert first["building_block"]["id"] in ("TINY05", "TINY02"), first
        assert Chem.MolFromSmiles(item["smiles"]).HasSubstructMatch(amide), item["smiles"]
        assert route_replays(item["route"]) and item["route"]["steps"][-1]["product"] == item["smiles"]


def test_a_constraint_the_library_refuses_fails_the_run_naming_the_entry(tiny_server) -> None:
    client, chemistry = tiny_server
    environment = {**chemistry, "start_blocks": ["TINY05", "EN300-0000"]}
    created = client.post("/api/v1/runs", json=_run(environment, steps=2))
    assert created.status_code == 201, created.text
    run = _wait_finished(client, created.json()["id"])
    assert run["status"] == "failed"
    assert "environment.start_blocks.1" in run["error"] and "'EN300-0000'" in run["error"], run["error"]
