"""With bearer tokens on, the live dashboard still streams: the page trades its stored token for a
short-lived one scoped to the run's event stream (an EventSource cannot send the header)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.app.pages.conftest import Server, serving

TOKEN = "sfk_pages-auth-test-0123456789"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"SYNFLOW_API_TOKENS": json.dumps([TOKEN])}
    with serving(tmp_path_factory.mktemp("pages-auth"), env, {"Authorization": f"Bearer {TOKEN}"}) as running:
        yield running


def test_the_dashboard_streams_live_updates_with_auth_on(browser: Any, secured: Server, page: Any) -> None:
    config = {
        "name": "auth-live",
        "reward": {"components": [{"type": "qed"}]},
        "environment": {"building_blocks": secured.library_path, "templates": secured.templates_path},
        "training": {"steps": 30, "batch_size": 8, "log_every": 1, "device": "cpu"},
    }
    with secured.api() as api:
        assert api.get("/runs", headers={"Authorization": ""}).status_code == 401, "auth is on"
        created = api.post("/runs", json=config)
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
    page.goto(secured.url + "/")
    page.evaluate(f"window.localStorage.setItem('synflow-token', '{TOKEN}')")
    events: list[str] = []
    page.on("request", lambda request: events.append(request.url) if "/events" in request.url else None)
    page.goto(f"{secured.url}/runs/{run_id}")
    page.wait_for_function("document.querySelector('#live').textContent.includes('ended: succeeded')",
                           timeout=180_000)
    assert page.text_content("#c-step") == "30 / 30"
    stream = [url for url in events if url.split("?")[0].endswith(f"/runs/{run_id}/events")]
    assert stream and all("token=" in url for url in stream), events
