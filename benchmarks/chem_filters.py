"""Chemists' features (issue 18): structural alerts, purchasability, Pareto fronts, assay models.

    .venv/bin/python benchmarks/chem_filters.py alerts       [--quick] [--molecules N]
    .venv/bin/python benchmarks/chem_filters.py purchasable  [--quick]
    .venv/bin/python benchmarks/chem_filters.py pareto       [--quick] [--sizes N ...] [--repeats R]
                                                             [--databases sqlite postgresql]
    .venv/bin/python benchmarks/chem_filters.py assay        [--quick] [--sizes N ...]

Every subcommand prints a markdown table with a reference measured in the same process and the
ratio to it, the machine, and the 1-minute load average before and after; without ``--quick`` it
writes ``benchmarks/results/chem-filters-<subcommand>.json`` (``--out`` chooses another file).
Molecules are drawn with a fixed seed from ``../shared/data/molecules/zinc250k.csv.gz``, read at
run time.

* ``alerts``: CPU ms per molecule of ``AlertScorer`` (the five default catalogues together, then
  each of RDKit's catalogues alone) on parsed molecules, one molecule at a time (``alerts``) and as
  the scorer runs, over the batch (``batch_alerts``); reference: RDKit's QED on the same ones.
* ``purchasable``: the bundled bloom filter (``zinc-instock-mini``): CPU ms per molecule (its key,
  a kekulé canonical SMILES, and the lookup; reference: plain canonical SMILES); false positives on
  molecules certainly not in stock (random hexapeptides) and on random strings (raw keys); the share
  found of ``../shared/data/building_blocks/zincfrag_10k.smi.gz`` (10,000 ZINC22 fragments, every one
  in AiZynthFinder's ZINC stock; molbloom's own in-stock test list is not in its wheel); an uploaded
  catalogue (a .smi file of ZINC molecules): load time per entry and lookup per molecule, by
  InChIKey and by SMILES.
* ``pareto``: a run of n molecules (synthetic rows written by the database itself: uniform random
  ``qed``, ``sa``, ``sim`` scores and a small route, as a run stores them) on SQLite and a throwaway
  PostgreSQL; ``read_front`` (what ``GET /runs/{id}/pareto`` does) over 2 and 3 scores, split into
  the streamed read alone and the front algorithm alone (on the same chunks, in memory); references:
  ``SELECT count(*)`` of the run and a streamed read of its ``reward`` column, same cursor and
  chunking.
* ``assay``: ``fit_assay_model`` (5-fold CV of the random forest and the Tanimoto GP, refit of the
  better) on n ZINC molecules with Crippen logP as the target: wall and CPU seconds, CV RMSE, R²,
  Spearman of both; reference: predicting the mean (RMSE = the values' standard deviation).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import statistics
import string
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import QED, Crippen

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ZINC = SHARED / "molecules" / "zinc250k.csv.gz"
ZINCFRAG = SHARED / "building_blocks" / "zincfrag_10k.smi.gz"
RESULTS = ROOT / "benchmarks" / "results"
# The residues of the hexapeptides (N-terminus to C; the last one gets the acid's OH): every
# random hexapeptide of these is a molecule no vendor stocks, so whatever the filter accepts of
# them is a false positive.
RESIDUES = (
    "NCC(=O)",
    "N[C@@H](C)C(=O)",
    "N[C@@H](CO)C(=O)",
    "N[C@@H](Cc1ccccc1)C(=O)",
    "N[C@@H](CC(=O)O)C(=O)",
    "N[C@@H](CCCCN)C(=O)",
    "N[C@@H](CC(C)C)C(=O)",
    "N1CCC[C@H]1C(=O)",
    "N[C@@H](Cc1ccc(O)cc1)C(=O)",
    "N[C@@H](CCCNC(N)=N)C(=O)",
)
PARETO_SCORES = {2: ("qed", "sa"), 3: ("qed", "sa", "sim")}


# -- shared helpers ------------------------------------------------------------------------------


def zinc_smiles(n: int, seed: int = 0) -> list[str]:
    """``n`` ZINC250k SMILES drawn with ``seed`` (the file: a ``SMILES`` header, one per line)."""
    with gzip.open(ZINC, "rt") as handle:
        next(handle)
        smiles = [line.strip() for line in handle if line.strip()]
    return random.Random(seed).sample(smiles, n)


def machine() -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d"),
        "time_utc": time.strftime("%H:%M:%S", time.gmtime()),
        "node": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "rdkit": Chem.rdBase.rdkitVersion,
    }


def load() -> float:
    return round(os.getloadavg()[0], 2)


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall s, CPU s of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def per_molecule_ms(fn: Callable[[Any], Any], items: list[Any], repeats: int = 3) -> dict[str, float]:
    """Median over ``repeats`` passes of wall and CPU ms per item of ``fn`` applied to each item,
    after one unmeasured pass (RDKit caches ring information on a molecule when first matched)."""
    for item in items:
        fn(item)
    walls, cpus = [], []
    for _ in range(repeats):
        _, wall, cpu = timed(lambda: [fn(item) for item in items])
        walls.append(1000 * wall / len(items))
        cpus.append(1000 * cpu / len(items))
    return {"wall_ms": statistics.median(walls), "cpu_ms": statistics.median(cpus)}


def header(title: str, extra: str) -> str:
    m = machine()
    return (
        f"# {title}: {m['date']} {m['time_utc']} UTC, {m['node']}, {m['cpus']} CPUs, Python {m['python']}, "
        f"RDKit {m['rdkit']}, load average {load():.2f}; {extra}"
    )


# -- alerts --------------------------------------------------------------------------------------


def run_alerts(args: argparse.Namespace) -> dict[str, Any]:
    from synflow.rewards.alerts import ALERT_CATALOGS, DEFAULT_ALERT_CATALOGS, AlertScorer

    n = args.molecules or (200 if args.quick else 2000)
    smiles = zinc_smiles(n)
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    print(header("alerts", f"{n} ZINC molecules, CPU ms per molecule on parsed molecules (median of 3)"))
    load_before = load()
    reference = per_molecule_ms(QED.qed, mols)
    rows: list[dict[str, Any]] = []
    defaults = "five defaults: " + ", ".join(DEFAULT_ALERT_CATALOGS)
    sets: list[tuple[str, tuple[str, ...]]] = [(defaults, DEFAULT_ALERT_CATALOGS)]
    singles = DEFAULT_ALERT_CATALOGS if args.quick else ALERT_CATALOGS
    sets += [(name, (name,)) for name in singles]
    for label, catalogs in sets:
        scorer, build_s, _ = timed(partial(AlertScorer, catalogs))
        cost = per_molecule_ms(scorer.alerts, mols)
        # the scorer's own call: the batch matched catalogue by catalogue (AlertScorer.batch_alerts)
        batch = per_molecule_ms(partial(scorer, smiles=smiles), [mols])
        flagged = sum(bool(scorer.alerts(m)) for m in mols)
        rows.append(
            {
                "catalogues": label,
                **cost,
                "batch_cpu_ms": batch["cpu_ms"] / n,
                "batch_wall_ms": batch["wall_ms"] / n,
                "build_ms": 1000 * build_s,
                "flagged": flagged,
                "flagged_share": flagged / n,
                "cpu_ratio_to_qed": cost["cpu_ms"] / reference["cpu_ms"],
            }
        )
    print(
        f"\nreference, RDKit QED.qed: {reference['cpu_ms']:.3f} CPU ms "
        f"({reference['wall_ms']:.3f} wall) per molecule\n"
    )
    print(
        "| catalogues | CPU ms / molecule, one at a time | wall ms | ÷ QED (CPU) | CPU ms / molecule, "
        "batch (the scorer) | catalogue build ms | molecules flagged |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['catalogues']} | {r['cpu_ms']:.3f} | {r['wall_ms']:.3f} | {r['cpu_ratio_to_qed']:.2f} | "
            f"{r['batch_cpu_ms']:.3f} | {r['build_ms']:.1f} | "
            f"{r['flagged']} ({100 * r['flagged_share']:.1f} %) |"
        )
    return {"molecules": n, "reference_qed": reference, "rows": rows, "load": [load_before, load()]}


# -- purchasable ---------------------------------------------------------------------------------


def hexapeptides(n: int, seed: int = 7) -> list[str]:
    """``n`` distinct random hexapeptides (SMILES), drawn with ``seed``."""
    rng, found = random.Random(seed), set[str]()
    while len(found) < n:
        found.add("".join(rng.choice(RESIDUES) for _ in range(6)) + "O")
    return sorted(found)


def random_strings(n: int, seed: int = 11) -> list[str]:
    """``n`` random 24-character strings: keys no molecule has (no element symbols in lower case
    alone, no ring bonds closed: not canonical SMILES), looked up as they are."""
    rng = random.Random(seed)
    return ["".join(rng.choice(string.ascii_letters + string.digits) for _ in range(24)) for _ in range(n)]


def zincfrag() -> list[str]:
    with gzip.open(ZINCFRAG, "rt") as handle:
        return [line.split()[0] for line in handle if line.strip()]


def run_purchasable(args: argparse.Namespace) -> dict[str, Any]:
    from synflow.rewards.purchasable import BloomCatalogue, SetCatalogue

    n = 200 if args.quick else 2000
    n_peptides, n_strings = (1000, 5000) if args.quick else (20_000, 50_000)
    n_catalogue = 1000 if args.quick else 10_000
    print(header("purchasable", f"{n} ZINC molecules for costs, CPU ms per molecule (median of 3)"))
    load_before = load()
    queries = zinc_smiles(n, seed=0)
    mols = [Chem.MolFromSmiles(s) for s in queries]
    reference = per_molecule_ms(Chem.MolToSmiles, mols)
    bloom, bloom_load_s, _ = timed(lambda: BloomCatalogue("zinc-instock-mini"))
    bloom_cost = per_molecule_ms(bloom.contains, mols)
    zinc_positive = sum(bloom.contains(m) for m in mols)

    peptides = hexapeptides(n_peptides)
    peptide_fp = sum(bloom.contains(Chem.MolFromSmiles(p)) for p in peptides)
    strings = random_strings(n_strings)
    string_fp = sum(s in bloom._filter for s in strings)  # the raw filter: these are keys, not molecules
    fragments = zincfrag()[: 1000 if args.quick else None]
    with rdBase.BlockLogs():
        frag_mols = [m for m in (Chem.MolFromSmiles(s) for s in fragments) if m is not None]
    frag_found = sum(bloom.contains(m) for m in frag_mols)

    catalogue_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # the catalogue: n_catalogue ZINC molecules not among the queries, plus the first half of them
        stock = zinc_smiles(n_catalogue + n, seed=1)
        stock = [s for s in stock if s not in set(queries)][:n_catalogue] + queries[: n // 2]
        path = Path(tmp) / "stock.smi"
        path.write_text("smiles\n" + "\n".join(stock) + "\n")
        for match in ("inchikey", "smiles"):
            catalogue, load_s, load_cpu = timed(partial(SetCatalogue, path, match))
            cost = per_molecule_ms(catalogue.contains, mols)
            found = sum(catalogue.contains(m) for m in mols)
            catalogue_rows.append(
                {
                    "match": match,
                    "entries": len(stock),
                    "load_s": load_s,
                    "load_ms_per_entry": 1000 * load_cpu / len(stock),
                    **cost,
                    "found": found,
                    "expected": n // 2,
                    "cpu_ratio_to_canonical": cost["cpu_ms"] / reference["cpu_ms"],
                }
            )
    result = {
        "molecules": n,
        "reference_canonical_smiles": reference,
        "bloom": {
            "load_s": bloom_load_s,
            **bloom_cost,
            "cpu_ratio_to_canonical": bloom_cost["cpu_ms"] / reference["cpu_ms"],
            "zinc250k_positive": zinc_positive,
            "hexapeptides": n_peptides,
            "hexapeptides_positive": peptide_fp,
            "random_strings": n_strings,
            "random_strings_positive": string_fp,
            "zincfrag": len(frag_mols),
            "zincfrag_found": frag_found,
        },
        "catalogue_file": catalogue_rows,
        "load": [load_before, load()],
    }
    print_purchasable(result)
    return result


def print_purchasable(r: dict[str, Any]) -> None:
    ref, b = r["reference_canonical_smiles"], r["bloom"]
    print(
        f"\nreference, RDKit canonical SMILES of a parsed molecule: {ref['cpu_ms']:.4f} CPU ms "
        f"({ref['wall_ms']:.4f} wall)\n"
    )
    print("| what | CPU ms / molecule | wall ms | ÷ canonical SMILES (CPU) | answer |\n|---|---|---|---|---|")
    print(
        f"| bloom filter zinc-instock-mini (key + lookup; loaded in {1000 * b['load_s']:.0f} ms) | "
        f"{b['cpu_ms']:.4f} | {b['wall_ms']:.4f} | {b['cpu_ratio_to_canonical']:.2f} | "
        f"{b['zinc250k_positive']} of {r['molecules']} ZINC250k molecules test positive |"
    )
    for c in r["catalogue_file"]:
        print(
            f"| uploaded catalogue, {c['entries']:,} entries, match={c['match']} (load {c['load_s']:.1f} s, "
            f"{c['load_ms_per_entry']:.3f} CPU ms per entry) | {c['cpu_ms']:.4f} | {c['wall_ms']:.4f} | "
            f"{c['cpu_ratio_to_canonical']:.2f} | {c['found']} found of {c['expected']} listed |"
        )
    print("\n| bloom filter on | tested | positive | rate |\n|---|---|---|---|")
    for label, total, positive in (
        (
            "random hexapeptides (not in stock: false positives)",
            b["hexapeptides"],
            b["hexapeptides_positive"],
        ),
        (
            "random 24-character strings as keys (false positives)",
            b["random_strings"],
            b["random_strings_positive"],
        ),
        ("zincfrag_10k, ZINC22 fragments in stock (found)", b["zincfrag"], b["zincfrag_found"]),
    ):
        print(f"| {label} | {total:,} | {positive:,} | {100 * positive / total:.2f} % |")


# -- pareto --------------------------------------------------------------------------------------


def fill_run(db: Any, n: int) -> str:
    """A run with ``n`` molecules generated by the database itself (no Python per row): uniform
    random scores qed / sa / sa_raw / sim and reward, placeholder SMILES, a one-step route."""
    from sqlalchemy import text

    from app.core.models import Run

    with db.session() as session:
        run = Run(config={}, total_steps=0, status="succeeded")
        session.add(run)
        session.flush()
        run_id = run.id
    columns = "run_id, smiles, inchikey, reward, scores, route, step, last_step, first_seen, times_sampled"
    if db.dialect == "sqlite":
        u = "(abs(random()) % 1000000000) / 1e9"
        sql = (
            f"WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < :n) "
            f"INSERT INTO molecules ({columns}) SELECT :run, 'mol-' || i, NULL, {u}, "
            f"json_object('qed', {u}, 'sa', {u}, 'sa_raw', 1 + 9 * {u}, 'sim', {u}), "
            f"json_object('steps', json_array(json_object('action', 'start', 'product', 'mol-' || i))), "
            f"i / 1000, i / 1000, '2026-12-01 00:00:00.000000', 1 FROM c"
        )
    else:
        sql = (
            f"INSERT INTO molecules ({columns}) SELECT :run, 'mol-' || i, NULL, random(), "
            f"jsonb_build_object('qed', random(), 'sa', random(), 'sa_raw', 1 + 9 * random(), "
            f"'sim', random()), "
            f"jsonb_build_object('steps', jsonb_build_array(jsonb_build_object('action', 'start', "
            f"'product', 'mol-' || i))), i / 1000, i / 1000, now(), 1 FROM generate_series(0, :n - 1) AS i"
        )
    with db.session() as session:
        session.execute(text(sql), {"run": run_id, "n": n})
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE molecules")
            conn.commit()
    return run_id


def reference_queries(session: Any, run_id: str, chunk_rows: int) -> dict[str, float]:
    """Seconds of ``SELECT count(*)`` of the run and of streaming its reward column (same cursor
    kind and chunking as the front's read)."""
    import uuid

    dialect = session.get_bind().dialect.name
    dbapi = session.connection().connection.driver_connection
    mark = "?" if dialect == "sqlite" else "%s"
    start = time.perf_counter()
    cursor = dbapi.cursor()
    cursor.execute(f"SELECT count(*) FROM molecules WHERE run_id = {mark}", [run_id])
    count = cursor.fetchone()[0]
    cursor.close()
    count_s = time.perf_counter() - start
    start = time.perf_counter()
    cursor = dbapi.cursor() if dialect == "sqlite" else dbapi.cursor(name=f"ref_{uuid.uuid4().hex}")
    cursor.execute(f"SELECT id, reward FROM molecules WHERE run_id = {mark}", [run_id])
    rows = 0
    while chunk := cursor.fetchmany(chunk_rows):
        np.array(list(zip(*chunk, strict=True))[1], np.float64)
        rows += len(chunk)
    cursor.close()
    assert rows == count
    return {"count_s": count_s, "reward_read_s": time.perf_counter() - start, "rows": rows}


def front_timings(session: Any, run_id: str, names: tuple[str, ...]) -> dict[str, Any]:
    """read_front end to end (sample 1,000, as the page asks), the streamed read alone, and the
    front algorithm alone on the chunks that read gave (in memory)."""
    from app.runs.fronts import CHUNK_ROWS, _chunks, read_front
    from app.runs.pareto import FrontAccumulator

    front, total_s, total_cpu = timed(lambda: read_front(session, run_id, names, sample=1000))

    def read_all() -> list[tuple[np.ndarray, np.ndarray]]:
        with closing(_chunks(session, run_id, names, CHUNK_ROWS)) as chunks:
            return list(chunks)

    chunks, read_s, read_cpu = timed(read_all)

    def algorithm() -> int:
        acc = FrontAccumulator(len(names), min_prune=2 * CHUNK_ROWS)
        for ids, values in chunks:
            keep = np.isfinite(values).all(axis=1)
            acc.add(ids[keep], values[keep])
        return len(acc.result()[0])

    size, algo_s, algo_cpu = timed(algorithm)
    assert size == len(front.ids), (size, len(front.ids))
    return {
        "front_size": size,
        "considered": front.considered,
        "total_s": total_s,
        "total_cpu_s": total_cpu,
        "read_s": read_s,
        "read_cpu_s": read_cpu,
        "algorithm_s": algo_s,
        "algorithm_cpu_s": algo_cpu,
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median of the runs' floats (the first run's value for anything else)."""
    return {
        k: statistics.median(r[k] for r in runs) if isinstance(v, float) else v for k, v in runs[0].items()
    }


def pareto_one(url: str, n: int, repeats: int) -> dict[str, Any]:
    from app.core.db import Database
    from app.core.migrate import upgrade
    from app.runs.fronts import CHUNK_ROWS

    upgrade(url)
    db = Database(url)
    try:
        run_id, fill_s, _ = timed(lambda: fill_run(db, n))
        out: dict[str, Any] = {"molecules": n, "fill_s": fill_s, "load_before": load()}
        with db.session() as session:
            reference_queries(session, run_id, CHUNK_ROWS)  # warm the page cache once
            out["reference"] = median_of(
                [reference_queries(session, run_id, CHUNK_ROWS) for _ in range(repeats)]
            )
            for k, names in PARETO_SCORES.items():
                out[f"{k} scores"] = median_of(
                    [front_timings(session, run_id, names) for _ in range(repeats)]
                )
        out["load_after"] = load()
        return out
    finally:
        db.dispose()


def run_pareto(args: argparse.Namespace) -> dict[str, Any]:
    sizes = args.sizes or ([10_000] if args.quick else [100_000, 1_000_000])
    repeats = 1 if args.quick else args.repeats
    print(header("pareto", f"sizes {sizes}, median of {repeats} after one warm-up read"))
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in args.databases:
            results["SQLite"] = []
            for n in sizes:
                results["SQLite"].append(pareto_one(f"sqlite:///{Path(tmp) / f'pareto-{n}.db'}", n, repeats))
                print_pareto({"SQLite": results["SQLite"][-1:]})
        if "postgresql" in args.databases:
            from devsupport.postgres import PostgresUnavailable, ThrowawayPostgres

            try:
                with ThrowawayPostgres() as pg:
                    results["PostgreSQL"] = []
                    for n in sizes:
                        results["PostgreSQL"].append(pareto_one(pg.create_database(), n, repeats))
                        print_pareto({"PostgreSQL": results["PostgreSQL"][-1:]})
            except PostgresUnavailable as error:
                print(f"PostgreSQL skipped: {error}")
    print()
    print_pareto(results)
    return {"sizes": sizes, "repeats": repeats, "databases": results}


def print_pareto(results: dict[str, list[dict[str, Any]]]) -> None:
    print(
        "| database | molecules | load before/after | query | wall s | CPU s (this process) | "
        "÷ count(*) | ÷ reward read | front size |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        for r in runs:
            ref = r["reference"]
            first = f"| {name} | {r['molecules']:,} | {r['load_before']:.2f} / {r['load_after']:.2f} "
            print(f"{first}| reference: SELECT count(*) | {ref['count_s']:.3f} | | 1 | | |")
            print(
                f"| | | | reference: read id, reward | {ref['reward_read_s']:.3f} | | "
                f"{ref['reward_read_s'] / ref['count_s']:.1f} | 1 | |"
            )
            for k in PARETO_SCORES:
                t = r[f"{k} scores"]
                for label, key in (
                    ("read_front", "total"),
                    ("  read alone", "read"),
                    ("  algorithm alone", "algorithm"),
                ):
                    wall = t[f"{key}_s"]
                    print(
                        f"| | | | {k} scores: {label} | {wall:.3f} | {t[f'{key}_cpu_s']:.3f} | "
                        f"{wall / ref['count_s']:.1f} | {wall / ref['reward_read_s']:.2f} | "
                        f"{t['front_size'] if key == 'total' else ''} |"
                    )


# -- assay ---------------------------------------------------------------------------------------


def run_assay(args: argparse.Namespace) -> dict[str, Any]:
    from synflow.rewards.assay import collect_assay_data, fit_assay_model

    sizes = args.sizes or ([60] if args.quick else [500, 2000])
    print(header("assay", f"Crippen logP of ZINC molecules (seed 0), sizes {sizes}"))
    rows = []
    for n in sizes:
        smiles = zinc_smiles(n)
        logp = Crippen.MolLogP  # type: ignore[attr-defined]
        values = [logp(Chem.MolFromSmiles(s)) for s in smiles]
        data = collect_assay_data(
            (i + 2, s, repr(v)) for i, (s, v) in enumerate(zip(smiles, values, strict=True))
        )
        load_before = load()
        model, wall, cpu = timed(partial(fit_assay_model, data, "higher", seed=0))
        report = model.report
        rows.append(
            {
                "molecules": len(data.smiles),
                "folds": report["folds"],
                "chosen": report["chosen"],
                "fit_wall_s": wall,
                "fit_cpu_s": cpu,
                "cv": report["cv"],
                "mean_predictor_rmse": float(np.std(data.values)),
                "load": [load_before, load()],
            }
        )
    print(
        "\n| molecules | fit wall s | fit CPU s | load before/after | estimator | CV RMSE | "
        "÷ mean predictor | R² | Spearman | chosen |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for i, (name, m) in enumerate(r["cv"].items()):
            lead = (
                f"| {r['molecules']:,} | {r['fit_wall_s']:.1f} | {r['fit_cpu_s']:.1f} | "
                f"{r['load'][0]:.2f} / {r['load'][1]:.2f} "
                if i == 0
                else "| | | | "
            )
            print(
                f"{lead}| {name} | {m['rmse']:.3f} | {m['rmse'] / r['mean_predictor_rmse']:.2f} | "
                f"{m['r2']:.3f} | "
                f"{m['spearman']:.3f} | {'yes' if name == r['chosen'] else ''} |"
            )
        print(f"| | | | | mean of the values (reference) | {r['mean_predictor_rmse']:.3f} | 1 | 0 | | |")
    return {"rows": rows}


# -- main ----------------------------------------------------------------------------------------

COMMANDS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "alerts": run_alerts,
    "purchasable": run_purchasable,
    "pareto": run_pareto,
    "assay": run_assay,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        p = sub.add_parser(name)
        p.add_argument("--quick", action="store_true", help="a small size, for a smoke test")
        p.add_argument(
            "--out",
            type=Path,
            help=f"JSON result (default without --quick: benchmarks/results/chem-filters-{name}.json)",
        )
        if name == "alerts":
            p.add_argument("--molecules", type=int)
        if name in ("pareto", "assay"):
            p.add_argument("--sizes", type=int, nargs="+")
        if name == "pareto":
            p.add_argument("--repeats", type=int, default=3)
            p.add_argument(
                "--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"]
            )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    result = {
        "command": args.command,
        "quick": args.quick,
        "machine": machine(),
        **COMMANDS[args.command](args),
    }
    out = args.out or (None if args.quick else RESULTS / f"chem-filters-{args.command}.json")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nwritten {out}")
    return result


if __name__ == "__main__":
    main()
