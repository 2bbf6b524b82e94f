"""Service benchmark: one run with 10^6 molecules (ZINC250k SMILES and simple variants) on SQLite
and PostgreSQL; bulk upsert rate, then p50/p95 latency through the REST API (in-process ASGI) of
the first and the 100th page sorted by reward, a reward-range filter, a SMARTS search and
similarity searches (first page, sorted by reward) at two thresholds.

    .venv/bin/python benchmarks/service.py [--molecules N] [--repeats R] [--databases sqlite postgresql]

Rows carry reward, two scores and a small route; InChIKeys and fingerprints are not computed in the
measured write (the trainer computes them once per molecule and sends them with the records).

Each similarity search also runs on a copy of the run whose rows have no stored fingerprint (as a
version before migration 0004 wrote them): there every row passed over is parsed and fingerprinted
by RDKit, as every similarity search did before fingerprints were stored (the "row by row" line;
the ratio is its time over the stored-fingerprint time, in the same process).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from app.chem.filters import ChemCache
from app.core.db import Database
from app.core.migrate import upgrade
from app.core.models import Run
from app.core.settings import Settings
from app.main import create_app
from app.runs.store import write_molecules
from devsupport.postgres import ThrowawayPostgres
from reactions.similarity import ecfp4_generator, packed_ecfp4_bytes
from reactions.smiles import inchikey
from synflow.callbacks import SampledMolecule

ZINC = Path(__file__).resolve().parents[2] / "shared" / "data" / "molecules" / "zinc250k.csv.gz"
BATCH = 10_000


def zinc_smiles(path: Path) -> list[str]:
    with gzip.open(path, "rt") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        column = next(i for i, name in enumerate(header) if name.strip().lower() == "smiles")
        return [row[column].strip() for row in reader if row]


def molecules(smiles: list[str], n: int, seed: int = 0) -> Iterator[SampledMolecule]:
    """Unique strings: each ZINC SMILES, then with 1, 2, ... methyl carbons prefixed; each with its
    InChIKey and fingerprint, as the trainer sends them (computed once per molecule where it is first
    sampled)."""
    rng = random.Random(seed)
    generator = ecfp4_generator()
    for i in range(n):
        base = smiles[i % len(smiles)]
        text = "C" * (i // len(smiles)) + base
        route = {"steps": [{"action": "start", "product": text}]}
        scores = {"qed": rng.random(), "sa": rng.random()}
        yield SampledMolecule(
            text,
            rng.random(),
            i // 1000,
            scores,
            route,
            inchikey=inchikey(text),
            fingerprint=packed_ecfp4_bytes(text, generator),
        )


def fill(db: Database, run_id: str, records: Iterator[SampledMolecule]) -> tuple[int, float, float]:
    """Rows written, and the wall and CPU seconds of the writes alone (making the records is the
    worker's work, not the store's: excluded)."""
    count, wall, cpu, batch = 0, 0.0, 0.0, []

    def write() -> None:
        nonlocal count, wall, cpu
        start, cpu0 = time.perf_counter(), time.process_time()
        count += _write(db, run_id, batch)
        wall += time.perf_counter() - start
        cpu += time.process_time() - cpu0

    for record in records:
        batch.append(record)
        if len(batch) == BATCH:
            write()
            batch = []
    if batch:
        write()
    return count, wall, cpu


def _write(db: Database, run_id: str, batch: list[SampledMolecule]) -> int:
    with db.session() as session:
        return write_molecules(session, run_id, batch)


def percentiles(fn: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """(cold, p50, p95) in ms; cold is the first call (no query cache warm yet)."""
    start = time.perf_counter()
    fn()
    cold = (time.perf_counter() - start) * 1000
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return cold, statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def cursor_of_page(client: TestClient, url: str, page: int, limit: int) -> str:
    cursor = None
    for _ in range(page - 1):
        cursor = client.get(url, params={"limit": limit, **({"cursor": cursor} if cursor else {})}).json()[
            "next_cursor"
        ]
    assert cursor is not None
    return cursor


def measure(client: TestClient, run_id: str, repeats: int) -> dict[str, tuple[float, float, float]]:
    url = f"/api/v1/runs/{run_id}/molecules"
    c100 = cursor_of_page(client, url, 100, 50)

    def get(**params: object) -> Callable[[], object]:
        def call() -> object:
            answer = client.get(url, params=params)
            assert answer.status_code == 200, answer.text
            assert answer.json()["items"], params
            return answer

        return call

    return {
        "first page, sort=-reward, limit=50": percentiles(get(limit=50), repeats),
        "100th page, sort=-reward, limit=50": percentiles(get(limit=50, cursor=c100), repeats),
        "reward range 0.50-0.51, limit=50": percentiles(
            get(limit=50, reward_min=0.5, reward_max=0.51), repeats
        ),
        "SMARTS c1ccccc1C(=O)N[CH2] first page, limit=50": percentiles(
            get(limit=50, smarts="c1ccccc1C(=O)N[CH2]"), max(5, repeats // 5)
        ),
    }


SIMILARITY_THRESHOLDS = (0.4, 0.7)


def legacy_copy(db: Database, run_id: str) -> str:
    """A second run with the same rows and no stored fingerprints, as written before migration 0004."""
    columns = "smiles, inchikey, reward, scores, route, step, last_step, first_seen, times_sampled, error"
    with db.session() as session:
        legacy = Run(config={}, total_steps=0, status="succeeded")
        session.add(legacy)
        session.flush()
        session.execute(
            text(
                f"INSERT INTO molecules (run_id, {columns}) SELECT :legacy, {columns} "
                "FROM molecules WHERE run_id = :run"
            ),
            {"legacy": legacy.id, "run": run_id},
        )
        return legacy.id


def measure_similarity(
    client: TestClient, run_id: str, legacy_id: str, query: str, repeats: int
) -> dict[str, tuple[float, float, float]]:
    """First pages of similarity searches sorted by reward, from stored fingerprints and row by row
    (the legacy copy); each timing starts with an empty chemistry cache (cold), then repeats (warm)."""
    out: dict[str, tuple[float, float, float]] = {}
    for threshold in SIMILARITY_THRESHOLDS:
        params = {"limit": 50, "similar_to": query, "min_similarity": threshold}
        timings, pages = {}, {}
        for name, rid, times in (("stored", run_id, repeats), ("legacy", legacy_id, max(2, repeats // 10))):
            url = f"/api/v1/runs/{rid}/molecules"
            client.app.state.chem_cache = ChemCache()  # type: ignore[attr-defined]
            timings[name] = percentiles(lambda url=url, params=params: client.get(url, params=params), times)
            pages[name] = client.get(url, params=params).json()
        stored, legacy = pages["stored"], pages["legacy"]
        found = [(m["smiles"], m["similarity"]) for m in stored["items"]]
        assert found == [(m["smiles"], m["similarity"]) for m in legacy["items"]], "the two paths differ"
        assert stored["scanned"] == legacy["scanned"]
        label = (
            f"similarity >= {threshold}, first page by reward, limit=50: {len(found)} hits, "
            f"{stored['scanned']:,} rows passed over"
        )
        ratio = [old / new for old, new in zip(timings["legacy"], timings["stored"], strict=True)]
        out[f"{label}, stored fingerprints"] = timings["stored"]
        out[f"same, row by row (no stored fingerprint): x{ratio[0]:.0f} cold, x{ratio[1]:.0f} p50"] = timings[
            "legacy"
        ]
    return out


def server_cpu_seconds(pg: ThrowawayPostgres | None) -> float:
    """CPU seconds of a local PostgreSQL: the postmaster, its reaped and its live children (Linux)."""
    if pg is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    postmaster = (pg.data / "postmaster.pid").read_text().split()[0]
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = stat.parent.name, fields[1]
        if pid == postmaster:
            total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        elif ppid == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def run_one(
    url: str, data_dir: Path, n: int, smiles: list[str], repeats: int, pg: ThrowawayPostgres | None = None
) -> dict[str, object]:
    upgrade(url)
    settings = Settings(database_url=url, data_dir=data_dir)
    db = Database.from_settings(settings)
    with db.session() as session:
        run = Run(config={}, total_steps=0, status="succeeded")
        session.add(run)
        session.flush()
        run_id = run.id
    load_before = os.getloadavg()[0]
    server_before = server_cpu_seconds(pg)
    count, seconds, cpu = fill(db, run_id, molecules(smiles, n))
    cpu += server_cpu_seconds(pg) - server_before
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE molecules")
            conn.commit()
    legacy_id = legacy_copy(db, run_id)
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE molecules")
            conn.commit()
    with TestClient(create_app(settings, db)) as client:
        latencies = measure(client, run_id, repeats)
        latencies |= measure_similarity(client, run_id, legacy_id, smiles[0], repeats)
    db.dispose()
    return {
        "rows": count,
        "insert_per_s": count / seconds,
        "insert_per_cpu_s": count / cpu,
        "insert_s": seconds,
        "load": (load_before, os.getloadavg()[0]),
        "latency": latencies,
    }


def report(results: dict[str, dict[str, object]], args: argparse.Namespace) -> str:
    lines = [
        f"`.venv/bin/python benchmarks/service.py --molecules {args.molecules} --repeats {args.repeats}` — "
        f"{platform.node()}, {platform.machine()}, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs",
        "",
        "| database | bulk upsert, molecules/s: wall (per CPU-second, client + server) | 1-min load "
        "before/after | query | cold ms | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        for i, (query, (cold, p50, p95)) in enumerate(result["latency"].items()):  # type: ignore[union-attr]
            rate = load = ""
            if i == 0:
                rate = (
                    f"{result['insert_per_s']:,.0f} ({result['insert_per_cpu_s']:,.0f}), "
                    f"{result['rows']:,} rows"
                )
                load = "{:.1f} / {:.1f}".format(*result["load"])  # type: ignore[str-format]
            label = name if i == 0 else ""
            lines.append(f"| {label} | {rate} | {load} | {query} | {cold:.1f} | {p50:.1f} | {p95:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--molecules", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    smiles = zinc_smiles(ZINC)
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in args.databases:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            results["SQLite"] = run_one(url, Path(tmp), args.molecules, smiles, args.repeats)
            print(report(results, args), flush=True)
        if "postgresql" in args.databases:
            with ThrowawayPostgres() as pg:
                results["PostgreSQL 15"] = run_one(
                    pg.create_database(), Path(tmp), args.molecules, smiles, args.repeats, pg
                )
    print()
    print(report(results, args))


if __name__ == "__main__":
    main()
