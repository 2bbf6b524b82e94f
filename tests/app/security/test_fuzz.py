"""Schemathesis fuzzes every OpenAPI operation in-process (ASGI) on a seeded SQLite database: no
case may get a 5xx. Half the cases with a ``run_id``/``molecule_id`` path get a real row's id, so the
handlers behind the 404 are reached too. ``make fuzz`` runs thousands of cases against a real
server on SQLite and PostgreSQL; this is its quick in-suite version (about 300 cases)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode

from app.core.models import Run
from app.main import create_app
from tests.app.security.conftest import QED_CONFIG, Seeded

FUZZ_TOKEN = "fuzz-token-for-tests"
AUTH = {"Authorization": f"Bearer {FUZZ_TOKEN}"}
EXAMPLES_PER_OPERATION = 10  # per mode (valid, invalid)


@pytest.fixture
def fuzz_target(seeded: Seeded) -> Iterator[tuple[FastAPI, Seeded, Iterator[int]]]:
    # A configured token keeps auth on (a fuzzed POST /tokens cannot switch it on half way).
    settings = seeded.settings.model_copy(update={"api_tokens": [FUZZ_TOKEN]})
    app = create_app(settings, seeded.db)
    with TestClient(app) as client:  # loads the bundled catalogue once (seconds), before any timed case
        assert client.get("/api/v1/libraries", headers=AUTH).status_code == 200
    yield app, seeded, count()


def _fresh_run(seeded: Seeded) -> str:
    with seeded.db.session() as session:
        run = Run(config=QED_CONFIG, total_steps=4, status="failed", name="to delete")
        session.add(run)
        session.flush()
        return run.id


SHARDS = 2


@pytest.mark.parametrize("shard", range(SHARDS))
def test_no_server_errors(shard: int, fuzz_target: tuple[FastAPI, Seeded, Iterator[int]]) -> None:
    """Operations are split into shards so ``pytest -n 2`` runs them side by side."""
    app, seeded, counter = fuzz_target
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15  # the schema really lists the API
    failures: list[str] = []
    tested: list[str] = []
    for operation, mode in [(op, mode) for op in operations[shard::SHARDS] for mode in GenerationMode]:
        tested.append(f"{operation.label} {mode.value}")

        @given(case=operation.as_strategy(mode))
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        def check(case: schemathesis.Case) -> None:
            _use_real_ids(case, seeded, next(counter))
            try:
                response = case.call(headers=AUTH)
            except Exception as error:  # the in-process client re-raises what the app did not handle
                failures.append(f"unhandled {error!r}\n{case.as_curl_command()}")
                return
            if response.status_code >= 500:
                failures.append(f"{response.status_code} {response.text[:300]}\n{case.as_curl_command()}")

        try:
            check()
        except Exception as error:  # check() never raises: only generation can (no invalid data)
            tested.append(f"{operation.label} {mode.value}: nothing generated ({type(error).__name__})")
    print(f"shard {shard}: {len(tested)} operations, {next(counter)} cases")
    assert tested and not failures, f"{len(failures)} server errors:\n" + "\n\n".join(failures[:15])


def _use_real_ids(case: schemathesis.Case, seeded: Seeded, index: int) -> None:
    params = case.path_parameters or {}
    if index % 2:
        return
    if "run_id" in params:
        params["run_id"] = _fresh_run(seeded) if case.method.upper() == "DELETE" else seeded.run_id
    if "molecule_id" in params:
        params["molecule_id"] = seeded.molecule_ids[index % len(seeded.molecule_ids)]
