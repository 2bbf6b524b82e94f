"""Every command the README shows, run as a user runs it: the installed ``synflow`` script as a
subprocess, at a tiny size. ``train`` runs every file in ``examples/`` (``--steps 2``), ``sample``
reads the checkpoint ``train`` wrote, the service commands run against a real ``synflow serve`` and a
separate ``synflow worker``, and the run submitted is the README's own ``curl`` body."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devsupport.postgres import free_port
from tests.test_readme import command_lines

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SYNFLOW = str(Path(sys.executable).with_name("synflow"))
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
RUN_EXAMPLES = [p for p in EXAMPLES if "reward" not in p.name]  # RunConfigs (reward.toml is for score)


def synflow(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(
        [SYNFLOW, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"synflow {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def test_every_example_is_a_run_config_or_a_reward() -> None:
    from synflow.config import load_run_config
    from synflow.rewards import load_reward_config

    assert RUN_EXAMPLES, "examples/ holds RunConfigs"
    for path in RUN_EXAMPLES:
        load_run_config(path)
    load_reward_config(ROOT / "examples" / "reward.toml")


@pytest.mark.parametrize("example", RUN_EXAMPLES, ids=[p.stem for p in RUN_EXAMPLES])
def test_train_every_example_then_sample_from_its_checkpoint(example: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = json.loads(synflow("train", str(example), "--out", str(out), "--steps", "2", cwd=tmp_path))
    assert summary["step"] == 2 and summary["stop_reason"] == "all training steps done"
    molecules = [json.loads(line) for line in (out / "molecules.jsonl").read_text().splitlines()]
    assert molecules and all(m["route"]["steps"] for m in molecules)
    assert json.loads((out / "config.json").read_text())["training"]["steps"] == 2
    sampled = tmp_path / "sampled.jsonl"
    checkpoint = str(out / "checkpoints" / "last.pt")
    # a preference-conditioned run samples at the weights asked for (README "Several objectives")
    preference = ["--preference", "qed=0.7,sa=0.3"] if "preferences" in example.name else []
    synflow("sample", checkpoint, "-n", "6", "--out", str(sampled), *preference, cwd=tmp_path)
    drawn = [json.loads(line) for line in sampled.read_text().splitlines()]
    assert 1 <= len(drawn) <= 6 and all(d["route"]["steps"][-1]["product"] == d["smiles"] for d in drawn)
    if preference:
        assert all(d["preference"] == pytest.approx({"qed": 0.7, "sa": 0.3}) for d in drawn)
        refused = subprocess.run(
            [SYNFLOW, "sample", checkpoint, "-n", "2", "--preference", "qed=1,logp=1"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
        )
        assert refused.returncode != 0 and "preference.logp" in refused.stderr, refused.stderr[-2000:]


def test_score_the_example_molecules(tmp_path: Path) -> None:
    lines = synflow("score", "examples/reward.toml", "examples/molecules.smi", cwd=ROOT).splitlines()
    scored = [json.loads(line) for line in lines]
    assert len(scored) == 6 and [s["valid"] for s in scored] == [True] * 5 + [False]
    assert all(0 <= s["reward"] <= 1 for s in scored)
    nitro = scored[3]
    assert nitro["scores"]["substructure"] == 0.5 and scored[0]["scores"]["similarity"] == 1.0


def test_fit_a_reward_model_then_score_with_it(tmp_path: Path) -> None:
    """README "Rewards from your own data": ``synflow reward-model fit … -o``, then the file as a reward."""
    from tests.synflow.rewards.assay_data import write_logp_csv, zinc_smiles

    write_logp_csv(tmp_path / "logp.csv", zinc_smiles(30))
    fitted = json.loads(synflow(
        "reward-model", "fit", "logp.csv", "--value-column", "logp", "-o", "logp.npz", cwd=tmp_path
    ))
    assert fitted["molecules"] == 30 and (tmp_path / "logp.npz").is_file()
    (tmp_path / "reward.json").write_text(
        json.dumps({"components": [{"type": "assay_model", "model": "logp.npz"}]})
    )
    (tmp_path / "m.smi").write_text("CC(=O)NCC(=O)O\nCCCCCCCCCCc1ccc(Cl)cc1Cl\n")  # logP about -1 and 7
    scored = synflow("score", "reward.json", "m.smi", cwd=tmp_path).splitlines()
    low, high = (json.loads(line) for line in scored)
    assert low["scores"]["logp"] < high["scores"]["logp"]


def test_library_build_reports_rejects_with_reasons(tmp_path: Path) -> None:
    summary = json.loads(
        synflow(
            "library",
            "build",
            "examples/blocks.smi",
            "--out",
            str(tmp_path / "lib"),
            "--workers",
            "1",
            cwd=ROOT,
        )
    )
    assert summary["building_blocks"] == 10 and summary["rejected"] == 2, summary
    rejected = (tmp_path / "lib" / "library" / "rejected.tsv").read_text()
    assert "broken-ring" in rejected and "not valid SMILES" in rejected


def test_hypergrid_demo_reports_the_exact_distance(tmp_path: Path) -> None:
    out = synflow("hypergrid", "--steps", "50", "--side", "8", cwd=tmp_path)
    assert "L1" in out


def _readme_run_body() -> dict:
    """The JSON body of the README's ``curl -X POST …/runs`` example."""
    for args in command_lines("curl"):
        if (
            "-X" in args
            and args[args.index("-X") + 1] == "POST"
            and any(a.endswith("/api/v1/runs") for a in args)
        ):
            return json.loads(args[args.index("-d") + 1])
    raise AssertionError("the README has no curl example that creates a run")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    """``synflow db upgrade``, then ``synflow serve --workers 0`` and one ``synflow worker``."""
    env = {"SYNFLOW_DATA_DIR": str(tmp_path / "data"), "SYNFLOW_WORKER_POLL_SECONDS": "0.2"}
    assert "database at revision head" in synflow("db", "upgrade", cwd=tmp_path, env=env)
    port = free_port()
    log = (tmp_path / "service.log").open("w")
    full_env = {**os.environ, **env}
    procs = [
        subprocess.Popen(
            [SYNFLOW, "serve", "--port", str(port), "--workers", "0"],
            cwd=tmp_path,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [SYNFLOW, "worker"], cwd=tmp_path, env=full_env, stdout=log, stderr=subprocess.STDOUT
        ),
    ]
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert all(p.poll() is None for p in procs), (tmp_path / "service.log").read_text()[-3000:]
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "synflow serve did not become ready"
            time.sleep(0.2)
        yield client, env
    finally:
        client.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
        log.close()


