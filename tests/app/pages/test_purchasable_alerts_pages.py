"""A real run with structural-alert and purchasability components on ``synflow serve``: the stored
molecules carry the columns (checked against RDKit and the uploaded catalogue), the browser shows
and filters them, the molecule page lists the alerts and flags the route's building blocks."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from rdkit import Chem
from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams

from tests.app.pages.conftest import DATA, Server, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.long]
RUN_TIMEOUT_S = 240
CATALOGS = ("PAINS_A", "PAINS_B", "PAINS_C", "BRENK", "NIH")
# Blocks that react with the test templates and carry alerts (catechol, Michael acceptor, nitro, thiol)
ALERT_BLOCKS = [
    "NCc1ccc(O)c(O)c1 AL-01",
    "OC(=O)/C=C/c1ccccc1 AL-02",
    "OC(=O)c1ccc([N+](=O)[O-])cc1 AL-03",
    "Nc1ccc([N+](=O)[O-])cc1 AL-04",
    "OC(=O)CCS AL-05",
]
# The catalogue: half the test blocks (one as its HCl salt), and two amides the run can make
IN_STOCK = [
    "Cl.NCc1ccccc1",
    "OC(=O)c1ccccc1",
    "Nc1ccccc1",
    "OC(=O)c1ccncc1",
    "C1CCNCC1",
    "OB(O)c1ccccc1",
    "O=C(NCc1ccccc1)c1ccccc1",
    "O=C(Nc1ccccc1)c1ccccc1",
]


def key(smiles: str) -> str:
    """The catalogue's key, computed here independently: the largest fragment's InChIKey."""
    mol = Chem.MolFromSmiles(smiles)
    largest = max(Chem.GetMolFrags(mol, asMols=True), key=lambda f: f.GetNumHeavyAtoms())
    return Chem.MolToInchiKey(largest)


def rdkit_alerts(smiles: str) -> set[str]:
    mol = Chem.MolFromSmiles(smiles)
    found = set()
    for name in CATALOGS:
        params = FilterCatalogParams()
        params.AddCatalog(getattr(FilterCatalogParams.FilterCatalogs, name))
        found |= {f"{name}: {e.GetDescription()}" for e in FilterCatalog(params).GetMatches(mol)}
    return found


def upload(api: httpx.Client, path: str, name: str, file: Path) -> str:
    with file.open("rb") as handle:
        response = api.post(path, data={"name": name}, files={"file": (file.name, handle)})
    assert response.status_code == 201, response.text
    return response.json()["path"]


def all_molecules(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    return api.get(f"/runs/{run_id}/molecules", params={"limit": 1000}).json()["items"]


def finished_run(server: Server, tmp_path: Path) -> str:
    (tmp_path / "blocks.smi").write_text((DATA / "blocks.smi").read_text() + "\n".join(ALERT_BLOCKS) + "\n")
    (tmp_path / "stock.smi").write_text("\n".join(IN_STOCK) + "\n")
    with server.api() as api:
        library = upload(api, "/libraries", "alert-blocks", tmp_path / "blocks.smi")
        upload(api, "/catalogues", "test-stock", tmp_path / "stock.smi")
        config = {
            "name": "alerts-and-stock",
            "reward": {
                "aggregation": "arithmetic",
                "components": [
                    {"type": "qed"},
                    {"type": "alerts", "catalogs": list(CATALOGS), "penalty": 0.5},
                    {"type": "purchasable", "source": "test-stock", "weight": 0.5},
                ],
            },
            "environment": {
                "building_blocks": library,
                "templates": server.templates_path,
                "max_reactions": 2,
            },
            "model": {"hidden": 32, "layers": 1, "block_hidden": 32},
            "training": {"steps": 8, "batch_size": 16, "log_every": 1, "seed": 3, "device": "cpu"},
        }
        created = api.post("/runs", json=config)
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while (run := api.get(f"/runs/{run_id}").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, f"the run did not finish in {RUN_TIMEOUT_S} s"
            time.sleep(0.5)
        assert run["status"] == "succeeded", run["error"]
    return run_id


def test_alerts_and_purchasability_from_a_real_run(server: Server, page: Any, tmp_path: Path) -> None:
    run_id = finished_run(server, tmp_path)
    stock = {key(s) for s in IN_STOCK}
    with server.api() as api:
        molecules = all_molecules(api, run_id)
        assert len(molecules) >= 10
        for m in molecules:  # every stored molecule: the truth, computed here with RDKit
            assert m["purchasable"] is (key(m["smiles"]) in stock), m["smiles"]
            assert set(m["alerts"]) == rdkit_alerts(m["smiles"]), m["smiles"]
            assert m["scores"]["alerts"] == pytest.approx(0.5 ** len(m["alerts"]))
        flagged = [m for m in molecules if m["alerts"]]
        assert flagged, "the alert blocks should give some molecule an alert"
        target = max(flagged, key=lambda m: len(m["alerts"]))
        blocks = api.get(f"/molecules/{target['id']}/building-blocks").json()["items"]
        assert blocks and all(b["purchasable"] is (key(b["smiles"]) in stock) for b in blocks)

    page.goto(f"{server.url}/runs/{run_id}/molecules")
    page.wait_for_selector("#grid .mol-card [data-note=alerts]")
    assert (
        page.locator("#grid .mol-card [data-note=purchasable]").count()
        == page.locator("#grid .mol-card").count()
    )
    page.select_option("#q-alerts", value="any")
    page.click("#apply")
    page.wait_for_function(
        "document.querySelectorAll('#grid .mol-card').length > 0 && [...document.querySelectorAll("
        "'#grid .mol-card [data-note=alerts]')].every(b => /^\\d+ alerts?$/.test(b.textContent))"
    )
    expected = min(len(flagged), 24)
    assert page.locator("#grid .mol-card").count() == expected
    screenshot(page, "molecules_alerts_purchasable")

    page.goto(f"{server.url}/molecules/{target['id']}")
    page.wait_for_selector("#mol-alerts li")
    assert page.locator("#mol-alerts li").all_text_contents() == target["alerts"]
    badge = page.locator("#mol-notes [data-purchasable]")
    assert badge.get_attribute("data-purchasable") == str(target["purchasable"]).lower()
    page.wait_for_selector(".route-step")
    shown = page.locator("#route [data-purchasable]").evaluate_all(
        "nodes => nodes.map(n => n.dataset.purchasable)"
    )
    assert shown == [str(b["purchasable"]).lower() for b in blocks]
    assert re.search(r"AL-0\d|EN-\d{4}", page.text_content("#route"))
    page.wait_for_function(
        "[...document.querySelectorAll('.route-step img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    screenshot(page, "molecule_alerts_purchasable")
