"""End to end in headless chromium against ``synflow serve``: launch a run from the form, watch the
dashboard update, browse and filter molecules, open a route, export a selection, compare runs.

One test drives the whole story in order (the later steps read the runs the earlier ones start), so
it stays on one server under pytest-xdist; each step is a function of its own.
"""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
from rdkit import Chem

from tests.app.pages.conftest import Server, screenshot

pytestmark = pytest.mark.slow
RUN_TIMEOUT_S = 150
STEPS = 40


def _fill_small_run(page: Any, server: Server, name: str, steps: int) -> None:
    page.fill("#f-name", name)
    page.fill("#f-steps", str(steps))
    page.fill("#f-batch", "8")
    page.fill("#f-log-every", "1")
    page.select_option("#f-library", value=server.library_path)
    page.select_option("#f-templates", value=server.templates_path)
    page.select_option("#f-device", value="cpu")


def check_form_shows_api_errors_next_to_fields(server: Server, page: Any) -> None:
    page.goto(server.url + "/runs/new")
    page.wait_for_selector(".component[data-type=sa]")
    _fill_small_run(page, server, "invalid", steps=-3)
    page.fill("#f-beta", "0")
    page.fill("#c0-weight", "")
    page.click("#submit")
    steps_error = page.locator("#f-steps").locator("xpath=..").locator(".field-error")
    steps_error.wait_for()
    page.wait_for_function("document.querySelector('#f-steps').closest('.field')"
                           ".querySelector('.field-error').textContent.length > 0")
    assert "greater than or equal to 0" in steps_error.text_content()
    beta_error = page.locator("#f-beta").locator("xpath=..").locator(".field-error").text_content()
    assert "greater than 0" in beta_error
    weight_error = page.locator("#c0-weight").locator("xpath=..").locator(".field-error").text_content()
    assert weight_error, "the component weight's error is shown next to it"
    assert page.get_attribute("#f-steps", "aria-invalid") == "true"
    assert "not started" in page.text_content("#form-errors")
    assert page.url.endswith("/runs/new"), "an invalid config starts no run"
    screenshot(page, "new_run_errors")


def start_run_from_form_and_watch_dashboard(server: Server, page: Any) -> tuple[str, str]:
    page.goto(server.url + "/runs/new")
    page.wait_for_selector(".component[data-type=sa]")
    # Enough steps that the dashboard sees the run move (6 steps finish within one 0.5 s event tick here).
    _fill_small_run(page, server, "e2e-reverse-kl", steps=STEPS)
    screenshot(page, "new_run")
    # Keyboard, not the mouse: a full-page screenshot leaves chromium's click coordinates stale.
    page.focus("#submit")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "location.pathname !== '/runs/new' || !document.querySelector('#form-errors').hidden")
    assert page.locator("#form-errors").is_hidden(), page.text_content("#form-errors")
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"))
    run_id = page.url.rsplit("/", 1)[1]
    # A second run, queued behind the first on the one worker, for the comparison.
    with server.api() as api:
        response = api.get(f"/runs/{run_id}")
        config = response.json()["config"]
        other = {**config, "name": "e2e-forward-kl", "loss": {**config["loss"], "divergence": "forward_kl"},
                 "training": {**config["training"], "steps": 3}}
        created = api.post("/runs", json=other)
        assert created.status_code == 201, created.text
        other_id = created.json()["id"]

    seen_steps: set[str] = set()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        seen_steps.add(page.text_content("#c-step"))
        if page.locator("#run-status .status-succeeded").count():
            break
        assert not page.locator("#run-status .status-failed").count(), page.text_content("#run-error")
        page.wait_for_timeout(250)
    else:
        pytest.fail(f"the run did not finish in {RUN_TIMEOUT_S} s; steps seen {sorted(seen_steps)}")
    assert len(seen_steps) >= 3, f"the dashboard should update while training, saw only {seen_steps}"
    assert page.text_content("#c-step") == f"{STEPS} / {STEPS}"
    assert "ended: succeeded" in page.text_content("#live")
    page.wait_for_selector("#p-loss path.series", state="attached")
    page.wait_for_selector("#p-reward path.series", state="attached")
    page.wait_for_selector("#p-unique path.series", state="attached")
    page.wait_for_selector("#p-hist rect")
    page.wait_for_selector("#best .mol-card img")
    assert int(page.text_content("#c-molecules").replace(",", "")) > 0
    float(page.text_content("#c-ess"))  # the run's diagnostics reach the dashboard
    assert page.is_disabled("#cancel") and page.is_disabled("#resume"), "succeeded: no cancel, no resume"
    assert '"max_reactions"' in page.text_content("#config")
    screenshot(page, "dashboard")

    page.goto(server.url + "/")
    row = page.locator(f"tr[data-run-id='{run_id}']")
    row.wait_for()
    assert "succeeded" in row.text_content()
    screenshot(page, "runs")
    return run_id, other_id