def _log_tail(tmp_path: Path) -> str:
    return (tmp_path / "service.log").read_text()[-3000:]


def test_the_readme_run_finishes_within_a_minute_and_every_service_command_works(
    service: tuple[httpx.Client, dict[str, str]], tmp_path: Path
) -> None:
    client, env = service
    started = time.monotonic()
    created = client.post("/api/v1/runs", json=_readme_run_body())
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    while True:
        polled = client.get(f"/api/v1/runs/{run_id}")
        assert polled.status_code == 200, (polled.status_code, polled.text, _log_tail(tmp_path))
        run = polled.json()
        if run["status"] not in ("queued", "running"):
            break
        assert time.monotonic() - started < 60, f"the README's run took over a minute: {run['progress']}"
        time.sleep(0.5)
    assert run["status"] == "succeeded", run
    best = client.get(f"/api/v1/runs/{run_id}/molecules", params={"sort": "-reward", "limit": 10}).json()
    assert best["items"] and best["items"][0]["route"]["steps"]
    sdf = client.get(f"/api/v1/runs/{run_id}/export", params={"format": "sdf"}).text
    assert sdf.count("$$$$") == run["molecules"]

    csv = tmp_path / "run.csv"
    synflow("export", run_id, "--format", "csv", "--out", str(csv), cwd=tmp_path, env=env)
    assert len(csv.read_text().splitlines()) == run["molecules"] + 1

    token = synflow("token", "create", "--name", "ci", cwd=tmp_path, env=env).strip()
    assert client.get("/api/v1/runs").status_code == 401  # a token exists: auth is on
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/runs", headers=headers).status_code == 200
    listed = synflow("token", "list", cwd=tmp_path, env=env)
    prefix = re.search(r"\t(sfk_[^\t]+)\tci\tactive", listed)
    assert prefix, listed
    assert "revoked" in synflow("token", "revoke", prefix.group(1), cwd=tmp_path, env=env)
    assert client.get("/api/v1/runs", headers=headers).status_code == 401
