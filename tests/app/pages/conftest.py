"""A real server for the page tests: ``synflow serve`` (API, pages, one embedded worker) on a free
port with SQLite in a temporary directory, a small uploaded library and template set, and Debian's
chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@dataclass
class Server:
    url: str
    library_path: str
    templates_path: str
    headers: dict[str, str] = field(default_factory=dict)

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/api/v1", timeout=30, headers=self.headers)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"synflow serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"synflow serve not ready after {timeout} s:\n{log.read_text()[-3000:]}")


def _upload(client: httpx.Client, path: str, name: str, file: Path) -> str:
    with file.open("rb") as handle:
        response = client.post(path, data={"name": name}, files={"file": (file.name, handle)})
    assert response.status_code == 201, response.text
    return response.json()["path"]


@contextmanager
def serving(
    data_dir: Path, env_extra: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> Iterator[Server]:
    """``synflow serve`` with one embedded worker on a free port, the test library and templates uploaded."""
    port = _free_port()
    log = data_dir / "serve.log"
    env = {**os.environ, "SYNFLOW_WORKER_POLL_SECONDS": "0.2", "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    command = [sys.executable, "-c", "from app.cli.main import main; main()", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--data-dir", str(data_dir), "--workers", "1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        with httpx.Client(base_url=url + "/api/v1", timeout=60, headers=headers) as client:
            library = _upload(client, "/libraries", "test-blocks", DATA / "blocks.smi")
            templates = _upload(client, "/template-sets", "test-templates", DATA / "templates.txt")
        yield Server(url, library, templates, headers or {})
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("synflow-pages")) as running:
        yield running


# Module scope: Playwright's sync API keeps an asyncio loop running in this thread while it is open,
# which breaks any later test of the same process that calls asyncio.run().
@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium); page tests need it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip) drives chromium")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 900}, accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    page = browser.new_page()  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def screenshot(page: object, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path
