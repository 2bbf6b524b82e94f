"""The API alone (``synflow serve --workers 0``, what the slim ``api`` image runs) needs none of the
training stack: a real server where ``torch``, ``torch_geometric``, ``vina``, ``meeko`` and ``gemmi``
refuse to import serves runs, molecules (with SMARTS and similarity filters), depictions, exports,
catalogues, uploads and pages. The packages blocked are the ones docker/api_requirements.py leaves
out of the api image."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.app.security.conftest import start_server, stop_server
from tests.scripts import load_script


def _training_only() -> list[str]:
    """Import names of the distributions the api image leaves out."""
    module = load_script("docker/api_requirements.py")
    return sorted(name.replace("-", "_") for name in module.TRAINING_ONLY)


@pytest.fixture
def blocked_torch(tmp_path: Path) -> Path:
    root = tmp_path / "no-training-stack"
    names = _training_only()
    assert {"torch", "torch_geometric", "vina"} <= set(names)
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(f'raise ImportError("{name} is not installed here")\n')
    return root


def test_every_read_and_write_of_the_api_without_torch(
    migrated_sqlite: Path, tmp_path: Path, blocked_torch: Path
) -> None:
    target = tmp_path / "synflow.db"
    shutil.copyfile(migrated_sqlite, target)
    server = start_server(tmp_path, f"sqlite:///{target}", {"PYTHONPATH": str(blocked_torch)})
    client, run_id = server.client, server.run_id
    try:
        body = {"preset": "optimise", "reward": {"components": [{"type": "qed"}]}, "training": {"steps": 2}}
        assert client.post("/api/v1/runs", json=body).status_code == 201
        upload = client.post(
            "/api/v1/libraries",
            data={"name": "blocks"},
            files={"file": ("b.smi", b"CCO\nCC(=O)O\nNCc1ccccc1\n")},
        )
        assert upload.status_code == 201, upload.text
        molecules = client.get(f"/api/v1/runs/{run_id}/molecules", params={"limit": 5}).json()["items"]
        molecule = molecules[0]["id"]
        for path, params in [
            ("/api/v1/runs", {}),
            (f"/api/v1/runs/{run_id}", {}),
            (f"/api/v1/runs/{run_id}/metrics", {}),
            (f"/api/v1/runs/{run_id}/molecules", {"smarts": "c1ccccc1"}),
            (f"/api/v1/runs/{run_id}/molecules", {"similar_to": "c1ccccc1O", "min_similarity": 0.2}),
            (f"/api/v1/molecules/{molecule}", {}),
            (f"/api/v1/molecules/{molecule}/svg", {}),
            (f"/api/v1/runs/{run_id}/export", {"format": "sdf"}),
            ("/api/v1/catalogue/reward-components", {}),
            ("/api/v1/catalogue/presets", {}),
            ("/api/v1/libraries", {}),
            ("/api/v1/template-sets", {}),
            ("/", {}),
            ("/runs/new", {}),
            (f"/runs/{run_id}", {}),
            (f"/runs/{run_id}/molecules", {}),
            (f"/molecules/{molecule}", {}),
            ("/metrics", {}),
        ]:
            response = client.get(path, params=params)
            assert response.status_code == 200, (path, response.text[:500])
    finally:
        stop_server(server)
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log and "is not installed here" not in log, log[-3000:]
