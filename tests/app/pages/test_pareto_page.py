"""The molecule browser's Pareto panel in headless chromium against ``synflow serve``: real runs, the
highlighted front checked against a brute-force pass over every stored molecule, the score choice,
and, for a preference-conditioned run, the weight picker starting a sampling job at those weights
(run by the server's worker to the end)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.app.pages.conftest import Server, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.long]
RUN_TIMEOUT_S = 240
SMALL = {
    "model": {"hidden": 32, "layers": 1, "block_hidden": 32},
    "training": {"steps": 6, "batch_size": 16, "log_every": 1, "seed": 5, "device": "cpu"},
}


def _finished(api: httpx.Client, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while (run := api.get(f"/runs/{run_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"run {run_id} did not finish in {RUN_TIMEOUT_S} s"
        time.sleep(0.5)
    assert run["status"] == "succeeded", run["error"]
    return run


def _start(api: httpx.Client, server: Server, name: str, reward: dict[str, Any], **extra: Any) -> str:
    environment = {
        "building_blocks": server.library_path,
        "templates": server.templates_path,
        "max_reactions": 2,
    }
    created = api.post(
        "/runs", json={"name": name, "reward": reward, "environment": environment, **SMALL, **extra}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _brute_front(molecules: list[dict[str, Any]], x: str, y: str) -> set[int]:
    points = [(m["id"], m["scores"].get(x), m["scores"].get(y)) for m in molecules]
    points = [p for p in points if p[1] is not None and p[2] is not None]
    return {i for i, a, b in points if not any(c >= a and d >= b and (c > a or d > b) for _, c, d in points)}


def _all_molecules(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    found, cursor = [], None
    while True:
        page = api.get(
            f"/runs/{run_id}/molecules", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}
        )
        found += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found


def _front_on_page(page: Any) -> set[int]:
    links = page.locator("#pareto-plot a.front-point").evaluate_all(
        "(nodes) => nodes.map((n) => n.getAttribute('href'))"
    )
    return {int(href.rsplit("/", 1)[1]) for href in links}


def test_pareto_panel_scores_front_and_sampling_at_weights(server: Server, page: Any) -> None:
    three = {
        "components": [
            {"type": "qed"},
            {"type": "sa"},
            {"type": "similarity", "name": "sim", "references": ["O=C(Nc1ccccc1)c1ccccc1"]},
        ]
    }
    two = {"components": [{"type": "qed"}, {"type": "sa"}]}
    with server.api() as api:
        plain = _start(api, server, "pareto-three-scores", three)
        conditioned = _start(
            api,
            server,
            "pareto-preferences",
            two,
            conditioning={"preferences": {"components": ["qed", "sa"]}},
        )
        _finished(api, plain)
        _finished(api, conditioned)
        plain_molecules = _all_molecules(api, plain)
        assert len(plain_molecules) >= 10

    # A run with three scores: the first two are drawn; no weight picker (not preference-conditioned).
    page.goto(f"{server.url}/runs/{plain}/molecules")
    page.wait_for_selector("#pareto-plot a.front-point", state="attached")
    assert page.input_value("#pareto-x") == "qed" and page.input_value("#pareto-y") == "sa"
    assert page.locator("#pareto-x option").all_text_contents() == ["qed", "sa", "sim"]
    assert _front_on_page(page) == _brute_front(plain_molecules, "qed", "sa")
    assert page.locator("#weights").is_hidden()

    # Choose other scores: the highlighted front follows, and so does the list of links.
    page.select_option("#pareto-y", value="sim")
    page.wait_for_function("document.querySelector('#pareto-col-y').textContent === 'sim'")
    expected = _brute_front(plain_molecules, "qed", "sim")
    assert _front_on_page(page) == expected
    rows = page.locator("#pareto-table tbody tr").evaluate_all(
        "(rows) => rows.map((r) => Number(r.dataset.id))"
    )
    assert set(rows) == expected
    caption = page.text_content("#pareto-caption")
    assert f"{len(expected)} non-dominated of {len(plain_molecules)} molecules" in caption, caption
    assert page.locator("#pareto-plot .cloud circle").count() == len(plain_molecules)  # all, under 1500
    label = page.get_attribute("#pareto-plot a.front-point", "aria-label")
    assert label.startswith("Molecule ") and "qed" in label and "sim" in label
    page.select_option("#pareto-x", value="sim")
    page.wait_for_function("document.querySelector('#pareto-state').textContent.includes('two different')")
    page.select_option("#pareto-x", value="sa")
    page.wait_for_function("document.querySelector('#pareto-col-x').textContent === 'sa'")
    assert _front_on_page(page) == _brute_front(plain_molecules, "sa", "sim")
    page.locator("#pareto").scroll_into_view_if_needed()
    screenshot(page, "pareto_front")

    # The preference-conditioned run: one slider per component, normalised shares, a sampling job.
    page.goto(f"{server.url}/runs/{conditioned}/molecules")
    page.wait_for_selector("#weights:not([hidden])")
    page.wait_for_selector("#pareto-plot a.front-point", state="attached")
    assert page.locator("#weight-sliders input[type=range]").count() == 2
    assert page.text_content("label[for=weight-0]") == "qed weight"
    set_weight = (
        "([id, value]) => { const s = document.getElementById(id); s.value = value;"
        " s.dispatchEvent(new Event('input')); }"
    )
    page.evaluate(set_weight, ["weight-0", "0.9"])
    page.evaluate(set_weight, ["weight-1", "0.3"])
    assert page.text_content("#weight-0-share") == "75 %" and page.text_content("#weight-1-share") == "25 %"
    page.evaluate(set_weight, ["weight-0", "0"])
    page.evaluate(set_weight, ["weight-1", "0"])
    assert page.is_disabled("#sample-weights") and "at least one weight" in page.text_content(
        "#weights-state"
    )
    page.evaluate(set_weight, ["weight-0", "0.9"])
    page.evaluate(set_weight, ["weight-1", "0.3"])
    page.fill("#weights-count", "24")
    page.focus("#sample-weights")
    page.keyboard.press("Enter")
    page.wait_for_selector("#sample-job-link")
    job_id = page.get_attribute("#sample-job-link", "href").rsplit("/", 1)[1]
    assert "qed 0.75, sa 0.25" in page.text_content("#weights-state")
    page.locator("#weights").scroll_into_view_if_needed()
    screenshot(page, "pareto_weights_sample_job")

    with server.api() as api:
        job = _finished(api, job_id)
        assert job["kind"] == "sample" and job["parent_id"] == conditioned
        assert job["config"]["preference"] == pytest.approx({"qed": 0.75, "sa": 0.25})
        assert _all_molecules(api, job_id), "the job drew molecules at those weights"
    page.click("#sample-job-link")
    page.wait_for_url(f"**/runs/{job_id}")
