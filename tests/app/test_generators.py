"""Sharing a trained generator between two installations, over real HTTP and the real CLI: a run
trained on server A is downloaded, refused by server B until B has the same library and templates
(with the reason), imported, and sampled; B's sampling job draws exactly what `synflow generator
sample` draws from the same file. Hostile and oversized files are refused; nothing is stored."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from devsupport.postgres import free_port

DATA = Path(__file__).parent / "pages" / "data"
BLOCKS, TEMPLATES = DATA / "blocks.smi", DATA / "templates.txt"
UPLOAD_LIMIT = 4 * 1024 * 1024
pytestmark = [pytest.mark.slow, pytest.mark.long]


def tiny_run(library: str, templates: str) -> dict:
    return {
        "name": "shared",
        "reward": {"components": [{"type": "qed"}]},
        "environment": {"max_reactions": 2, "building_blocks": library, "templates": templates},
        "model": {"hidden": 32, "layers": 1, "block_hidden": 32},
        "training": {"steps": 2, "batch_size": 4, "seed": 5, "device": "cpu"},
    }


@contextmanager
def serving(data_dir: Path) -> Iterator[httpx.Client]:
    """``synflow serve`` with one worker on SQLite in ``data_dir``: one installation."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "SYNFLOW_DATA_DIR": str(data_dir),
        "SYNFLOW_WORKER_POLL_SECONDS": "0.2",
        "SYNFLOW_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
    }
    env.pop("SYNFLOW_DATABASE_URL", None)
    log = data_dir / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app",
                "serve",
                "--port",
                str(port),
                "--workers",
                "1",
                "--api-workers",
                "1",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=120)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=60)


def upload(client: httpx.Client, kind: str, name: str, content: bytes, filename: str) -> str:
    response = client.post(f"/{kind}", data={"name": name}, files={"file": (filename, content)})
    assert response.status_code == 201, response.text
    return response.json()["path"]


def wait_finished(client: httpx.Client, run_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/runs/{run_id}").json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return run
        time.sleep(0.5)
    pytest.fail(f"run {run_id} did not finish in {timeout} s: {run}")


def import_file(client: httpx.Client, content: bytes, name: str = "g.safetensors") -> httpx.Response:
    return client.post("/generators", files={"file": (name, content)})


def rewrite(content: bytes, tmp_path: Path, config_update: dict) -> bytes:
    """The same generator with its RunConfig changed (what a hand-edited file would carry)."""
    source = tmp_path / "source.safetensors"
    source.write_bytes(content)
    with safe_open(str(source), framework="pt") as handle:
        meta = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    info = json.loads(meta["generator"])
    info["config"] = {**info["config"], **config_update}
    meta["generator"] = json.dumps(info)
    target = tmp_path / "edited.safetensors"
    save_file(tensors, str(target), metadata=meta)
    return target.read_bytes()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=600, check=False
    )


