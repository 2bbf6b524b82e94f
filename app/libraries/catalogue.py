"""What the reactions and rewards layers offer, seen from the service: libraries, template sets,
reward components."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reactions.library import RejectedEntry, default_library, load_building_blocks
from reactions.templates import TemplateParseError, default_template_set, load_template_set
from synflow.rewards import component_catalogue

log = logging.getLogger("synflow.catalogue")
BUILDING_BLOCKS = "building_blocks"
TEMPLATES = "templates"


@dataclass
class Inspection:
    size: int
    rejected_rows: list[dict[str, Any]] = field(default_factory=list)
    usable: bool = True


def _rejected_row(entry: RejectedEntry) -> dict[str, Any]:
    return {"line": entry.line, "smiles": entry.smiles, "reason": entry.reason}


def inspect_building_blocks(path: Path) -> Inspection:
    """Load a building-block file with the reactions layer; lists rejected rows with reasons."""
    library = load_building_blocks(path)
    rejected = [_rejected_row(e) for e in library.rejected]
    return Inspection(size=len(library), rejected_rows=rejected, usable=len(library) > 0)


def inspect_templates(path: Path) -> Inspection:
    try:
        templates = load_template_set(path)
    except TemplateParseError as error:
        row = {"line": error.line_number, "smiles": error.line, "reason": error.reason}
        return Inspection(size=0, rejected_rows=[row], usable=False)
    return Inspection(size=len(templates))


def bundled_entries() -> list[dict[str, Any]]:
    """The bundled default template set and library (names, sizes) that load in this install."""
    entries = []
    for kind, load in ((TEMPLATES, default_template_set), (BUILDING_BLOCKS, default_library)):
        try:
            entries.append({"name": "default", "kind": kind, "size": len(load())})
        except OSError as error:
            log.warning("bundled %s not available: %s", kind, error)
    return entries


def reward_components() -> list[dict[str, Any]]:
    return component_catalogue()
