"""A JSON-ready summary of a library against a template set (what `synflow library build` prints)."""

from __future__ import annotations

import re
from collections import Counter

from reactions.index import CompatibilityIndex
from reactions.library import BuildingBlockLibrary
from reactions.templates import TemplateSet

_EXAMPLES = 10


def _reason_kind(reason: str) -> str:
    """A reason without its molecule-specific details, for counting ('72 heavy atoms' -> '# heavy atoms')."""
    kind = reason.split(":")[0]
    return re.sub(r"\d+", "#", kind)


def library_summary(library: BuildingBlockLibrary, templates: TemplateSet,
                    index: CompatibilityIndex) -> dict[str, object]:
    counts = index.slot_counts()
    unmatched = index.unmatched_blocks()
    return {
        "building_blocks": len(library),
        "rejected": len(library.rejected),
        "rejected_by_reason": dict(Counter(_reason_kind(e.reason) for e in library.rejected).most_common()),
        "templates": len(templates),
        "unimolecular": len(templates.unimolecular),
        "bimolecular": len(templates.bimolecular),
        "compatible_pairs": index.n_compatible_pairs,
        "usable_templates": len(index.usable_templates()),
        "unmatched_blocks": len(unmatched),
        "unmatched_examples": [
            {"id": library.ids[i], "smiles": library.smiles[i]} for i in unmatched[:_EXAMPLES].tolist()
        ],
        "per_template": [
            {"index": t.index, "name": t.name, "arity": t.arity, "blocks_per_slot": counts[t.index],
             "usable": min(counts[t.index]) > 0}
            for t in templates
        ],
        "library_hash": library.content_hash(),
        "templates_hash": templates.content_hash(),
    }
