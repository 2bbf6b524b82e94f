"""The REST API in-process (TestClient) on both databases: validation, paging, filters, exports, auth."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.core.auth import create_token
from app.core.db import Database
from app.core.models import Run
from app.core.settings import Settings
from app.main import create_app
from app.runs.store import write_metrics, write_molecules
from synflow.callbacks import SampledMolecule

QED_RUN = {"reward": {"components": [{"type": "qed"}]}, "training": {"steps": 4, "batch_size": 2}}
SMILES = [
    "CCO",
    "c1ccccc1O",
    "CC(=O)Nc1ccc(O)cc1",
    "CCN(CC)CC",
    "c1ccncc1",
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "O=C(O)c1ccccc1OC(C)=O",
    "CN1CCC[C@H]1c1cccnc1",
    "CCCCCC",
    "Clc1ccccc1",
]


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db)) as test_client:
        yield test_client


def _seed(db: Database, n: int = 10, start: int = 0) -> str:
    with db.session() as session:
        run = Run(config=QED_RUN, total_steps=4, status="succeeded")
        session.add(run)
        session.flush()
        run_id = run.id
    _add(db, run_id, range(start, start + n))
    return run_id


def _add(db: Database, run_id: str, indices: range) -> None:
    records = [
        SampledMolecule(
            SMILES[i % len(SMILES)] + "C" * (i // len(SMILES)),
            reward=(i * 7 % 10) / 10,
            step=i,
            scores={"qed": i / 100, "sa": 1 - i / 100},
            route={"steps": [{"action": "start", "product": SMILES[i % len(SMILES)]}]},
        )
        for i in indices
    ]
    with db.session() as session:
        write_molecules(session, run_id, records)


def _all_pages(client: TestClient, url: str, **params: object) -> list[dict]:
    items, cursor = [], None
    while True:
        page = client.get(url, params={**params, **({"cursor": cursor} if cursor else {})}).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_create_validates_and_names_each_bad_field(client: TestClient) -> None:
    bad = {"reward": {"components": [{"type": "nope"}]}, "training": {"steps": -1, "batch_sze": 2}}
    answer = client.post("/api/v1/runs", json=bad)
    assert answer.status_code == 422
    fields = {e["field"] for e in answer.json()["errors"]}
    assert "training.steps" in fields and "training.batch_sze" in fields
    assert any(f.startswith("reward.components.0") for f in fields)
    assert "training.steps" in answer.json()["message"]
    missing = client.post("/api/v1/runs", json={"training": {"steps": 1}})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "reward"
    assert client.post("/api/v1/runs", json=[1]).status_code == 422


def test_run_lifecycle(client: TestClient, db: Database) -> None:
    created = client.post("/api/v1/runs", json={**QED_RUN, "name": "first"})
    assert created.status_code == 201
    run = created.json()
    assert (run["status"], run["name"], run["progress"]["total_steps"]) == ("queued", "first", 4)
    other = client.post("/api/v1/runs", json=QED_RUN).json()
    assert {r["id"] for r in _all_pages(client, "/api/v1/runs", limit=1)} == {run["id"], other["id"]}
    assert client.post(f"/api/v1/runs/{run['id']}/cancel").status_code == 202
    assert client.get(f"/api/v1/runs/{run['id']}").json()["status"] == "cancelled"
    assert client.post(f"/api/v1/runs/{run['id']}/cancel").status_code == 409
    assert [r["id"] for r in client.get("/api/v1/runs", params={"status": "cancelled"}).json()["items"]] == [
        run["id"]
    ]
    assert client.get("/api/v1/runs", params={"status": "bogus"}).json()["errors"][0]["field"] == "status"
    assert client.post(f"/api/v1/runs/{other['id']}/resume").status_code == 409
    assert client.post(f"/api/v1/runs/{run['id']}/resume").json()["status"] == "queued"
    with db.session() as session:
        session.get(Run, other["id"]).status = "running"
    assert client.delete(f"/api/v1/runs/{other['id']}").status_code == 409
    assert client.delete(f"/api/v1/runs/{run['id']}").status_code == 204
    missing = client.get(f"/api/v1/runs/{run['id']}")
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "run_id"


def test_metrics_history_and_latest(client: TestClient, db: Database) -> None:
    run_id = _seed(db, 1)
    with db.session() as session:
        for step in range(1, 101):
            write_metrics(session, run_id, step, {"loss": 1 / step, "top10": step / 100})
    history = client.get(f"/api/v1/runs/{run_id}/metrics", params={"name": "loss", "max_points": 10}).json()
    points = history["metrics"]["loss"]
    assert set(history["metrics"]) == {"loss"} and len(points) <= 10 and points[-1]["step"] == 100
    detail = client.get(f"/api/v1/runs/{run_id}").json()
    assert detail["latest_metrics"] == {"loss": 0.01, "top10": 1.0} and detail["molecules"] == 1


def test_molecule_pages_sort_filter_and_stay_stable_while_writing(client: TestClient, db: Database) -> None:
    run_id = _seed(db, 40)
    url = f"/api/v1/runs/{run_id}/molecules"
    first = client.get(url, params={"limit": 15}).json()
    rewards = [m["reward"] for m in first["items"]]
    assert rewards == sorted(rewards, reverse=True) and len(rewards) == 15
    _add(db, run_id, range(40, 80))  # the run keeps writing between two page requests
    rest = _all_pages(client, url, limit=15, cursor=first["next_cursor"])
    seen = [m["id"] for m in first["items"] + rest]
    assert len(seen) == len(set(seen))
    old_ids = {m["id"] for m in _all_pages(client, url, limit=1000) if m["step"] < 40}
    assert old_ids <= set(seen)  # nothing that existed before the first page was skipped
    keys = [(m["reward"], m["id"]) for m in first["items"] + rest]
    assert keys == sorted(keys, reverse=True)
    by_score = _all_pages(client, url, sort="scores.qed", limit=7)
    assert [m["scores"]["qed"] for m in by_score] == sorted(m["scores"]["qed"] for m in by_score)
    by_step = client.get(url, params={"sort": "-step", "limit": 3}).json()["items"]
    assert [m["step"] for m in by_step] == [79, 78, 77]
    ranged = _all_pages(client, url, reward_min=0.3, reward_max=0.5, score_range="qed:0.1:0.5", limit=4)
    assert ranged and all(0.3 <= m["reward"] <= 0.5 and 0.1 <= m["scores"]["qed"] <= 0.5 for m in ranged)


def test_chemical_filters_and_their_errors(client: TestClient, db: Database) -> None:
    run_id = _seed(db, 30)
    url = f"/api/v1/runs/{run_id}/molecules"
    phenols = _all_pages(client, url, smarts="c[OX2H]", limit=2)
    assert phenols and all(m["smiles"].startswith(("c1ccccc1O", "CC(=O)Nc1ccc(O)cc1")) for m in phenols)
    similar = client.get(url, params={"similar_to": "c1ccccc1O", "min_similarity": 0.99}).json()["items"]
    assert [m["smiles"] for m in similar] == ["c1ccccc1O"] and similar[0]["similarity"] == 1.0
    bad_smarts = client.get(url, params={"smarts": "[C;"})
    assert bad_smarts.status_code == 422 and bad_smarts.json()["errors"][0]["field"] == "smarts"
    bad_smiles = client.get(url, params={"similar_to": "C(C)(C)(C)(C)C"})
    assert bad_smiles.status_code == 422
    assert (
        bad_smiles.json()["errors"][0]["field"] == "similar_to" and "valence" in bad_smiles.json()["message"]
    )
    assert client.get(url, params={"sort": "bad name!"}).json()["errors"][0]["field"] == "sort"
    assert client.get(url, params={"cursor": "garbage"}).json()["errors"][0]["field"] == "cursor"
    assert client.get(url, params={"score_range": "qed:x:"}).json()["errors"][0]["field"] == "score_range"


def test_molecule_route_svg_and_exports(client: TestClient, db: Database) -> None:
    run_id = _seed(db, 12)
    top = client.get(f"/api/v1/runs/{run_id}/molecules", params={"limit": 1}).json()["items"][0]
    one = client.get(f"/api/v1/molecules/{top['id']}").json()
    assert one["route"]["steps"][0]["action"] == "start" and one["smiles"] == top["smiles"]
    svg = client.get(f"/api/v1/molecules/{top['id']}/svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in svg.text
    assert client.get("/api/v1/molecules/999999").status_code == 404
    csv_text = client.get(f"/api/v1/runs/{run_id}/export", params={"format": "csv"}).text
    assert (
        csv_text.splitlines()[0].startswith("id,smiles,inchikey,reward") and len(csv_text.splitlines()) == 13
    )
    jsonl = [
        json.loads(line)
        for line in client.get(f"/api/v1/runs/{run_id}/export?format=jsonl").text.splitlines()
    ]
    assert len(jsonl) == 12 and jsonl[0]["route"]["steps"]
    sdf = client.get(f"/api/v1/runs/{run_id}/export", params={"format": "sdf"}).text
    assert sdf.count("$$$$") == 12 and ">  <score_qed>" in sdf and ">  <reward>" in sdf
    assert client.get(f"/api/v1/runs/{run_id}/export", params={"format": "xls"}).status_code == 422


AMIDE = b"[C:1](=O)[OH].[N;!H0:2]>>[C:1](=O)[N:2] amide coupling\n"


def test_catalogues(client: TestClient) -> None:
    components = client.get("/api/v1/catalogue/reward-components").json()
    qed = next(c for c in components if c["type"] == "qed")
    assert "properties" in qed["schema"]
    presets = {p["name"]: p for p in client.get("/api/v1/catalogue/presets").json()}
    assert set(presets) == {"sample", "optimise"} and presets["sample"]["default"]
    assert presets["optimise"]["sets"]["environment"]["backward_policy"] == "route"
    assert "exact" in presets["sample"]["description"]
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/api/v1/runs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert (
        body["$ref"].endswith("/RunConfig")
        and "preset" in schema["components"]["schemas"]["RunConfig"]["properties"]
    )
    bad = client.post(
        "/api/v1/template-sets",
        data={"name": "bad"},
        files={"file": ("t.txt", b"not a reaction\n", "text/plain")},
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "file"
    good = client.post(
        "/api/v1/template-sets", data={"name": "amide"}, files={"file": ("t.txt", AMIDE, "text/plain")}
    )
    assert good.status_code == 201 and good.json()["size"] == 1
    assert "amide" in {t["name"] for t in client.get("/api/v1/template-sets").json()}
    blocks = b"smiles id\nCC(=O)O acetic\nNCc1ccccc1 benzylamine\nC1CC broken\nC(C)(C)(C)(C)C pentavalent\n"
    uploaded = client.post(
        "/api/v1/libraries", data={"name": "mine"}, files={"file": ("mine.smi", blocks, "text/plain")}
    )
    assert uploaded.status_code == 201, uploaded.text
    body = uploaded.json()
    assert body["size"] == 2 and body["rejected"] == 2 and body["path"]
    assert {r["smiles"] for r in body["rejected_rows"]} == {"C1CC", "C(C)(C)(C)(C)C"}
    assert all(r["reason"] and r["line"] for r in body["rejected_rows"])
    listed = client.get("/api/v1/libraries").json()
    assert "mine" in {lib["name"] for lib in listed}
    again = client.post("/api/v1/libraries", data={"name": "mine"}, files={"file": ("m.smi", blocks)})
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "name"


def test_health_and_prometheus(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ok" and ready["schema"]
    run_id = client.post("/api/v1/runs", json=QED_RUN).json()["id"]
    client.get(f"/api/v1/runs/{run_id}")
    text = client.get("/metrics").text
    assert 'synflow_runs{status="queued"} 1.0' in text and "synflow_http_requests_total" in text
    # Labels are route templates with the full path: bounded, and they say which API was called.
    assert 'route="/api/v1/runs/{run_id}",status="200"' in text and run_id not in text
    assert 'route="/api/v1/runs",status="201"' in text and 'route="/healthz"' in text


def test_bearer_tokens(client: TestClient, db: Database) -> None:
    assert client.get("/api/v1/runs").status_code == 200  # no token stored: open
    with db.session() as session:
        token = create_token(session, "ci")
    refused = client.get("/api/v1/runs")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/v1/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/v1/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 401


def test_a_write_is_committed_before_its_response_is_sent(settings: Settings, db: Database) -> None:
    """A client that reads right after a 201 or 202 (perhaps from another API process) sees what it
    wrote: each request's session commits when the endpoint returns, not after the response is
    sent (FastAPI's default for a dependency with ``yield``), which also means a commit that
    fails is answered with an error, never with a 201 for a run that was rolled back."""
    app = create_app(settings, db)
    seen: list[tuple[str, str | None]] = []

    async def probe(scope: dict, receive: object, send: object) -> None:
        async def send_after_looking(message: dict) -> None:
            if message["type"] == "http.response.start" and scope["method"] == "POST":
                with db.session() as session:  # another connection: sees committed rows only
                    run = session.scalars(select(Run)).first()
                    seen.append((scope["path"], run.status if run else None))
            await send(message)  # type: ignore[operator]

        await app(scope, receive, send_after_looking)

    with TestClient(probe) as client:  # type: ignore[arg-type]
        run_id = client.post("/api/v1/runs", json=QED_RUN).json()["id"]
        assert client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 202
    assert seen == [("/api/v1/runs", "queued"), (f"/api/v1/runs/{run_id}/cancel", "cancelled")]