def browse_filter_open_route_and_export(server: Server, page: Any, run_id: str) -> None:
    page.goto(f"{server.url}/runs/{run_id}/molecules")
    page.wait_for_selector("#grid .mol-card")
    before = page.locator("#grid .mol-card").count()
    rewards = [float(t.split()[1]) for t in page.locator("#grid .mol-meta strong").all_text_contents()]
    assert rewards == sorted(rewards, reverse=True), "sorted by reward, best first"

    page.fill("#q-smarts", "C(=O)[N;X3")
    page.click("#apply")
    page.wait_for_function("document.querySelector('#q-smarts-error').textContent.includes('SMARTS')")
    assert page.get_attribute("#q-smarts", "aria-invalid") == "true"

    pattern = "[CX3](=O)[NX3]"
    page.fill("#q-smarts", pattern)
    page.click("#apply")
    page.wait_for_function("document.querySelector('#q-smarts-error').textContent === ''")
    page.wait_for_selector("#grid .mol-card")
    shown = page.locator("#grid .smiles").all_text_contents()
    query = Chem.MolFromSmarts(pattern)
    assert shown and all(Chem.MolFromSmiles(s).HasSubstructMatch(query) for s in shown)
    assert len(shown) <= before

    page.check("#grid .mol-card:nth-child(1) input[type=checkbox]")
    page.check("#grid .mol-card:nth-child(2) input[type=checkbox]") if len(shown) > 1 else None
    chosen = min(2, len(shown))
    assert page.text_content("#selection-count") == f"{chosen} selected"
    with page.expect_download() as download_info:
        page.click("#export-csv")
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert [r["smiles"] for r in rows] == shown[:chosen]
    assert "score_qed" in rows[0] and float(rows[0]["reward"]) > 0
    with page.expect_download() as download_info:
        page.click("#export-sdf")
    sdf = Path(download_info.value.path()).read_text()
    assert sdf.count("$$$$") == chosen and "<score_sa>" in sdf

    screenshot(page, "molecules_smarts")
    page.focus("#grid .mol-card:nth-child(1) a")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/molecules/\d+$"))
    page.wait_for_selector(".route-step")
    steps = page.locator(".route-step")
    assert steps.first.get_attribute("data-action") == "start"
    assert steps.count() >= 2, "an amide needs at least one reaction after the start"
    assert re.search(r"EN-\d{4}", page.text_content("#route"))
    reaction_names = page.locator(".route-step .reaction").all_text_contents()
    assert any(name in ("amide coupling", "Suzuki coupling", "esterification") for name in reaction_names)
    assert page.text_content("#mol-facts").count(shown[0]) == 1
    assert page.locator("#scores tbody tr").count() == 3  # reward, qed, sa
    page.wait_for_function(
        "[...document.querySelectorAll('.route-step img')].every(i => i.complete && i.naturalWidth > 0)")
    screenshot(page, "molecule_route")


def compare_two_runs(server: Server, page: Any, run_id: str, other_id: str) -> None:
    with server.api() as api:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while api.get(f"/runs/{other_id}").json()["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, "the second run did not finish"
            time.sleep(0.5)
    page.goto(f"{server.url}/runs/{run_id}/molecules")
    page.wait_for_selector(f"#compare-run option[value='{other_id}']", state="attached")
    page.select_option("#compare-run", value=other_id)
    page.wait_for_function("document.querySelector('#compare-b').textContent === 'e2e-forward-kl'")
    table = page.text_content("#compare-table")
    assert "reverse_kl" in table and "forward_kl" in table
    assert page.locator("#compare-hist .legend li").count() == 2
    screenshot(page, "molecules_compare")


def check_unknown_run_is_a_404_page(server: Server, page: Any) -> None:
    response = page.goto(server.url + "/runs/" + "0" * 32)
    assert response.status == 404
    assert "There is no run" in page.text_content("main")


def test_pages_end_to_end(browser: Any, server: Server, page: Any) -> None:
    check_form_shows_api_errors_next_to_fields(server, page)
    run_id, other_id = start_run_from_form_and_watch_dashboard(server, page)
    browse_filter_open_route_and_export(server, page, run_id)
    compare_two_runs(server, page, run_id, other_id)
    check_unknown_run_is_a_404_page(server, page)
