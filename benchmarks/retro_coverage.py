"""How often does the retro-analysis miss the step a forward reaction took? For the bundled template
set (bundled library) and the three shared sets (zincfrag_10k blocks): random forward steps from real
blocks (one reaction, then one on the product), each product checked backwards; misses per template
with their cause. A missed product ends its trajectory as invalid under the uniform backward policy
(``synflow.env`` counts and warns).

    python benchmarks/retro_coverage.py [--steps 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from rdkit import RDLogger

from reactions.index import build_compatibility_index
from reactions.library import default_library, load_building_blocks
from reactions.templates import default_template_set, load_template_set
from synflow.chemistry import SynthesisChemistry
from synflow.retro_audit import audit_retro

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "synflow"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    RDLogger.DisableLog("rdApp.*")
    sets = [("bundled", default_library(), default_template_set())]
    if DATA.is_dir():
        zinc = load_building_blocks(DATA / "building_blocks" / "zincfrag_10k.smi.gz")
        sets += [(f.stem, zinc, load_template_set(f)) for f in sorted((DATA / "templates").glob("*.txt"))]
    report: dict[str, object] = {}
    for name, library, templates in sets:
        started = time.perf_counter()
        index = build_compatibility_index(library, templates, cache_dir=CACHE)
        chem = SynthesisChemistry(library, templates, index, max_reactions=3, min_reactions=1)
        audit = audit_retro(chem, np.random.default_rng(args.seed), args.steps)
        report[name] = {
            "templates": len(templates),
            "steps": audit.steps,
            "products": audit.products,
            "missed": len(audit.misses),
            "missed_share": round(len(audit.misses) / max(1, audit.products), 4),
            "by_cause": _by_cause(audit.by_template),
            "top_templates": [f"{n} {t} ({c})" for (t, c), n in audit.by_template.most_common(8)],
            "seconds": round(time.perf_counter() - started, 1),
        }
    report["machine"] = f"{platform.machine()} cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}"
    report["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps(report, indent=2))


def _by_cause(by_template: object) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_, cause), n in by_template.items():  # type: ignore[attr-defined]
        out[cause] = out.get(cause, 0) + n
    return out


if __name__ == "__main__":
    main()
