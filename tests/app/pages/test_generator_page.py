"""Sharing a generator from the pages, in headless chromium: a finished run's page downloads its
generator file; the runs page imports it, and shows the server's reason when it refuses a file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from synflow.bundle import read_generator
from tests.app.pages.conftest import Server, screenshot

pytestmark = pytest.mark.slow


def _trained_run(server: Server) -> dict[str, Any]:
    config = {
        "name": "to share",
        "reward": {"components": [{"type": "qed"}]},
        "environment": {
            "max_reactions": 2,
            "building_blocks": server.library_path,
            "templates": server.templates_path,
        },
        "model": {"hidden": 32, "layers": 1, "block_hidden": 32},
        "training": {"steps": 2, "batch_size": 4, "device": "cpu"},
    }
    with server.api() as api:
        run = api.post("/runs", json=config).json()
        deadline = time.monotonic() + 240
        while run["status"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, run
            time.sleep(0.5)
            run = api.get(f"/runs/{run['id']}").json()
    assert run["status"] == "succeeded", run["error"]
    return run


def _other_library(source: Path, target: Path) -> Path:
    """The same generator claiming a library whose block 3 differs (as one trained elsewhere would)."""
    with safe_open(str(source), framework="pt") as handle:
        meta = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    hashes = tensors["library.block_hashes"].clone()
    hashes[3] += 1
    tensors["library.block_hashes"] = hashes
    info = json.loads(meta["generator"])
    info["library"] = {**info["library"], "sha256": "0" * 64, "name": "enamine-elsewhere"}
    meta["generator"] = json.dumps(info)
    save_file(tensors, str(target), metadata=meta)
    return target


def test_download_and_import_a_generator_from_the_pages(
    browser: Any, server: Server, page: Any, tmp_path: Path
) -> None:
    run = _trained_run(server)
    page.goto(f"{server.url}/runs/{run['id']}")
    button = page.locator("#download-generator")
    button.wait_for(state="visible")
    with page.expect_download() as caught:
        button.click()
    download = caught.value
    assert download.suggested_filename == f"to-share-{run['id'][:8]}.safetensors"
    generator = tmp_path / download.suggested_filename
    download.save_as(str(generator))
    assert read_generator(generator).step == 2
    screenshot(page, "run_download_generator")

    page.goto(server.url + "/")
    page.wait_for_selector("#runs tbody tr")
    not_safetensors = tmp_path / "notes.safetensors"
    not_safetensors.write_bytes(b"not a generator at all")
    page.set_input_files("#import-file", str(not_safetensors))
    page.click("#import-submit")
    page.wait_for_selector("#import-state.error")
    assert "Not imported: file: not a safetensors file" in page.text_content("#import-state")

    page.set_input_files("#import-file", str(_other_library(generator, tmp_path / "elsewhere.safetensors")))
    page.click("#import-submit")
    page.wait_for_function(
        "document.querySelector('#import-state').textContent.includes('first differing block')"
    )
    refusal = page.text_content("#import-state")
    assert refusal.startswith("Not imported: library: the generator was trained on")
    assert "position 3: library 'test-blocks' here" in refusal and "'enamine-elsewhere'" in refusal
    page.locator("#import-state").scroll_into_view_if_needed()
    screenshot(page, "runs_import_generator_refused")

    page.set_input_files("#import-file", str(generator))
    page.fill("#import-name", "shared copy")
    page.click("#import-submit")
    link = page.locator("#import-state a")
    link.wait_for()
    assert link.text_content() == "shared copy"
    screenshot(page, "runs_import_generator")
    imported_id = link.get_attribute("href").rsplit("/", 1)[1]
    link.click()
    page.wait_for_selector("#run-status .status-succeeded")
    assert page.locator("#download-generator").is_visible()
    with server.api() as api:  # the imported run serves back the very file it came from
        assert api.get(f"/runs/{imported_id}/generator").content == generator.read_bytes()