def test_a_generator_moves_between_installations_and_samples_the_same(tmp_path: Path) -> None:
    blocks, templates = BLOCKS.read_bytes(), TEMPLATES.read_bytes()
    with serving(tmp_path / "a") as a:
        library = upload(a, "libraries", "enamine-mini", blocks, "blocks.smi")
        template_set = upload(a, "template-sets", "amide-suzuki", templates, "templates.txt")
        run = a.post("/runs", json=tiny_run(library, template_set)).json()
        long_run = tiny_run(library, template_set)
        long_run["training"] = {**long_run["training"], "steps": 1000}
        stopped = a.post("/runs", json={**long_run, "name": "stopped"}).json()
        a.post(f"/runs/{stopped['id']}/cancel")
        assert wait_finished(a, run["id"])["status"] == "succeeded"
        response = a.get(f"/runs/{run['id']}/generator")
        assert response.status_code == 200, response.text
        assert response.headers["content-disposition"].endswith(f'shared-{run["id"][:8]}.safetensors"')
        generator = response.content
        assert a.get(f"/runs/{run['id']}/generator").content == generator  # served again, unchanged
        refused = a.get(f"/runs/{stopped['id']}/generator")
        assert refused.status_code == 409 and refused.json()["errors"][0]["field"] == "run_id"
        assert stopped["id"] in refused.json()["message"]
        assert a.get("/runs/nope/generator").status_code == 404
        paths = a.get(str(a.base_url.copy_with(path="/openapi.json"))).json()["paths"]
        assert "/api/v1/runs/{run_id}/generator" in paths and "/api/v1/generators" in paths
    (tmp_path / "shared.safetensors").write_bytes(generator)

    with serving(tmp_path / "b") as b:
        # B has the bundled library and, first, one whose block 3 is another molecule
        changed = blocks.splitlines()
        changed[3] = b"OC(=O)c1ccc(I)cc1 EN-0004"
        upload(b, "libraries", "almost", b"\n".join(changed) + b"\n", "almost.smi")
        refused = import_file(b, generator)
        assert refused.status_code == 409, refused.text
        body = refused.json()
        assert body["errors"][0]["field"] == "library"
        assert (
            "first differing block at position 3: library 'almost' here 'O=C(O)c1ccc(I)cc1'"
            in body["message"]
        )
        assert "'enamine-mini'" in body["message"] and "POST /api/v1/libraries" in body["message"]
        upload(b, "libraries", "blocks-here", blocks, "blocks.smi")
        lines = templates.splitlines()
        reordered = b"\n".join([lines[0], lines[2], lines[1], lines[3]]) + b"\n"
        upload(b, "template-sets", "reordered", reordered, "t.txt")
        refused = import_file(b, generator)
        assert refused.status_code == 409 and refused.json()["errors"][0]["field"] == "templates"
        assert (
            "first differing template at position 0: template set 'reordered' here"
            in refused.json()["message"]
        )
        assert b.get("/runs").json()["items"] == [], "a refused import stores nothing"

        # hostile and broken files: refused with the reason, never unpickled
        marker = tmp_path / "pwned"
        payload = pickle.dumps({"model": _Touch(str(marker))})
        for content, reason in [
            (payload, "^file: not a safetensors file"),
            (generator[: len(generator) // 2], "not a readable safetensors file"),
            (b"", "not a safetensors file: 0 bytes"),
        ]:
            response = import_file(b, content)
            assert response.status_code == 422, response.text
            assert response.json()["errors"][0]["field"] == "file"
            assert re.search(reason, response.json()["message"]), response.json()["message"]
        assert not marker.exists()
        python_reward = {"reward": {"components": [{"type": "python", "target": "os:getcwd"}]}}
        forbidden = import_file(b, rewrite(generator, tmp_path, python_reward))
        assert forbidden.status_code == 403 and "allowlist" in forbidden.text
        too_big = import_file(b, generator + b"\0" * UPLOAD_LIMIT)
        assert too_big.status_code == 413

        upload(b, "template-sets", "templates-here", templates, "templates.txt")
        created = b.post("/generators", files={"file": ("g.safetensors", generator)}, data={"name": "from A"})
        assert created.status_code == 201, created.text
        imported = created.json()
        assert (
            imported["status"] == "succeeded" and imported["kind"] == "train" and imported["name"] == "from A"
        )
        assert imported["progress"]["step"] == 2 and imported["checkpoint_step"] == 2
        env = imported["config"]["environment"]
        assert env["building_blocks"].startswith(str((tmp_path / "b").resolve()))
        assert env["templates"].startswith(str((tmp_path / "b").resolve()))
        assert b.get(f"/runs/{imported['id']}/generator").content == generator

        job = b.post(f"/runs/{imported['id']}/sample", json={"count": 12}).json()
        finished = wait_finished(b, job["id"])
        assert finished["status"] == "succeeded", finished["error"]
        items = b.get(f"/runs/{job['id']}/molecules", params={"limit": 500}).json()["items"]
        drawn_by_service = Counter({m["smiles"]: m["times_sampled"] for m in items})

    out = tmp_path / "cli.jsonl"
    sampled = cli(
        "generator",
        "sample",
        str(tmp_path / "shared.safetensors"),
        "-n",
        "12",
        "--library",
        str(BLOCKS),
        "--templates",
        str(TEMPLATES),
        "--out",
        str(out),
    )
    assert sampled.returncode == 0, sampled.stderr
    drawn_by_cli = Counter(json.loads(line)["smiles"] for line in out.read_text().splitlines())
    assert drawn_by_service and drawn_by_service == drawn_by_cli


class _Touch:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (self.path,))


def test_cli_export_import_and_sample_round_trip(tmp_path: Path) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_run(str(BLOCKS), str(TEMPLATES))))
    trained = cli("train", str(config), "--out", str(tmp_path / "out"))
    assert trained.returncode == 0, trained.stderr[-2000:]
    generator = tmp_path / "g.safetensors"
    exported = cli(
        "generator", "export", str(tmp_path / "out" / "checkpoints" / "last.pt"), "-o", str(generator)
    )
    assert exported.returncode == 0, exported.stderr[-2000:]
    summary = json.loads(exported.stdout)
    assert summary["step"] == 2 and summary["templates"]["count"] == 3

    # another installation: a fresh database and data directory with the library uploaded as files
    data_dir = tmp_path / "other"
    assert cli("db", "upgrade", "--data-dir", str(data_dir)).returncode == 0
    refused = cli("generator", "import", str(generator), "--data-dir", str(data_dir))
    assert refused.returncode == 2 and "library: the generator was trained on" in refused.stderr
    assert "upload the generator's library" in refused.stderr
    _register_library(data_dir)
    imported = cli("generator", "import", str(generator), "--data-dir", str(data_dir))
    assert imported.returncode == 0, imported.stderr[-2000:]
    run = json.loads(imported.stdout)
    assert run["status"] == "succeeded" and run["step"] == 2 and run["name"] == "shared (imported)"
    again = tmp_path / "again.safetensors"
    assert (
        cli("generator", "export", run["id"], "-o", str(again), "--data-dir", str(data_dir)).returncode == 0
    )
    assert again.read_bytes() == generator.read_bytes()

    # the imported run's checkpoint is what the service's sampling path loads: same draws as the CLI
    from synflow.callbacks import SampledMolecule, TrainerCallback
    from synflow.config import SamplingConfig
    from synflow.trainer import Trainer

    class Every(TrainerCallback):
        def __init__(self) -> None:
            self.records: list[SampledMolecule] = []

        def on_samples(self, samples: list[SampledMolecule]) -> None:
            self.records += samples

    collected = Every()
    checkpoint = data_dir / "checkpoints" / run["id"] / "last.pt"
    with Trainer.from_checkpoint(checkpoint, callbacks=[collected]) as trainer:
        trainer.draw(SamplingConfig(count=8))
    out = tmp_path / "cli.jsonl"
    sampled = cli(
        "generator",
        "sample",
        str(generator),
        "-n",
        "8",
        "--library",
        str(BLOCKS),
        "--templates",
        str(TEMPLATES),
        "-o",
        str(out),
    )
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    assert [json.loads(x)["smiles"] for x in out.read_text().splitlines()] == [
        r.smiles for r in collected.records
    ]
    wrong = cli("generator", "sample", str(generator), "-n", "2", "--templates", str(TEMPLATES))
    assert wrong.returncode == 2 and "first differing block at position 0" in wrong.stderr
    assert torch.__version__  # the service side of the test ran with the training stack


def _register_library(data_dir: Path) -> None:
    """What POST /libraries and /template-sets leave behind, without a server: files in the upload
    folder and their rows."""
    from app.core.db import Database
    from app.core.models import Library
    from app.core.settings import Settings
    from reactions.library import load_building_blocks

    settings = Settings(data_dir=data_dir)
    root = settings.upload_root()
    root.mkdir(parents=True, exist_ok=True)
    db = Database.from_settings(settings)
    with db.session() as session:
        blocks = ("building_blocks", "blocks", BLOCKS, len(load_building_blocks(BLOCKS)))
        for kind, name, source, size in [blocks, ("templates", "t", TEMPLATES, 3)]:
            target = root / source.name
            target.write_bytes(source.read_bytes())
            session.add(Library(name=name, kind=kind, path=str(target.resolve()), size=size))
    db.dispose()
