"""The new-run form's constrained starts (start blocks, scaffold) and preference conditioning, in
headless chromium against ``synflow serve``: the API's 422 errors land beside the fields they name,
and a valid form stores exactly the values typed and trains under them."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from rdkit import Chem

from tests.app.pages.conftest import Server, screenshot

pytestmark = pytest.mark.slow
RUN_TIMEOUT_S = 120
# EN-0001 by catalogue ID and EN-0004 by its SMILES, both in tests/app/pages/data/blocks.smi.
START_BLOCKS = ["EN-0001", "OC(=O)c1ccncc1"]
SCAFFOLD = "[CX3](=O)[NX3]"  # an amide: needs the amide coupling after either (acid) start block


def _error_beside(page: Any, selector: str) -> str:
    """The text of the field-error slot in the same .field as ``selector``, once it is non-empty."""
    slot = "document.querySelector(s).closest('.field').querySelector('.field-error')"
    page.wait_for_function(f"s => {slot}.textContent.length > 0", arg=selector)
    return str(page.evaluate(f"s => {slot}.textContent", selector))


def _submit(page: Any) -> None:
    # Keyboard, not the mouse: a full-page screenshot leaves chromium's click coordinates stale.
    page.focus("#submit")
    page.keyboard.press("Enter")


def _fill_small_run(page: Any, server: Server) -> None:
    page.goto(server.url + "/runs/new")
    page.wait_for_selector(".component[data-type=sa]")
    page.wait_for_selector(f"#f-library option[value='{server.library_path}']", state="attached")
    page.wait_for_selector(f"#f-templates option[value='{server.templates_path}']", state="attached")
    page.fill("#f-name", "constrained-pref")
    page.fill("#f-steps", "2")
    page.fill("#f-batch", "4")
    page.fill("#f-log-every", "1")
    page.select_option("#f-library", value=server.library_path)
    page.select_option("#f-templates", value=server.templates_path)
    page.select_option("#f-device", value="cpu")


def check_api_errors_land_beside_the_new_fields(server: Server, page: Any) -> None:
    _fill_small_run(page, server)
    assert page.locator("#f-pref-alpha").is_hidden(), "the preference fields show only when conditioning"
    # Line 3 (after a blank line) is the second entry: the API's start_blocks.1.
    page.fill("#f-start-blocks", "EN-0001\n\nEN-0002 benzoic")
    page.fill("#f-scaffold", "C(=O)[N;X3")
    _submit(page)
    scaffold_error = _error_beside(page, "#f-scaffold")
    assert "SMARTS" in scaffold_error and "C(=O)[N;X3" in scaffold_error
    assert page.get_attribute("#f-scaffold", "aria-invalid") == "true"
    starts_error = _error_beside(page, "#f-start-blocks")
    assert starts_error.startswith("line 3:") and "EN-0002 benzoic" in starts_error
    assert "not started: 2 problems" in page.text_content("#form-errors")
    screenshot(page, "new_run_scaffold_error")

    # Whole-config checks name their field too: log Z per batch cannot serve a w-conditioned run.
    page.fill("#f-start-blocks", "\n".join(START_BLOCKS))
    page.fill("#f-scaffold", SCAFFOLD)
    page.check("#f-preferences")
    page.select_option("#f-log-z", value="devgrad")
    _submit(page)
    assert "devgrad" in _error_beside(page, "#f-log-z")
    assert page.get_attribute("#f-log-z", "aria-invalid") == "true"
    assert page.text_content("#f-scaffold ~ .field-error") == "", "fixed fields are cleared"

    page.select_option("#f-log-z", value="learned")
    page.fill("#f-pref-components", "qed, logp")
    _submit(page)
    components_error = _error_beside(page, "#f-pref-components")
    assert "'logp' is not a score component" in components_error and "qed, sa" in components_error

    # The API itself names the field a whole-config check means (not "(body)"), for any client.
    with server.api() as api:
        body = {
            "reward": {"components": [{"type": "qed"}, {"type": "sa"}]},
            "loss": {"log_z": "devgrad"},
            "conditioning": {"preferences": {"dirichlet_alpha": 1.0}},
        }
        refused = api.post("/runs", json=body)
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["loss.log_z"], refused.text

    page.fill("#f-pref-alpha", "0")
    page.fill("#f-pref-components", "qed, sa")
    _submit(page)
    assert "greater than 0" in _error_beside(page, "#f-pref-alpha")
    assert page.url.endswith("/runs/new"), "an invalid config starts no run"


def start_constrained_preference_run(server: Server, page: Any) -> None:
    _fill_small_run(page, server)
    page.fill("#f-start-blocks", "  " + START_BLOCKS[0] + "\n\n" + START_BLOCKS[1] + "  \n")
    page.fill("#f-scaffold", SCAFFOLD)
    page.check("#f-preferences")
    page.fill("#f-pref-alpha", "0.5")
    page.fill("#f-pref-components", "qed, sa")
    page.click(".json-preview summary")
    assert '"scaffold"' in page.text_content("#config-preview")
    screenshot(page, "new_run_constraints_preferences")
    _submit(page)
    page.wait_for_function(
        "location.pathname !== '/runs/new' || !document.querySelector('#form-errors').hidden"
    )
    assert page.locator("#form-errors").is_hidden(), page.text_content("#form-errors")
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"))
    run_id = page.url.rsplit("/", 1)[1]

    with server.api() as api:
        config = api.get(f"/runs/{run_id}").json()["config"]
        assert config["environment"]["start_blocks"] == START_BLOCKS
        assert config["environment"]["scaffold"] == SCAFFOLD
        assert config["conditioning"]["preferences"] == {"components": ["qed", "sa"], "dirichlet_alpha": 0.5}
        assert config["loss"]["log_z"] == "learned"
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while (run := api.get(f"/runs/{run_id}").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, f"the run did not finish in {RUN_TIMEOUT_S} s"
            time.sleep(0.5)
        assert run["status"] == "succeeded", run
        items = api.get(f"/runs/{run_id}/molecules", params={"limit": 1000}).json()["items"]
    assert items, "the constrained run stored molecules"
    # Every stored molecule is an amide of one of the two start acids: the masks held.
    amide_of_start = [Chem.MolFromSmarts("O=C([NX3])c1ccccc1"), Chem.MolFromSmarts("O=C([NX3])c1ccncc1")]
    for item in items:
        mol = Chem.MolFromSmiles(item["smiles"])
        assert any(mol.HasSubstructMatch(q) for q in amide_of_start), item["smiles"]


def test_new_run_form_constraints_and_preferences(browser: Any, server: Server, page: Any) -> None:
    check_api_errors_land_beside_the_new_fields(server, page)
    start_constrained_preference_run(server, page)
