"""A budgeted run in the service: the worker stops when the oracle budget is spent, the run ends
``succeeded`` with the reason shown by the API, and only scored molecules are stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rdkit import Chem
from rdkit.Chem import QED

from app.core.db import Database
from app.core.settings import Settings
from app.main import create_app
from app.worker.process import Worker
from tests.app.reliability.conftest import queue_run


def test_the_budget_ends_a_service_run_with_its_reason(
    db: Database, settings: Settings, tiny_run: Callable[..., dict[str, Any]]
) -> None:
    config = tiny_run(reward={"components": [{"type": "qed"}], "budget": 6}, steps=500, batch_size=8)
    run_id = queue_run(db, config)
    assert Worker(db, settings).run_once() == run_id
    with TestClient(create_app(settings, db)) as client:
        run = client.get(f"/api/v1/runs/{run_id}").json()
        assert run["status"] == "succeeded" and run["stop_reason"] == "oracle budget spent", run
        assert 0 < run["progress"]["step"] < 500 and run["checkpoint_step"] == run["progress"]["step"]
        items = client.get(f"/api/v1/runs/{run_id}/molecules", params={"limit": 100}).json()["items"]
    assert len(items) == 6  # every scored molecule, and nothing unscored
    for item in items:
        assert item["reward"] == pytest.approx(QED.qed(Chem.MolFromSmiles(item["smiles"])))
        assert item["scores"]["qed"] == pytest.approx(item["reward"])
