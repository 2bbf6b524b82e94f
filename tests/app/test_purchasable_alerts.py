"""Purchasability and structural alerts in the service, on SQLite and PostgreSQL: uploaded
catalogues, runs pinned to them, the molecule list filters, route blocks flagged, exports (the
run's, and the browser's selection export, which writes the same rows)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from rdkit import Chem

from app.core.db import Database
from app.core.settings import Settings
from app.main import create_app
from app.runs.store import write_molecules
from synflow.callbacks import SampledMolecule

CATALOGUE = "smiles id\nCl.NCc1ccccc1 B1\nOC(=O)c1ccncc1 B2\nCC(=O)Nc1ccc(O)cc1 P1\nnot_a_smiles B9\n"
ALERT = "PAINS_A: ene_rhod_A(235)"


def route(*blocks: tuple[str, str]) -> dict:
    """A route whose steps carry these building blocks (the replay is not what is tested here)."""
    steps = [
        {
            "action": "start",
            "product": blocks[0][0],
            "building_block": {"smiles": blocks[0][0], "id": blocks[0][1]},
        }
    ]
    steps += [
        {"action": "react_bi", "product": "CCO", "slot": 0, "building_block": {"smiles": s, "id": i}}
        for s, i in blocks[1:]
    ]
    return {"steps": steps}


# smiles, reward, notes, route blocks
MOLECULES = [
    (
        "CC(=O)Nc1ccc(O)cc1",
        0.9,
        {"alerts": [], "purchasable": True},
        [("NCc1ccccc1", "B1"), ("OC(=O)c1ccncc1", "B2")],
    ),
    (
        "O=C1NC(=S)SC1=Cc1ccccc1",
        0.8,
        {"alerts": [ALERT, "NIH: rhodanine"], "purchasable": False},
        [("NCc1ccccc1", "B1"), ("OC(=O)c1ccccc1", "B3")],
    ),
    ("CCCCCCO", 0.7, {"alerts": [], "purchasable": False}, [("CCCCCCO", "B4")]),
    ("c1ccccc1", 0.6, {}, [("c1ccccc1", "B5")]),  # no component looked: NULL in both columns
]


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db)) as test_client:
        yield test_client


def upload(client: TestClient, name: str, text: str = CATALOGUE) -> dict:
    response = client.post(
        "/api/v1/catalogues", data={"name": name}, files={"file": ("stock.smi", text.encode())}
    )
    assert response.status_code == 201, response.text
    return response.json()


def create_run(client: TestClient, source: str) -> dict:
    config = {
        "reward": {
            "components": [{"type": "qed"}, {"type": "alerts"}, {"type": "purchasable", "source": source}]
        },
        "training": {"steps": 4, "batch_size": 2},
    }
    response = client.post("/api/v1/runs", json=config)
    assert response.status_code == 201, response.text
    return response.json()


def seed(db: Database, run_id: str) -> None:
    """The molecules written as a worker writes them (the store turns notes into columns)."""
    records = [
        SampledMolecule(s, r, 1, {"qed": r}, route(*blocks), notes=notes) for s, r, notes, blocks in MOLECULES
    ]
    with db.session() as session:
        write_molecules(session, run_id, records)


def page(client: TestClient, run_id: str, **params: str) -> list[dict]:
    response = client.get(f"/api/v1/runs/{run_id}/molecules", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_uploaded_catalogue_pins_the_run_and_unknown_sources_are_refused(client: TestClient) -> None:
    uploaded = upload(client, "my-stock")
    assert uploaded["kind"] == "catalogue" and uploaded["size"] == 3
    assert [(r["line"], r["smiles"]) for r in uploaded["rejected_rows"]] == [(5, "not_a_smiles")]
    listed = {(c["name"], c["bundled"]) for c in client.get("/api/v1/catalogues").json()}
    assert {("zinc-instock-mini", True), ("my-stock", False)} <= listed
    for taken in ("my-stock", "zinc-instock-mini"):
        again = client.post("/api/v1/catalogues", data={"name": taken}, files={"file": ("s.smi", b"CCO\n")})
        assert again.status_code == 409 and again.json()["errors"][0]["field"] == "name"
    bad = client.post("/api/v1/catalogues", data={"name": "junk"}, files={"file": ("s.smi", b"xx\nyy\n")})
    assert bad.status_code == 422 and "not usable" in bad.json()["message"]

    run = create_run(client, "my-stock")
    source = run["config"]["reward"]["components"][2]["source"]
    assert source == uploaded["path"]
    assert create_run(client, source)["config"]["reward"]["components"][2]["source"] == source  # resubmitted
    assert create_run(client, "zinc-instock-mini")["config"]["reward"]["components"][2]["source"] == (
        "zinc-instock-mini"
    )
    for wrong in ("nobody-uploaded-this", "/etc/passwd"):
        config = {"reward": {"components": [{"type": "purchasable", "source": wrong}]}}
        response = client.post("/api/v1/runs", json=config)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "reward.components.0.source"
        assert "my-stock" in response.json()["message"]  # the answer lists what can be used
    download = client.post(
        "/api/v1/runs", json={"reward": {"components": [{"type": "purchasable", "source": "zinc20"}]}}
    )
    assert download.status_code == 422 and "download" in download.text


def test_filters_flags_and_exports(client: TestClient, db: Database) -> None:
    run_id = create_run(client, upload(client, "stock")["name"])["id"]
    seed(db, run_id)
    everything = {m["smiles"]: m for m in page(client, run_id)}
    assert everything["O=C1NC(=S)SC1=Cc1ccccc1"]["alerts"] == [ALERT, "NIH: rhodanine"]
    assert everything["c1ccccc1"]["alerts"] is None and everything["c1ccccc1"]["purchasable"] is None

    def smiles(**params: str) -> list[str]:
        return [m["smiles"] for m in page(client, run_id, **params)]

    assert smiles(purchasable="true") == ["CC(=O)Nc1ccc(O)cc1"]
    assert smiles(purchasable="false") == ["O=C1NC(=S)SC1=Cc1ccccc1", "CCCCCCO"]
    assert smiles(alerts="none") == ["CC(=O)Nc1ccc(O)cc1", "CCCCCCO"]
    assert smiles(alerts="any") == ["O=C1NC(=S)SC1=Cc1ccccc1"]
    assert smiles(alerts="none", purchasable="false") == ["CCCCCCO"]
    wrong = client.get(f"/api/v1/runs/{run_id}/molecules", params={"alerts": "some"})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "alerts"

    # blocks: the run's catalogue holds benzylamine (as its HCl salt) and isonicotinic acid
    best = everything["CC(=O)Nc1ccc(O)cc1"]["id"]
    blocks = client.get(f"/api/v1/molecules/{best}/building-blocks").json()
    assert blocks["source"] == "stock"
    assert [(b["id"], b["purchasable"]) for b in blocks["items"]] == [("B1", True), ("B2", True)]
    second = client.get(
        f"/api/v1/molecules/{everything['O=C1NC(=S)SC1=Cc1ccccc1']['id']}/building-blocks"
    ).json()
    assert [(b["step"], b["purchasable"]) for b in second["items"]] == [(0, True), (1, False)]
    assert client.get("/api/v1/molecules/999999/building-blocks").status_code == 404

    text = client.get(f"/api/v1/runs/{run_id}/export", params={"format": "csv"}).text
    rows = {r["smiles"]: r for r in csv.DictReader(io.StringIO(text))}
    assert rows["O=C1NC(=S)SC1=Cc1ccccc1"]["purchasable"] == "false"
    assert json.loads(rows["O=C1NC(=S)SC1=Cc1ccccc1"]["alerts"]) == [ALERT, "NIH: rhodanine"]
    assert json.loads(rows["CC(=O)Nc1ccc(O)cc1"]["building_blocks_purchasable"]) == [True, True]
    assert rows["c1ccccc1"]["purchasable"] == "" and rows["c1ccccc1"]["alerts"] == ""
    lines = [
        json.loads(x)
        for x in client.get(f"/api/v1/runs/{run_id}/export", params={"format": "jsonl"}).text.splitlines()
    ]
    by_smiles = {x["smiles"]: x for x in lines}
    assert by_smiles["CCCCCCO"]["purchasable"] is False and by_smiles["CCCCCCO"]["alerts"] == []
    assert by_smiles["CC(=O)Nc1ccc(O)cc1"]["building_blocks"][1] == {
        "step": 1,
        "smiles": "OC(=O)c1ccncc1",
        "id": "B2",
        "purchasable": True,
    }
    sdf = client.get(f"/api/v1/runs/{run_id}/export", params={"format": "sdf"}).text
    supplier = Chem.SDMolSupplier()
    supplier.SetData(sdf)
    props = {m.GetProp("smiles"): m.GetPropsAsDict() for m in supplier if m is not None}
    assert props["O=C1NC(=S)SC1=Cc1ccccc1"]["purchasable"] == "false"
    assert json.loads(props["O=C1NC(=S)SC1=Cc1ccccc1"]["alerts"])[0] == ALERT


def test_the_selection_export_writes_the_run_exports_rows(client: TestClient, db: Database) -> None:
    run_id = create_run(client, upload(client, "stock")["name"])["id"]
    seed(db, run_id)
    ids = {m["smiles"]: m["id"] for m in page(client, run_id)}
    chosen = [ids["c1ccccc1"], ids["O=C1NC(=S)SC1=Cc1ccccc1"], ids["CC(=O)Nc1ccc(O)cc1"]]  # not reward order

    def export(fmt: str, selected: list[int] | None = None) -> str:
        if selected is None:
            response = client.get(f"/api/v1/runs/{run_id}/export", params={"format": fmt})
        else:
            form = {"ids": ",".join(map(str, selected)), "format": fmt}
            response = client.post(f"/runs/{run_id}/molecules/export", data=form)
        assert response.status_code == 200, response.text
        return response.text

    whole = list(csv.reader(io.StringIO(export("csv"))))
    chosen_rows = list(csv.reader(io.StringIO(export("csv", [*chosen, 999999]))))  # not in the run: skipped
    assert chosen_rows[0] == whole[0]
    assert {"purchasable", "alerts", "building_blocks_purchasable", "score_qed"} <= set(whole[0])
    by_id = {int(row[0]): row for row in whole[1:]}
    assert chosen_rows[1:] == [by_id[i] for i in chosen]

    def records(sdf: str) -> dict[str, str]:
        """``run_id:id`` → the record's text, in the file's order."""
        return {r.splitlines()[0]: r for r in sdf.split("$$$$\n")[:-1]}

    everything = records(export("sdf"))
    names = [f"{run_id}:{i}" for i in chosen]
    assert records(export("sdf", chosen)) == {n: everything[n] for n in names}
    assert list(records(export("sdf", chosen))) == names
    supplier = Chem.SDMolSupplier()
    supplier.SetData(export("sdf", chosen))
    props = [m.GetPropsAsDict() for m in supplier]
    assert [p["purchasable"] for p in props] == ["", "false", "true"]
    assert json.loads(props[1]["alerts"]) == [ALERT, "NIH: rhodanine"] and props[1]["coordinates"] == "2d"
    assert json.loads(props[2]["building_blocks_purchasable"]) == [True, True]

    wrong = client.post(f"/runs/{run_id}/molecules/export", data={"ids": "1,x", "format": "csv"})
    assert wrong.status_code == 422
    missing = client.post(f"/runs/{'0' * 32}/molecules/export", data={"ids": "1", "format": "csv"})
    assert missing.status_code == 404


def test_a_run_without_a_purchasable_component_flags_nothing(client: TestClient, db: Database) -> None:
    response = client.post("/api/v1/runs", json={"reward": {"components": [{"type": "qed"}]}})
    run_id = response.json()["id"]
    seed(db, run_id)
    mol = page(client, run_id)[0]
    blocks = client.get(f"/api/v1/molecules/{mol['id']}/building-blocks").json()
    assert blocks["source"] is None and [b["purchasable"] for b in blocks["items"]] == [None, None]


def test_the_new_paths_are_documented(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/catalogues"])
    assert "get" in paths["/api/v1/molecules/{molecule_id}/building-blocks"]
    parameters = {p["name"] for p in paths["/api/v1/runs/{run_id}/molecules"]["get"]["parameters"]}
    assert {"purchasable", "alerts"} <= parameters
