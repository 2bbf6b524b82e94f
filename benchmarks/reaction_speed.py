"""Benchmarks of the chemistry layer: compatibility index build, scaling, reaction throughput.

    .venv/bin/python benchmarks/reaction_speed.py            # full run (~10 min on 2 cores)
    .venv/bin/python benchmarks/reaction_speed.py --quick    # smaller floor sample and scaling points

Reads ../shared/data (zincfrag_10k, the three template sets, zinc250k). Every "bare RDKit" figure is
measured in the same run, on the same molecules, for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from rdkit import Chem, rdBase

from reactions.index import build_compatibility_index
from reactions.library import BuildingBlockLibrary, library_from_smiles, load_building_blocks
from reactions.parallel import default_workers
from reactions.templates import TemplateSet, load_template_set

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared" / "data"
SETS = ["synflownet_hb", "rxnflow_hb_edited", "rxnflow_real"]


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def bare_rdkit_floor(library: BuildingBlockLibrary, templates: TemplateSet, sample: int | None) -> dict:
    """One process, every (block, template slot) pair through HasSubstructMatch, molecules pre-parsed."""
    smiles = library.smiles if sample is None else library.smiles[:sample]
    mols, parse_s = timed(lambda: [Chem.MolFromSmiles(s) for s in smiles])
    patterns = [p for t in templates for p in t.reactant_patterns]
    start = time.perf_counter()
    for pattern in patterns:
        for mol in mols:
            mol.HasSubstructMatch(pattern)
    match_s = time.perf_counter() - start
    scale = len(library) / len(smiles)
    return {"calls": len(patterns) * len(smiles), "parse_s": parse_s * scale, "match_s": match_s * scale,
            "extrapolated_from": None if sample is None else len(smiles)}


def index_figures(library: BuildingBlockLibrary, name: str, floor_sample: int | None) -> dict:
    templates = load_template_set(SHARED / "templates" / f"{name}.txt")
    with tempfile.TemporaryDirectory() as cache:
        cold, cold_s = timed(build_compatibility_index, library, templates, cache_dir=Path(cache))
        cached, cached_s = timed(build_compatibility_index, library, templates, cache_dir=Path(cache))
        assert cached.from_cache and np.array_equal(cached.blocks, cold.blocks)
        serial, serial_s = timed(build_compatibility_index, library, templates, workers=1)
        assert np.array_equal(serial.blocks, cold.blocks)
    counts = [c for t in cold.slot_counts() for c in t]
    bimolecular_counts = [cold.slot_counts()[t.index] for t in templates.bimolecular]
    floor = bare_rdkit_floor(library, templates, floor_sample)
    return {
        "templates": name, "slots": templates.n_slots, "distinct_patterns": cold.meta["distinct_patterns"],
        "cold_s": cold_s, "cold_1_worker_s": serial_s, "cached_s": cached_s,
        "floor_match_s": floor["match_s"], "floor_parse_s": floor["parse_s"], "floor_calls": floor["calls"],
        "floor_extrapolated_from": floor["extrapolated_from"], "screen": cold.meta["screen"],
        "compatible_pairs": cold.n_compatible_pairs, "empty_slots": sum(c == 0 for c in counts),
        "usable_bimolecular": sum(min(c) > 0 for c in bimolecular_counts),
        "median_blocks_per_slot": float(np.median(counts)), "max_blocks_per_slot": max(counts),
    }


def scaling_point(n: int) -> dict:
    """Run in a fresh process: load n zinc250k molecules as a library and index them (synflownet_hb)."""
    with rdBase.BlockLogs():
        import gzip

        with gzip.open(SHARED / "molecules" / "zinc250k.csv.gz", "rt") as handle:
            smiles = [line.strip() for line, _ in zip(handle, range(n + 1), strict=False)][1:]
    templates = load_template_set(SHARED / "templates" / "synflownet_hb.txt")
    library, load_s = timed(library_from_smiles, smiles)
    index, index_s = timed(build_compatibility_index, library, templates, workers=None)
    return {
        "n": len(library), "load_s": load_s, "index_s": index_s, "pairs": index.n_compatible_pairs,
        "parent_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "index_mb": (index.blocks.nbytes + index.offsets.nbytes) / 2**20,
        "library_mb": (library.fingerprints.nbytes + library.descriptors.nbytes) / 2**20,
    }


def scaling(points: list[int]) -> list[dict]:
    results = []
    for n in points:
        command = [sys.executable, __file__, "--scaling-point", str(n)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print(f"  scaling {n}: {results[-1]}", flush=True)
    return results


def bare_run(reaction, reactants) -> list[str]:
    products = set()
    for outcome in reaction.RunReactants(reactants):
        parts = []
        for product in outcome:
            if Chem.SanitizeMol(product, catchErrors=True) != Chem.SanitizeFlags.SANITIZE_NONE:
                break
            parts.append(Chem.MolToSmiles(product))
        else:
            products.add(".".join(parts))
    return sorted(products)


def throughput(library: BuildingBlockLibrary, per_template: int, repeats: int) -> dict:
    templates = load_template_set(SHARED / "templates" / "synflownet_hb.txt")
    index = build_compatibility_index(library, templates)
    rng = random.Random(0)
    mols = {}
    jobs = []
    for template in templates:
        slots = [np.asarray(index.blocks_for(template.index, s)) for s in range(template.arity)]
        if min(len(s) for s in slots) == 0:
            continue
        for _ in range(per_template):
            chosen = [int(rng.choice(s)) for s in slots]
            for block in chosen:
                mols.setdefault(block, Chem.MolFromSmiles(library.smiles[block]))
            jobs.append((template, tuple(mols[b] for b in chosen)))
    ours_best = bare_best = float("inf")
    blocker = rdBase.BlockLogs()  # both sides silent: printing failed sanitisations would dominate
    for _ in range(repeats):
        ours, ours_s = timed(lambda: [t.run(r) for t, r in jobs])
        bare, bare_s = timed(lambda: [bare_run(t.reaction, r) for t, r in jobs])
        ours_best, bare_best = min(ours_best, ours_s), min(bare_best, bare_s)
    del blocker
    assert ours == bare, "the template runner must give exactly what plain RDKit gives"
    n_products = sum(len(p) for p in ours)
    return {"pairs": len(jobs), "products": n_products, "ours_per_s": n_products / ours_best,
            "bare_per_s": n_products / bare_best, "ratio": bare_best / ours_best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller floor sample and scaling points")
    parser.add_argument("--scaling-point", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scaling_point:
        print(json.dumps(scaling_point(args.scaling_point)))
        return
    if not SHARED.is_dir():
        sys.exit(f"reference data not found at {SHARED}")
    print(f"# {date.today()} {platform.machine()} {default_workers()} cores, "
          f"Python {platform.python_version()}, RDKit {rdBase.rdkitVersion}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    library, load_s = timed(load_building_blocks, SHARED / "building_blocks" / "zincfrag_10k.smi.gz")
    print(f"zincfrag_10k library load (standardise + fingerprints + descriptors): {load_s:.2f} s, "
          f"{len(library)} blocks, {len(library.rejected)} rejected", flush=True)
    for name in SETS:
        figures = index_figures(library, name, floor_sample=2000 if args.quick else None)
        print(json.dumps(figures), flush=True)
    figures = throughput(library, per_template=10 if args.quick else 40, repeats=2 if args.quick else 3)
    print("reaction throughput:", json.dumps(figures), flush=True)
    points = [10_000, 25_000] if args.quick else [25_000, 50_000, 100_000, 250_000]
    results = scaling(points)
    n = np.array([r["n"] for r in results], dtype=float)
    for key in ("index_s", "load_s", "parent_peak_mb", "worker_peak_mb"):
        slope, intercept = np.polyfit(n, [r[key] for r in results], 1)
        print(f"extrapolated {key} at 10^6 blocks: {slope * 1e6 + intercept:.1f}", flush=True)
    print(f"# load average at the end {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
