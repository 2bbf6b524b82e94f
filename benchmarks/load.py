"""Load: N concurrent clients browse and export against a real ``synflow serve`` while a run writes.

    .venv/bin/python benchmarks/load.py                       # 50 clients, 60 s, SQLite
    .venv/bin/python benchmarks/load.py --backend postgresql  # a throwaway PostgreSQL 15

The database is seeded with a finished run of ``--molecules`` molecules (what the clients browse);
then a real training run on a tiny config is started and its embedded worker writes molecules and
metrics the whole time. Each client loops over a weighted mix: a molecule list page (keyset paging),
a molecule page (the HTML page, then the API call its script makes), substructure and similarity
search, the live run's newest molecules, and a full CSV export. Prints a zero-error check,
requests/s and p50/p95/p99 latency per endpoint, and writes them as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "CCN(CC)CC", "c1ccncc1", "c1ccc(Cl)cc1", "CC(C)Cc1ccccc1"]
ENDS = ["", "O", "N", "F", "Cl", "C(=O)O", "C#N", "OC", "S", "Br"]


def drug_like(i: int) -> str:
    """The i-th of ~5,600 distinct small molecules (7 cores x 8 linkers x 10 end groups x 10 tails),
    8 to 30 heavy atoms like generated molecules, not ever longer chains."""
    core, linker = SMILES[i % 7], "C" * ((i // 7) % 8)
    end, tail = ENDS[(i // 56) % 10], "C" * ((i // 560) % 10)
    return f"{tail}{core}{linker}{end}"


WRITER_RUN = {
    "name": "load-writer",
    "reward": {"components": [{"type": "qed"}]},
    "environment": {"max_reactions": 2},
    "model": {"hidden": 32, "layers": 1, "block_hidden": 32},
    "training": {"steps": 100_000, "batch_size": 8, "checkpoint_every": 50, "log_every": 1, "seed": 1},
}
# (name, weight): the mix a browsing chemist produces, exports being rare and heavy.
MIX = [
    ("molecule list page", 30),
    ("molecule page (HTML)", 20),
    ("molecule detail (API)", 20),
    ("search: substructure", 8),
    ("search: similarity", 8),
    ("live run molecules", 10),
    ("export csv", 4),
]


@dataclass
class Target:
    base_url: str
    run_id: str
    molecule_ids: list[int]
    live_run_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @property
    def error_count(self) -> int:
        return sum(len(v) for v in self.errors.values())

    def summary(self) -> dict[str, Any]:
        rows = {}
        for name, values in sorted(self.latencies.items()):
            ordered = sorted(values)
            rows[name] = {
                "requests": len(values),
                "errors": len(self.errors.get(name, [])),
                "rps": round(len(values) / self.seconds, 1),
                "p50_ms": round(_pct(ordered, 50) * 1000, 1),
                "p95_ms": round(_pct(ordered, 95) * 1000, 1),
                "p99_ms": round(_pct(ordered, 99) * 1000, 1),
                "mean_ms": round(statistics.fmean(values) * 1000, 1),
            }
        return {
            "requests": self.requests,
            "errors": self.error_count,
            "seconds": round(self.seconds, 1),
            "rps": round(self.requests / self.seconds, 1),
            "endpoints": rows,
            "error_samples": {k: v[:3] for k, v in self.errors.items()},
        }


def _pct(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def _request(
    client: httpx.AsyncClient, name: str, method: str, url: str, results: Results, **kwargs: Any
) -> httpx.Response | None:
    start = time.perf_counter()
    try:
        if name == "export csv":  # streamed: time to the last byte
            async with client.stream(method, url, **kwargs) as response:
                async for _ in response.aiter_bytes():
                    pass
        else:
            response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as error:
        results.latencies[name].append(time.perf_counter() - start)
        results.errors[name].append(f"{type(error).__name__}: {error}")
        return None
    results.latencies[name].append(time.perf_counter() - start)
    if response.status_code != 200:
        results.errors[name].append(f"{response.status_code} {url}")
        return None
    return response


async def _client_loop(
    client: httpx.AsyncClient,
    target: Target,
    results: Results,
    deadline: float,
    rng: random.Random,
    think: float = 0.0,
) -> None:
    """One client: requests back to back (``think`` = 0, a saturation test), or with exponentially
    distributed pauses of mean ``think`` seconds between them, as a person browsing does."""
    names, weights = zip(*MIX, strict=True)
    cursor: str | None = None
    molecules = f"/api/v1/runs/{target.run_id}/molecules"
    while time.monotonic() < deadline:
        if think > 0:
            await asyncio.sleep(min(rng.expovariate(1.0 / think), max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                break
        name = rng.choices(names, weights)[0]
        mol_id = rng.choice(target.molecule_ids)
        if name == "molecule list page":
            params = {"sort": rng.choice(["-reward", "step", "-qed"]), "limit": 50}
            response = await _request(
                client,
                name,
                "GET",
                molecules,
                results,
                params={**params, **({"cursor": cursor} if cursor else {})},
            )
            cursor = response.json()["next_cursor"] if response is not None and rng.random() < 0.7 else None
        elif name == "molecule page (HTML)":
            await _request(client, name, "GET", f"/molecules/{mol_id}", results)
        elif name == "molecule detail (API)":
            await _request(client, name, "GET", f"/api/v1/molecules/{mol_id}", results)
        elif name == "search: substructure":
            smarts = rng.choice(["c1ccccc1", "[OX2H]", "C(=O)N", "[#7]"])
            await _request(client, name, "GET", molecules, results, params={"smarts": smarts, "limit": 20})
        elif name == "search: similarity":
            await _request(
                client,
                name,
                "GET",
                molecules,
                results,
                params={"similar_to": rng.choice(SMILES), "min_similarity": 0.3, "limit": 20},
            )
        elif name == "live run molecules" and target.live_run_id:
            await _request(
                client,
                name,
                "GET",
                f"/api/v1/runs/{target.live_run_id}/molecules",
                results,
                params={"sort": "-step", "limit": 20},
            )
        elif name == "export csv":
            await _request(
                client, name, "GET", f"/api/v1/runs/{target.run_id}/export", results, params={"format": "csv"}
            )


async def drive(target: Target, clients: int, seconds: float, seed: int = 0, think: float = 0.0) -> Results:
    """``clients`` concurrent loops for ``seconds``; each has its own connection."""
    results = Results()
    deadline = time.monotonic() + seconds
    start = time.perf_counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=target.base_url, timeout=60, limits=limits, headers=target.headers
    ) as client:
        await asyncio.gather(
            *[
                _client_loop(client, target, results, deadline, random.Random(seed * 1000 + i), think)
                for i in range(clients)
            ]
        )
    results.seconds = time.perf_counter() - start
    return results


# -- the standalone benchmark: database, seed, server, writer run ---------------------------------


def seed_database(url: str, molecules: int) -> tuple[str, list[int]]:
    from sqlalchemy import select

    from app.core.db import Database
    from app.core.models import Molecule, Run
    from app.runs.store import write_molecules
    from synflow.callbacks import SampledMolecule

    db = Database(url)
    with db.session() as session:
        run = Run(
            config={"reward": {"components": [{"type": "qed"}]}},
            total_steps=1,
            status="succeeded",
            name="browsed",
        )
        session.add(run)
        session.flush()
        run_id = run.id
    rng = random.Random(0)
    for start in range(0, molecules, 1000):
        records = [
            SampledMolecule(
                drug_like(i),
                reward=rng.random(),
                step=i,
                scores={"qed": rng.random(), "sa": rng.random()},
                route={"steps": [{"action": "start", "product": SMILES[i % len(SMILES)]}]},
            )
            for i in range(start, min(molecules, start + 1000))
        ]
        with db.session() as session:
            write_molecules(session, run_id, records)
    with db.session() as session:
        ids = list(session.scalars(select(Molecule.id).where(Molecule.run_id == run_id)))
    db.dispose()
    return run_id, ids


@contextmanager
def database(backend: str, data_dir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{data_dir / 'synflow.db'}"
        return
    from devsupport.postgres import ThrowawayPostgres

    with ThrowawayPostgres() as postgres:
        yield postgres.create_database()


@contextmanager
def serve(database_url: str, data_dir: Path, workers: int, api_workers: int | None = None) -> Iterator[str]:
    from devsupport.postgres import free_port

    port = free_port()
    env = {
        **os.environ,
        "SYNFLOW_DATABASE_URL": database_url,
        "SYNFLOW_DATA_DIR": str(data_dir),
        "SYNFLOW_WORKER_POLL_SECONDS": "0.2",
    }
    log = Path(tempfile.gettempdir()) / f"synflow-load-server-{port}.log"  # kept for inspection
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", str(workers)]
        + ([] if api_workers is None else ["--api-workers", str(api_workers)]),
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
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
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        errors = [
            line for line in log.read_text().splitlines() if line and line[0].isalpha() and "Error" in line
        ]
        print(f"server log {log}: {len(errors)} error lines" + "".join(f"\n  {e[:300]}" for e in errors[:8]))


def _wait_writing(client: httpx.Client, run_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get(f"/api/v1/runs/{run_id}")
        if answer.status_code != 200:
            raise SystemExit(f"GET /api/v1/runs/{run_id}: {answer.status_code} {answer.text[:300]}")
        run = answer.json()
        if run["status"] in ("failed", "succeeded", "cancelled"):
            raise SystemExit(f"writer run ended before the load began: {run['status']} {run['error']}")
        if run["status"] == "running" and run.get("molecules"):
            return run
        time.sleep(0.5)
    raise SystemExit("writer run did not start writing in time")


def print_table(summary: dict[str, Any]) -> None:
    print(
        f"{'endpoint':26s} {'requests':>8s} {'errors':>6s} {'req/s':>7s} {'p50 ms':>8s} {'p95 ms':>8s} "
        f"{'p99 ms':>8s}"
    )
    for name, row in summary["endpoints"].items():
        print(
            f"{name:26s} {row['requests']:8d} {row['errors']:6d} {row['rps']:7.1f} {row['p50_ms']:8.1f} "
            f"{row['p95_ms']:8.1f} {row['p99_ms']:8.1f}"
        )
    print(f"{'all':26s} {summary['requests']:8d} {summary['errors']:6d} {summary['rps']:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--molecules", type=int, default=5000, help="molecules in the browsed run")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument(
        "--api-workers", type=int, default=None, help="API processes (default: synflow serve's, one per core)"
    )
    parser.add_argument("--no-writer", action="store_true", help="no training run meanwhile (a baseline)")
    parser.add_argument(
        "--think", type=float, default=0.0, help="mean pause (s) between a client's requests; 0 = saturation"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="synflow-load-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        with database(args.backend, data_dir) as url:
            from app.core.migrate import upgrade

            upgrade(url)
            run_id, ids = seed_database(url, args.molecules)
            with (
                serve(url, data_dir, 0 if args.no_writer else 1, args.api_workers) as base_url,
                httpx.Client(base_url=base_url, timeout=60) as c,
            ):
                live = c.post("/api/v1/runs", json=WRITER_RUN).json()["id"]
                before = c.get(f"/api/v1/runs/{live}").json() if args.no_writer else _wait_writing(c, live)
                load_before = os.getloadavg()
                results = asyncio.run(
                    drive(Target(base_url, run_id, ids, live), args.clients, args.seconds, think=args.think)
                )
                load_after = os.getloadavg()
                after = c.get(f"/api/v1/runs/{live}").json()
                c.post(f"/api/v1/runs/{live}/cancel")
    summary = results.summary()
    summary.update(
        backend=args.backend,
        clients=args.clients,
        think_seconds=args.think,
        browsed_molecules=args.molecules,
        writer={
            "status_after": after["status"],
            "steps_during_load": after["progress"]["step"] - before["progress"]["step"],
            "molecules_written_during_load": (after["molecules"] or 0) - (before["molecules"] or 0),
        },
        loadavg_before=[round(x, 2) for x in load_before],
        loadavg_after=[round(x, 2) for x in load_after],
        cpus=os.cpu_count(),
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    print(
        f"{args.backend}: {args.clients} clients for {args.seconds:.0f} s; writer run wrote "
        f"{summary['writer']['molecules_written_during_load']} molecules over "
        f"{summary['writer']['steps_during_load']} steps meanwhile"
    )
    print_table(summary)
    print(
        f"load average before {summary['loadavg_before']}, after {summary['loadavg_after']} "
        f"({summary['cpus']} CPUs)"
    )
    print("zero errors: " + ("yes" if summary["errors"] == 0 else f"NO ({summary['errors']})"))
    for name, samples in summary["error_samples"].items():
        print(f"  {name}: {samples}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    sys.exit(0 if summary["errors"] == 0 else 1)


if __name__ == "__main__":
    main()
