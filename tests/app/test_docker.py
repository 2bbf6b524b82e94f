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
    assert {"postgres", "api", "worker"} <= set(services)
    for name in ("postgres", "api", "worker"):
        assert "healthcheck" in services[name], name
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert services["worker"]["command"] == ["worker"]
    url = services["api"]["environment"]["SYNFLOW_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "@postgres:" in url
    assert "checkpoints:/data" in services["worker"]["volumes"] and "checkpoints" in compose["volumes"]
    for name in ("api", "worker"):
        assert (ROOT / services[name]["build"]["dockerfile"]).is_file()


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
    assert re.search(r"^ARG TORCH_INDEX_URL=.*/cpu$", text, flags=re.M), "CPU torch by default"
    assert "HEALTHCHECK" in text


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
