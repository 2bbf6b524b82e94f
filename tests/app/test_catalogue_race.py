"""The first library and template-set listings on a fresh database may arrive together."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from app.core.db import Database
from app.core.settings import Settings
from app.main import create_app


def test_first_listings_in_parallel_register_bundled_entries_once(settings: Settings, db: Database) -> None:
    with TestClient(create_app(settings, db)) as client:
        _check_parallel_first_listings(client)


def _check_parallel_first_listings(client: TestClient) -> None:
    paths = ["/api/v1/libraries", "/api/v1/template-sets"]
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        responses = list(pool.map(client.get, paths))
    assert [r.status_code for r in responses] == [200] * len(paths)
    libraries = client.get("/api/v1/libraries").json()
    templates = client.get("/api/v1/template-sets").json()
    assert sum(1 for row in libraries if row["bundled"]) == 1
    assert sum(1 for row in templates if row["bundled"]) == 1
