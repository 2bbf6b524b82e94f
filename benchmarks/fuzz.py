"""Fuzz every OpenAPI operation of a real ``synflow serve`` with schemathesis, on SQLite and on a
throwaway PostgreSQL 15; exit 1 on any 5xx (or a request the server did not answer).

    make fuzz                                   # both databases, 100 valid + 100 invalid per operation
    .venv/bin/python benchmarks/fuzz.py --examples 40 --backend sqlite

Each server runs with ``--workers 0`` (fuzzed runs stay queued) and a configured bearer token that
every case sends, on a database seeded with one finished run and 40 molecules; half the cases with
a ``run_id`` or ``molecule_id`` in the path get a real row's id. The server's own Prometheus
counters are read at the end as a second count of 5xx answers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from app.core.db import Database
from app.core.migrate import upgrade
from app.core.models import Molecule, Run
from app.runs.store import write_molecules
from devsupport.postgres import PostgresUnavailable, ThrowawayPostgres, free_port
from synflow.callbacks import SampledMolecule

TOKEN = "fuzz-token"
SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "CCN(CC)CC", "c1ccncc1", "Clc1ccccc1"]
CONFIG = {"reward": {"components": [{"type": "qed"}]}, "training": {"steps": 4, "batch_size": 2}}


def seed(url: str, molecules: int = 40) -> tuple[str, list[int]]:
    db = Database(url)
    with db.session() as session:
        run = Run(config=CONFIG, total_steps=4, status="succeeded", name="seeded")
        session.add(run)
        session.flush()
        run_id = run.id
    records = [
        SampledMolecule(
            SMILES[i % 6] + "C" * (i // 6),
            reward=(i * 7 % 10) / 10,
            step=i,
            scores={"qed": i / 100},
            route={"steps": [{"action": "start", "product": SMILES[i % 6]}]},
        )
        for i in range(molecules)
    ]
    with db.session() as session:
        write_molecules(session, run_id, records)
    with db.session() as session:
        ids = [m.id for m in session.query(Molecule).filter(Molecule.run_id == run_id)]
    db.dispose()
    return run_id, ids


@contextmanager
def serve(database_url: str, data_dir: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "SYNFLOW_DATABASE_URL": database_url,
        "SYNFLOW_DATA_DIR": str(data_dir),
        "SYNFLOW_API_TOKENS": json.dumps([TOKEN]),
    }
    log = data_dir.parent / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", "0"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        lines = log.read_text().splitlines()
        errors = [_exception_line(lines, i) for i, line in enumerate(lines) if line.startswith("Traceback")]
        print(f"  server log: {len(errors)} tracebacks")
        for error in errors[:10]:
            print(f"    {error}")


def _exception_line(lines: list[str], start: int) -> str:
    """The ``ExceptionType: message`` line that ends the traceback starting at ``lines[start]``."""
    for line in lines[start + 1 :]:
        if line and not line.startswith((" ", "\t", "Traceback", "The above", "During handling")):
            return line[:300]
    return "(truncated)"


def server_errors_from_metrics(url: str) -> int:
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).text
    total = 0
    for line in text.splitlines():
        if line.startswith("synflow_http_requests_total{") and 'status="5' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def fuzz(url: str, run_id: str, molecule_ids: list[int], examples: int) -> dict[str, object]:
    schema = schemathesis.openapi.from_url(
        f"{url}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    counter = iter(range(10**9))
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation, mode in [(op, mode) for op in operations for mode in GenerationMode]:
        start, before = time.perf_counter(), sum(statuses.values())

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        def check(case: schemathesis.Case) -> None:
            index = next(counter)
            params = case.path_parameters or {}
            if index % 2 == 0 and "run_id" in params and case.method.upper() != "DELETE":
                params["run_id"] = run_id
            if index % 2 == 0 and "molecule_id" in params:
                params["molecule_id"] = molecule_ids[index % len(molecule_ids)]
            try:
                response = case.call(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
            except Exception as error:  # a request the server did not answer counts as a failure
                statuses[0] += 1
                failures.append(f"no answer {error!r}: {case.as_curl_command()}")
                return
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(f"{response.status_code} {response.text[:200]}: {case.as_curl_command()}")

        try:
            check()
        except Exception as error:  # check() never raises: this is generation (e.g. no negative data)
            print(f"  {operation.label} ({mode.value}): no cases generated: {type(error).__name__}")
        done = sum(statuses.values()) - before
        print(
            f"  {operation.label:45s} {mode.value:8s} {done:5d} cases  {time.perf_counter() - start:6.1f} s"
        )
    return {
        "operations": len(operations),
        "cases": sum(statuses.values()),
        "statuses": statuses,
        "failures": failures,
    }


def run_backend(backend: str, examples: int) -> bool:
    with tempfile.TemporaryDirectory(prefix=f"synflow-fuzz-{backend}-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        postgres = None
        if backend == "sqlite":
            database_url = f"sqlite:///{data_dir / 'synflow.db'}"
        else:
            try:
                postgres = ThrowawayPostgres().start()
            except PostgresUnavailable as error:
                print(f"postgresql: skipped ({error})")
                return True
            database_url = postgres.create_database()
        try:
            upgrade(database_url)
            run_id, ids = seed(database_url)
            print(f"{backend}: fuzzing, {examples} generated cases per operation and mode")
            started = time.perf_counter()
            with serve(database_url, data_dir) as url:
                result = fuzz(url, run_id, ids, examples)
                from_metrics = server_errors_from_metrics(url)
        finally:
            if postgres is not None:
                postgres.stop()
        statuses = dict(sorted(result["statuses"].items()))  # type: ignore[union-attr]
        failures: list[str] = result["failures"]  # type: ignore[assignment]
        print(
            f"{backend}: {result['cases']} cases over {result['operations']} operations in "
            f"{time.perf_counter() - started:.0f} s; statuses {statuses}; "
            f"5xx/unanswered: {len(failures)}; 5xx in the server's metrics: {from_metrics}"
        )
        for failure in failures[:20]:
            print("  FAIL", failure)
        return not failures and from_metrics == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--examples", type=int, default=100, help="cases per operation and mode (valid, invalid)"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    ok = all([run_backend(backend, args.examples) for backend in backends])
    print("fuzz:", "no server errors" if ok else "SERVER ERRORS FOUND")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
