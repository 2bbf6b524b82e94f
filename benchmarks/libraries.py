"""How well do building-block libraries reach the PMO targets? Size, template-slot coverage, and
closeness to every PMO target molecule, for the bundled library and larger ones.

    .venv/bin/python benchmarks/libraries.py      # bundled, zincfrag_10k, artifacts/libraries/*
    .venv/bin/python benchmarks/libraries.py --library mine=path/to/blocks.smi.gz --reactions 5000

Per library: blocks, start blocks (blocks that fit some usable template slot), the time to load it
(standardise and fingerprint, one process) and to build its compatibility index against the default
templates (one process, no cache); per template slot, the number of partner blocks (blocks that fit
the template's other slot): slots with none and the median; blocks that are a PMO target or an
analogue of one (ECFP4 Tanimoto >= 0.7). Reach, per target in synflow.rewards.pmo.PMO_TARGETS: the
best ECFP4 Tanimoto (Morgan radius 2, 2048 bits) of a single block and the number of blocks at 0.4
or more; then one reaction step: the `--top-blocks` blocks most similar to the target, each with
every template slot it fits (unimolecular ones alone, bimolecular ones with every compatible
partner), the (block, partner) pairs ranked by the sum of their similarities to the target, and the
best `--reactions` distinct reactions run (the cap is reported). A cheap lower bound on what one step
can reach, not a search. Writes benchmarks/results/libraries.json. Blocks are named by their IDs
only (never their SMILES), so no part of ../shared/data lands in the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import date
from importlib import resources
from pathlib import Path

import numpy as np
from rdkit import Chem, DataStructs, rdBase

from reactions.index import build_compatibility_index
from reactions.library import DEFAULT_LIBRARY_RESOURCE, BuildingBlockLibrary, load_building_blocks
from reactions.similarity import DEFAULT_ANALOGUE_THRESHOLD, ecfp4_generator, packed_ecfp4, packed_tanimoto
from reactions.templates import default_template_set, load_template_set
from synflow.chemistry import SynthesisChemistry
from synflow.rewards.pmo import PMO_TARGETS

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BUILT = ROOT / "artifacts" / "libraries"
NEAR = 0.4  # "blocks near the target": ECFP4 Tanimoto at least this


def default_libraries() -> list[tuple[str, Path]]:
    with resources.as_file(resources.files("reactions.data").joinpath(DEFAULT_LIBRARY_RESOURCE)) as path:
        found = [("bundled", Path(path))]
    zincfrag = SHARED / "building_blocks" / "zincfrag_10k.smi.gz"
    if zincfrag.is_file():
        found.append(("zincfrag_10k", zincfrag))
    found += [(p.name.removesuffix(".smi.gz"), p) for p in sorted(BUILT.glob("*.smi.gz"))]
    return found


def display_path(path: Path) -> str:
    """The path relative to the project (../shared/... for the shared data), else as given."""
    path = path.resolve()
    if path.is_relative_to(ROOT):
        return str(path.relative_to(ROOT))
    return "../" + str(path.relative_to(ROOT.parent)) if path.is_relative_to(ROOT.parent) else str(path)


def coverage(chem: SynthesisChemistry, index_counts: list[list[int]]) -> dict[str, object]:
    """Per bimolecular template slot, how many blocks can take the other slot."""
    partners = [counts[1 - s] for counts in index_counts if len(counts) == 2 for s in range(2)]
    empty = sum(c == 0 for counts in index_counts for c in counts)
    return {
        "templates": len(index_counts),
        "usable_templates": sum(min(c) > 0 for c in index_counts),
        "slots": sum(len(c) for c in index_counts),
        "slots_without_blocks": empty,
        "bimolecular_slots": len(partners),
        "bimolecular_slots_without_partners": sum(p == 0 for p in partners),
        "median_partners": float(np.median(partners)),
        "start_blocks": len(chem.start_blocks),
    }


def one_step_reach(chem: SynthesisChemistry, similarity: np.ndarray, target: Chem.Mol,
                   top_blocks: int, cap: int) -> dict[str, object]:
    """Best product similarity over the `cap` most promising one-step reactions of the top blocks."""
    top = np.argsort(-similarity, kind="stable")[:top_blocks]
    rows: list[np.ndarray] = []  # (score, block, template, slot, partner or -1)
    for block in top.tolist():
        for template, slot in chem.template_slots(chem.block_smiles(block), block=block):
            partners = chem.partners(template, slot)
            if chem.templates[template].arity == 1:
                rows.append(np.array([[similarity[block], block, template, slot, -1]]))
                continue
            if len(partners) > cap:  # only the best `cap` partners can make the global cut
                partners = partners[np.argpartition(-similarity[partners], cap)[:cap]]
            scores = similarity[block] + similarity[partners]
            fixed = np.tile([block, template, slot], (len(partners), 1))
            rows.append(np.column_stack([scores, fixed, partners]))
    if not rows:
        return {"reactions": 0, "products": 0, "best": 0.0}
    candidates = np.concatenate(rows)
    candidates = candidates[np.argsort(-candidates[:, 0], kind="stable")]
    generator, target_fp = ecfp4_generator(), ecfp4_generator().GetFingerprint(target)
    seen: set[tuple[int, tuple[str, ...]]] = set()
    best = (0.0, "", "")
    products = 0
    near = 0
    for _, block, template, slot, partner in candidates.tolist():
        block, template, slot, partner = int(block), int(template), int(slot), int(partner)
        smiles = chem.block_smiles(block)
        reactants = (smiles,) if partner < 0 else chem.ordered(slot, smiles, chem.block_smiles(partner))
        if (template, reactants) in seen:
            continue
        seen.add((template, reactants))
        product = chem.product(template, reactants)
        if product is not None:
            mol = Chem.MolFromSmiles(product)
            if mol is not None:
                products += 1
                value = DataStructs.TanimotoSimilarity(target_fp, generator.GetFingerprint(mol))
                near += value >= NEAR
                if value > best[0]:
                    ids = (chem.library.ids[block],) if partner < 0 else chem.ordered(
                        slot, chem.library.ids[block], chem.library.ids[partner])
                    best = (value, product, f"{chem.templates[template].name}: " + " + ".join(ids))
        if len(seen) >= cap:
            break
    return {"reactions": len(seen), "products": products, "best": round(best[0], 4),
            "products_near": near, "best_product": best[1], "best_route": best[2]}


def measure(name: str, path: Path, templates_path: Path | None, top_blocks: int, cap: int) -> dict:
    started = time.perf_counter()
    library: BuildingBlockLibrary = load_building_blocks(path, workers=1)
    load_s = time.perf_counter() - started
    templates = load_template_set(templates_path) if templates_path else default_template_set()
    started = time.perf_counter()
    index = build_compatibility_index(library, templates, workers=1)
    index_s = time.perf_counter() - started
    chem = SynthesisChemistry(library, templates, index, max_reactions=3, min_reactions=1)
    heavy = library.descriptors[:, library.descriptor_names.index("heavy_atoms")]
    report: dict[str, object] = {
        "path": display_path(path),
        "blocks": len(library), "rejected_on_load": len(library.rejected),
        "median_heavy_atoms": float(np.median(heavy)), "max_heavy_atoms": int(heavy.max()),
        "load_s": round(load_s, 2), "index_s": round(index_s, 2),
        "coverage": coverage(chem, index.slot_counts()),
    }
    sidecar = path.with_name(path.name + ".provenance.json")
    if sidecar.is_file():  # written by scripts/make_default_library.py beside a library it built
        built = json.loads(sidecar.read_text())
        report["built_by"] = {
            "arguments": built.get("arguments"), "source": built.get("source"),
            "excluded_analogues": built.get("excluded_analogues", {}).get("count"),
            "build_s": built.get("seconds"), "output_sha256": built.get("output_sha256"),
        }
    reach: dict[str, dict] = {}
    analogues: list[dict] = []
    started = time.perf_counter()
    for target_name, smiles in PMO_TARGETS.items():
        similarity = packed_tanimoto(library.fingerprints, packed_ecfp4(smiles))
        best = int(np.argmax(similarity))
        analogues += [{"block": library.ids[i], "target": target_name,
                       "similarity": round(float(similarity[i]), 4)}
                      for i in np.flatnonzero(similarity >= DEFAULT_ANALOGUE_THRESHOLD).tolist()]
        reach[target_name] = {
            "best_block": round(float(similarity[best]), 4), "best_block_id": library.ids[best],
            "blocks_near": int((similarity >= NEAR).sum()),
            "one_step": one_step_reach(chem, similarity, Chem.MolFromSmiles(smiles), top_blocks, cap),
        }
        print(f"  {name} {target_name}: block {reach[target_name]['best_block']:.3f} "
              f"({reach[target_name]['blocks_near']} >= {NEAR}), one step "
              f"{reach[target_name]['one_step']['best']:.3f}", flush=True)
    report["reach_s"] = round(time.perf_counter() - started, 1)
    report["analogues"] = {"threshold": DEFAULT_ANALOGUE_THRESHOLD, "count": len(analogues),
                           "blocks": analogues}
    report["reach"] = reach
    blocks_best = [r["best_block"] for r in reach.values()]
    steps_best = [r["one_step"]["best"] for r in reach.values()]
    report["summary"] = {
        "mean_best_block": round(float(np.mean(blocks_best)), 4),
        "mean_best_one_step": round(float(np.mean(steps_best)), 4),
        "mean_best_within_one_step": round(float(np.mean(np.maximum(blocks_best, steps_best))), 4),
        "targets_with_block_near": sum(b >= NEAR for b in blocks_best),
        "targets_one_step_at_0.5": sum(s >= 0.5 for s in steps_best),
        "median_blocks_near": float(np.median([r["blocks_near"] for r in reach.values()])),
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", action="append", default=[], metavar="NAME=PATH",
                        help="a library to measure (repeatable; default: bundled, zincfrag_10k, "
                             "artifacts/libraries/*.smi.gz)")
    parser.add_argument("--templates", type=Path, help="template file (default: the bundled set)")
    parser.add_argument("--top-blocks", type=int, default=200)
    parser.add_argument("--reactions", type=int, default=5_000, help="cap on reactions run per target")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "libraries.json")
    args = parser.parse_args()
    rdBase.DisableLog("rdApp.*")
    libraries = ([(n, Path(p)) for n, p in (item.split("=", 1) for item in args.library)]
                 if args.library else default_libraries())
    started = time.perf_counter()
    results = {}
    for name, path in libraries:
        print(f"{name}: {path}", flush=True)
        results[name] = measure(name, path, args.templates, args.top_blocks, args.reactions)
        print(f"{name}: {json.dumps(results[name]['summary'])} load {results[name]['load_s']} s "
              f"index {results[name]['index_s']} s reach {results[name]['reach_s']} s", flush=True)
    report = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} cpus={os.cpu_count()} processes=1",
        "templates": str(args.templates) if args.templates else "bundled default_templates.txt",
        "fingerprint": "Morgan radius 2, 2048 bits (ECFP4 bit vector), Tanimoto",
        "targets": dict(PMO_TARGETS), "near_threshold": NEAR, "top_blocks": args.top_blocks,
        "reactions_cap_per_target": args.reactions, "seconds": round(time.perf_counter() - started, 1),
        "libraries": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.output} in {report['seconds']} s")


if __name__ == "__main__":
    main()
