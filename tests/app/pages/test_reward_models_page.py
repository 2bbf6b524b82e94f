"""The reward-models page in headless chromium against ``synflow serve``: upload measurements (real
ZINC molecules with Crippen logP), see the errors, the fitted model, its versions and metrics; then
a run whose reward is that model, pinned to its version, trained by the server's worker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.app.pages.conftest import Server, screenshot
from tests.synflow.rewards.assay_data import write_logp_csv, zinc_smiles

pytestmark = pytest.mark.slow
BAD_ROWS = [["bad", "C1CC(", "1.0"], ["nan", "CCO", "n/a"]]
N = 60


def _fill(page: Any, csv_path: Path, value_column: str) -> None:
    page.fill("#u-name", "logp")
    page.set_input_files("#u-file", str(csv_path))
    page.fill("#u-value", value_column)
    page.select_option("#u-direction", value="higher")


def test_upload_shows_errors_then_the_model_its_versions_and_a_run_uses_it(
    server: Server, page: Any, tmp_path: Path
) -> None:
    csv_path = write_logp_csv(tmp_path / "logp.csv", zinc_smiles(N), BAD_ROWS)
    page.goto(server.url + "/reward-models")
    page.wait_for_selector("#models-state:has-text('No reward models yet')")

    _fill(page, csv_path, "pIC50")
    page.click("#upload")
    error = page.locator("#u-value").locator("xpath=..").locator(".field-error")
    page.wait_for_function("document.querySelector('#u-value').getAttribute('aria-invalid') === 'true'")
    assert "no column 'pIC50'" in error.text_content()
    assert "Not stored" in page.text_content("#upload-errors")
    screenshot(page, "reward_models_errors")

    page.fill("#u-value", "logp")
    page.click("#upload")
    page.wait_for_selector("#upload-result:not([hidden])", timeout=240_000)
    assert page.locator("#upload-errors").is_hidden() and not error.text_content()
    assert page.text_content("#result-title") == "Stored logp@1"
    assert '"model": "logp@1"' in page.text_content("#result-component")
    rejected = page.locator("#rejected tbody tr")
    assert rejected.count() == 2
    assert rejected.nth(0).text_content().startswith(f"{N + 2}C1CC(")
    row = page.locator("#models tbody tr[data-model=logp]")
    assert "logp@1" in row.text_content() and str(N) in row.text_content()
    versions = page.locator("#versions tbody tr")
    assert versions.count() == 2  # both candidate estimators, the chosen one marked
    assert page.locator("#versions tbody tr.chosen").count() == 1
    assert "(chosen)" in page.text_content("#versions tbody tr.chosen")
    screenshot(page, "reward_models")

    with server.api() as api:
        chosen = api.get("/reward-models/logp/1").json()
        config = {
            "name": "assay-reward",
            "reward": {"components": [{"type": "assay_model", "model": "logp", "uncertainty_bonus": 0.5}]},
            "environment": {"building_blocks": server.library_path, "templates": server.templates_path},
            "training": {"steps": 3, "batch_size": 4, "device": "cpu", "log_every": 1},
        }
        created = api.post("/runs", json=config)
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        component = created.json()["config"]["reward"]["components"][0]
        assert (component["reference"], component["model"]) == ("logp@1", chosen["path"])
        deadline = time.monotonic() + 240
        while (run := api.get(f"/runs/{run_id}").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, "the run did not finish in time"
            time.sleep(1)
        assert run["status"] == "succeeded", run["error"]
        molecules = api.get(f"/runs/{run_id}/molecules", params={"limit": 50}).json()["items"]
    assert molecules and all(0.0 <= m["scores"]["logp"] <= 1.0 for m in molecules)
    assert any(m["scores"]["logp"] > 0 for m in molecules)
