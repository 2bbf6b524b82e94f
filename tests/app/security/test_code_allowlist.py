"""API callers cannot run code the operator has not allowed: a ``python`` reward's target and a
``command`` reward's executable must be on the server's allowlist (a TOML settings file or the
environment), a command's environment cannot be set, and resuming or sampling a stored run checks
its reward against today's list. Against a real ``synflow serve``; the CLI is not restricted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core.db import Database
from app.core.models import Run
from app.core.settings import Settings
from synflow.config import parse_run_config
from tests.app.security.conftest import Server, start_server, stop_server

ALLOWED_MODULE = "tests.app.reliability.plugin_targets"


def _config(component: dict[str, Any]) -> dict[str, Any]:
    return {"reward": {"components": [component]}, "training": {"steps": 2, "batch_size": 2}}


def _python(target: str) -> dict[str, Any]:
    return _config({"type": "python", "target": target, "name": "plug"})


def _command(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    return _config({"type": "command", "command": argv, "name": "cmd", "env": env or {}})


@pytest.fixture(scope="module")
def allowing(migrated_sqlite: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose settings file allows one module's functions and whose environment allows cat."""
    tmp_path = tmp_path_factory.mktemp("allowlist")
    target = tmp_path / "synflow.db"
    shutil.copyfile(migrated_sqlite, target)
    settings_file = tmp_path / "synflow.toml"
    settings_file.write_text(f'allowed_python_targets = ["{ALLOWED_MODULE}:*"]\n')
    env = {"SYNFLOW_SETTINGS_FILE": str(settings_file), "SYNFLOW_ALLOWED_COMMANDS": json.dumps(["/bin/cat"])}
    running = start_server(tmp_path, f"sqlite:///{target}", env)
    try:
        yield running
    finally:
        stop_server(running)


def _run_count(server: Server) -> int:
    return len(server.client.get("/api/v1/runs", params={"limit": 500}).json()["items"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_python("os:system"), "reward.components.0.target"),
        (_python(f"{ALLOWED_MODULE}_evil:always_raises"), "reward.components.0.target"),
        (_command(["/bin/sh", "-c", "touch /tmp/pwned"]), "reward.components.0.command"),
        (_command(["/bin/cat"], {"LD_PRELOAD": "/tmp/evil.so"}), "reward.components.0.env"),
    ],
    ids=["os.system", "module-prefix", "shell", "command-env"],
)
def test_code_not_on_the_allowlist_is_refused_with_403_naming_the_field(
    allowing: Server, body: dict[str, Any], field: str
) -> None:
    before = _run_count(allowing)
    response = allowing.client.post("/api/v1/runs", json=body)
    assert response.status_code == 403, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert field in response.json()["message"]
    assert _run_count(allowing) == before, "nothing stored"


@pytest.mark.parametrize(
    "body", [_python(f"{ALLOWED_MODULE}:flaky"), _command(["/bin/cat"])], ids=["python", "command"]
)
def test_code_on_the_allowlist_is_accepted(allowing: Server, body: dict[str, Any]) -> None:
    response = allowing.client.post("/api/v1/runs", json=body)
    assert response.status_code == 201, response.text


def test_a_server_without_an_allowlist_refuses_all_code(server: Server) -> None:
    for body in (_python(f"{ALLOWED_MODULE}:flaky"), _command(["/bin/cat"])):
        response = server.client.post("/api/v1/runs", json=body)
        assert response.status_code == 403, response.text


def test_a_run_cannot_name_a_ray_cluster_other_than_the_servers(allowing: Server, server: Server) -> None:
    """A worker unpickles what a Ray cluster's actors send: a caller's own cluster could run code on it.
    Neither server here sets ``ray_address``; a run that leaves it unset uses the server's (or a
    local Ray)."""
    body = {
        "reward": {"components": [{"type": "qed"}]},
        "training": {"steps": 2, "batch_size": 2, "samplers": 2, "executor": "ray"},
    }
    for running in (allowing, server):
        before = _run_count(running)
        named = {**body, "training": {**body["training"], "ray_address": "ray://evil.example:10001"}}
        response = running.client.post("/api/v1/runs", json=named)
        assert response.status_code == 403, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["training.ray_address"]
        assert _run_count(running) == before, "nothing stored"
    created = server.client.post("/api/v1/runs", json=body)
    assert created.status_code == 201, created.text
    assert server.client.post(f"/api/v1/runs/{created.json()['id']}/cancel").status_code == 202


def test_resume_and_sample_check_a_stored_run_against_todays_list(allowing: Server) -> None:
    """A run stored before the list changed (here: written straight to the database) is not resumed
    or sampled from through the API."""
    config = parse_run_config(_python("os:system")).model_dump(mode="json")
    db = Database(allowing.database_url)
    try:
        with db.session() as session:
            failed = Run(config=config, total_steps=2, status="failed", name="old plugin")
            done = Run(
                config=config, total_steps=2, status="succeeded", name="old plugin", checkpoint_path="x"
            )
            session.add_all([failed, done])
            session.flush()
            failed_id, done_id = failed.id, done.id
    finally:
        db.dispose()
    for path in (f"/api/v1/runs/{failed_id}/resume", f"/api/v1/runs/{done_id}/sample"):
        response = allowing.client.post(path, json={})
        assert response.status_code == 403, (path, response.text)
        assert response.json()["errors"][0]["field"] == "reward.components.0.target"
    assert allowing.client.get(f"/api/v1/runs/{failed_id}").json()["status"] == "failed"


def test_settings_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment overrides the file, key by key; a missing file is an error naming it."""
    path = tmp_path / "s.toml"
    path.write_text('allowed_commands = ["/bin/true"]\nmax_body_bytes = 2048\n')
    monkeypatch.setenv("SYNFLOW_SETTINGS_FILE", str(path))
    monkeypatch.setenv("SYNFLOW_MAX_BODY_BYTES", "4096")
    settings = Settings()
    assert settings.allowed_commands == ["/bin/true"] and settings.max_body_bytes == 4096
    monkeypatch.setenv("SYNFLOW_SETTINGS_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(ValueError, match=r"missing\.toml"):
        Settings()


def test_the_cli_run_by_the_operator_is_not_restricted(tmp_path: Path) -> None:
    """The operator's own ``synflow score`` runs a shell command reward that the API refuses."""
    reward = tmp_path / "reward.toml"
    reward.write_text(
        '[[components]]\ntype = "command"\nname = "shell"\n'
        'command = ["/bin/sh", "-c", "while read line; do echo 0.25; done"]\n'
    )
    molecules = tmp_path / "m.smi"
    molecules.write_text("CCO\nc1ccccc1O\n")
    synflow = str(Path(sys.executable).with_name("synflow"))
    done = subprocess.run(
        [synflow, "score", str(reward), str(molecules)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert [json.loads(line)["scores"]["shell"] for line in done.stdout.splitlines()] == [0.25, 0.25]
