"""With auth on, a browser's EventSource (no Authorization header) opens a run's event stream with a
short-lived token scoped to that run: minted only with a bearer token, refused on other runs, other
routes, when tampered with or expired. Against a real ``synflow serve``."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.auth import issue_scoped_token, signing_key, verify_scoped_token
from app.core.settings import Settings
from tests.app.security.conftest import Server, start_server, stop_server

TOKEN = "sfk_event-token-test-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def secured(migrated_sqlite: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("events-auth")
    target = tmp_path / "synflow.db"
    shutil.copyfile(migrated_sqlite, target)
    running = start_server(tmp_path, f"sqlite:///{target}", {"SYNFLOW_API_TOKENS": json.dumps([TOKEN])})
    try:
        yield running
    finally:
        stop_server(running)


def _events(server: Server, run_id: str, token: str | None) -> tuple[int, str]:
    params = {"token": token} if token is not None else {}
    with server.client.stream("GET", f"/api/v1/runs/{run_id}/events", params=params) as response:
        return response.status_code, response.read().decode()


def test_a_scoped_token_opens_that_runs_stream_and_nothing_else(secured: Server) -> None:
    run_id = secured.run_id
    assert _events(secured, run_id, None)[0] == 401
    assert secured.client.post(f"/api/v1/runs/{run_id}/events-token").status_code == 401, "needs a bearer"
    minted = secured.client.post(f"/api/v1/runs/{run_id}/events-token", headers=BEARER)
    assert minted.status_code == 200, minted.text
    token = minted.json()["token"]
    assert minted.json()["expires_in_s"] == 60
    status, body = _events(secured, run_id, token)
    assert status == 200
    assert "event: progress" in body and 'event: end\ndata: {"status": "succeeded"}' in body  # the seeded run
    # the same token: not on another run's stream, not on any other route
    body = {"reward": {"components": [{"type": "qed"}]}, "training": {"steps": 1}}
    other = secured.client.post("/api/v1/runs", json=body, headers=BEARER).json()["id"]
    assert _events(secured, other, token)[0] == 401
    assert secured.client.get(f"/api/v1/runs/{run_id}", params={"token": token}).status_code == 401
    assert secured.client.get(f"/api/v1/runs/{run_id}/molecules", params={"token": token}).status_code == 401
    # tampered: another run's id under the same signature, or a flipped signature character
    encoded, signature = token.split(".")
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert _events(secured, run_id, f"{encoded}.{flipped}")[0] == 401
    assert _events(secured, run_id, "garbage")[0] == 401
    # a token minted for a run that does not exist: 404 before anything is signed
    missing = secured.client.post(f"/api/v1/runs/{'0' * 32}/events-token", headers=BEARER)
    assert missing.status_code == 404


def test_tokens_expire_and_need_the_servers_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    key = signing_key(settings)
    assert signing_key(settings) == key, "kept in the data directory for every process"
    assert oct((tmp_path / "data" / "secret_key").stat().st_mode & 0o777) == "0o600"
    now = time.time()
    token = issue_scoped_token(key, "events:abc", 60, now)
    assert verify_scoped_token(key, token, "events:abc", now + 59)
    assert not verify_scoped_token(key, token, "events:abc", now + 61), "expired"
    assert not verify_scoped_token(key, token, "events:abd", now), "another scope"
    assert not verify_scoped_token(b"another server's key", token, "events:abc", now)
    assert signing_key(Settings(data_dir=tmp_path / "other", secret_key="configured")) == b"configured"
