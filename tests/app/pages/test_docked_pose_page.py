"""Docked poses end to end: a real ``synflow serve`` run with a docking reward (ESR1, a 12 Å box,
exhaustiveness 1, one docking process) keeps its molecules' poses under DATA_DIR/poses; the rows
carry them (``pose_url``), the API serves pose and receptor, the SDF export has the 3-D poses, and
the molecule page draws the pose in the pocket with the vendored 3Dmol.js in WebGL (SwiftShader in
headless chromium), which the test checks from the pixels of a screenshot."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rdkit import Chem

from synflow.rewards.docking import receptor_box
from tests.app.pages.conftest import CHROMIUM, CHROMIUM_ARGS, Server, screenshot, serving

pytest.importorskip("vina", reason="AutoDock Vina (pip install vina) is not installed")
pytest.importorskip("meeko", reason="meeko (pip install meeko gemmi) is not installed")
pytestmark = [pytest.mark.slow, pytest.mark.long]

RUN_TIMEOUT_S = 600
# WebGL in headless chromium: SwiftShader (software), which --disable-gpu would turn off
WEBGL_ARGS = [a for a in CHROMIUM_ARGS if a != "--disable-gpu"] + [
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
]


@pytest.fixture(scope="module")
def docked_run(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path
) -> Iterator[tuple[Server, str, Path]]:
    data_dir = tmp_path_factory.mktemp("synflow-poses")
    found, center = receptor_box(shared_data / "receptors" / "ESR1_ant")
    receptor = data_dir / "receptors" / "ESR1_ant.pdbqt"  # a run reads files of the data directory only
    receptor.parent.mkdir()
    shutil.copyfile(found, receptor)
    with serving(data_dir) as server, server.api() as api:
        config = {
            "name": "docked-poses",
            "environment": {"building_blocks": server.library_path, "templates": server.templates_path,
                            "max_reactions": 1},
            "reward": {"components": [{"type": "docking", "receptor": str(receptor), "center": list(center),
                                       "size": [12, 12, 12], "exhaustiveness": 1, "processes": 1}]},
            "training": {"steps": 2, "batch_size": 4, "seed": 0},
        }
        created = api.post("/runs", json=config)
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while (run := api.get(f"/runs/{run_id}").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, f"the docking run did not finish in {RUN_TIMEOUT_S} s"
            time.sleep(1)
        assert run["status"] == "succeeded", run.get("error")
        yield server, run_id, data_dir


def docked_molecule(server: Server, run_id: str) -> dict[str, Any]:
    with server.api() as api:
        items = api.get(f"/runs/{run_id}/molecules", params={"limit": 100}).json()["items"]
    with_pose = [m for m in items if m["pose_url"]]
    assert with_pose, [(m["smiles"], m["scores"], m["error"]) for m in items]
    return with_pose[0]


def test_a_service_run_keeps_poses_the_api_serves(docked_run: tuple[Server, str, Path]) -> None:
    server, run_id, data_dir = docked_run
    mol = docked_molecule(server, run_id)
    with server.api() as api:
        pose = api.get(f"/molecules/{mol['id']}/pose")
        receptor = api.get(f"/molecules/{mol['id']}/receptor")
        docking = api.get(f"/molecules/{mol['id']}/docking").json()
        sdf = api.get(f"/runs/{run_id}/export", params={"format": "sdf"}).text
    assert pose.status_code == 200 and receptor.status_code == 200
    assert receptor.text.startswith(("ATOM", "REMARK", "HETATM")) and "ATOM" in receptor.text
    posed = Chem.MolFromMolBlock(pose.text, removeHs=False)
    assert Chem.MolToInchiKey(posed) == Chem.MolToInchiKey(Chem.MolFromSmiles(mol["smiles"]))
    assert docking["affinity"] == pytest.approx(mol["scores"]["docking_raw"], abs=1e-3)
    assert list(data_dir.joinpath("poses").rglob("*.sdf")), "the poses live under DATA_DIR/poses"
    supplier = Chem.SDMolSupplier()
    supplier.SetData(sdf, removeHs=False)
    exported = {m.GetProp("_Name"): m for m in supplier if m is not None}
    record = exported[f"{run_id}:{mol['id']}"]
    assert record.GetProp("coordinates") == "docked_3d" and record.GetConformer().Is3D()


@pytest.fixture(scope="module")
def webgl_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium); page tests need it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip) drives chromium")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-webgl")), executable_path=CHROMIUM, args=WEBGL_ARGS,
            headless=True, viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def test_the_molecule_page_draws_the_pose_in_the_pocket(
    docked_run: tuple[Server, str, Path], webgl_browser: Any
) -> None:
    from PIL import Image

    server, run_id, _ = docked_run
    mol = docked_molecule(server, run_id)
    page = webgl_browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(f"{server.url}/molecules/{mol['id']}")
        page.wait_for_selector("#pose-viewer[data-rendered=true] canvas", timeout=60_000)
        facts = page.text_content("#pose-facts")
        assert "Vina affinity" in facts and f"{mol['scores']['docking_raw']:.2f}"[:4] in facts
        assert page.text_content("#pose-state") == ""
        path = screenshot(page, "molecule_docked_pose")
        pixels = Image.open(io.BytesIO(page.locator("#pose-viewer").screenshot())).convert("RGB")
        colours = pixels.getcolors(maxcolors=1 << 20) or []
        # a drawn scene: many colours (shaded cartoon and sticks), not a blank white canvas
        assert len(colours) > 200, f"the 3-D view looks empty ({len(colours)} colours); see {path}"
        assert all(u.startswith(server.url) for u in requests), "everything comes from the server (no CDN)"
        assert any(u.endswith("/pages/static/vendor/3Dmol-2.5.5.min.js") for u in requests)
    finally:
        page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_a_molecule_without_a_pose_shows_no_viewer(
    docked_run: tuple[Server, str, Path], webgl_browser: Any
) -> None:
    server, _, _ = docked_run
    with server.api() as api:
        created = api.post("/runs", json={
            "environment": {"building_blocks": server.library_path, "templates": server.templates_path},
            "reward": {"components": [{"type": "qed"}]}, "training": {"steps": 1, "batch_size": 2},
        })
        run_id = created.json()["id"]
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while api.get(f"/runs/{run_id}").json()["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        item = api.get(f"/runs/{run_id}/molecules", params={"limit": 1}).json()["items"][0]
    page = webgl_browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(f"{server.url}/molecules/{item['id']}")
        page.wait_for_selector("#mol-facts div")
        page.wait_for_load_state("networkidle")
        assert page.locator("#pose-section").is_hidden()
        assert not any("3Dmol" in u for u in requests), "3Dmol.js is loaded only for a pose"
    finally:
        page.close()
