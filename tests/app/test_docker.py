"""Deployment files, checked without a Docker engine: compose parses and is wired as documented,
every path the Dockerfile copies exists, the entrypoint migrates a throwaway database and runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, inspect

ROOT = Path(__file__).resolve().parents[2]


def test_compose_parses_and_is_wired() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "api", "worker", "worker-gpu"} <= set(services)
    for name in ("postgres", "api", "worker", "worker-gpu"):
        assert "healthcheck" in services[name], name
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # a CPU worker by default; the GPU one only behind its profile
    assert "profiles" not in services["worker"] and "deploy" not in services["worker"]
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    gpu = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert services["worker-gpu"]["build"]["args"]["TORCH_VARIANT"] != "cpu"
    assert "torch.cuda.is_available()" in " ".join(services["worker-gpu"]["healthcheck"]["test"])
    for name in ("worker", "worker-gpu"):
        assert services[name]["command"] == ["worker"]
        assert services[name]["environment"]["SYNFLOW_WORKER_HEALTH_FILE"] in " ".join(
            services[name]["healthcheck"]["test"]
        )
        assert "data:/data" in services[name]["volumes"]
    url = services["api"]["environment"]["SYNFLOW_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "@postgres:" in url
    assert "data:/data" in services["api"]["volumes"] and {"data", "pgdata"} <= set(compose["volumes"])
    assert (ROOT / services["api"]["build"]["dockerfile"]).is_file()


def test_dockerfile_copies_existing_paths_and_runs_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM .* AS (\w+)", text, flags=re.M)
    assert len(stages) >= 2, "multi-stage build"
    copies = [
        line.split()[1:-1] for line in text.splitlines() if line.startswith("COPY ") and "--from" not in line
    ]
    sources = [src for args in copies for src in args]
    assert sources, "no COPY lines found"
    for src in sources:
        assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", text, flags=re.M), "CPU torch by default"
    assert "check_torch.py" in text and "HEALTHCHECK" in text
    assert not re.search(r"^#\s*syntax=", text, flags=re.M), "no remote Dockerfile frontend"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "synflow-data", ".git"} <= set(ignored)


@pytest.mark.parametrize(("variant", "cuda", "ok"), [("cpu", None, True), ("cpu", "12.6", False),
                                                     ("cu126", "12.6", True), ("cu126", None, False),
                                                     ("cu124", "12.6", False)])
def test_the_build_refuses_a_torch_that_is_not_the_variant(variant: str, cuda: str | None, ok: bool,
                                                          tmp_path: Path) -> None:
    """docker/check_torch.py against a stand-in torch module reporting a given CUDA version."""
    fake = tmp_path / "torch"
    fake.mkdir()
    version = (ROOT / "pyproject.toml").read_text().split('"torch==', 1)[1].split('"', 1)[0]
    (fake / "__init__.py").write_text(
        f"__version__ = '{version}+x'\nclass version:\n    cuda = {cuda!r}\n"
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "check_torch.py"), variant, str(ROOT / "pyproject.toml")],
        env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True, timeout=60,
    )
    assert (result.returncode == 0) == ok, result.stderr
    if not ok:
        assert "torch.version.cuda" in result.stderr


def _entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "docker" / "entrypoint.sh"), *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("empty_database_url", ["sqlite", "postgresql"], indirect=True)
def test_entrypoint_migrates_then_runs_the_command(empty_database_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SYNFLOW_DATABASE_URL": empty_database_url,
        "SYNFLOW_DATA_DIR": str(tmp_path),
        "SYNFLOW_BIN": f"{sys.executable} -m app",
        "SYNFLOW_DB_WAIT_SECONDS": "4",
    }
    result = _entrypoint(env, "token", "create", "--name", "docker")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "synflow-entrypoint: database schema up to date" and lines[-1].startswith("sfk_")
    engine = create_engine(empty_database_url)
    assert {"runs", "molecules", "alembic_version"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_entrypoint_fails_clearly_without_a_database(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SYNFLOW_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "SYNFLOW_DATA_DIR": str(tmp_path),
        "SYNFLOW_BIN": f"{sys.executable} -m app",
        "SYNFLOW_DB_WAIT_SECONDS": "2",
    }
    result = _entrypoint(env, "worker")
    assert result.returncode == 1 and "database not reachable" in result.stderr
