"""What the reactions and rewards layers offer, seen from the service: libraries, template sets,
reward components. Lazy imports keep the API start fast."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("synflow.catalogue")
BUILDING_BLOCKS = "building_blocks"
TEMPLATES = "templates"


class CatalogueUnavailable(RuntimeError):
    """The installed reactions layer lacks what this call needs."""


@dataclass
class Inspection:
    size: int
    rejected_rows: list[dict[str, Any]] = field(default_factory=list)
    usable: bool = True


def _rejected_row(entry: Any) -> dict[str, Any]:
    line = getattr(entry, "line", None) or getattr(entry, "line_number", None) or getattr(entry, "row", None)
    smiles = getattr(entry, "smiles", None) or getattr(entry, "text", None)
    reason = getattr(entry, "reason", None) or str(entry)
    return {"line": line, "smiles": smiles, "reason": str(reason)}


def _library_module() -> Any:
    try:
        from reactions import library
    except ImportError as error:
        raise CatalogueUnavailable(f"reactions.library is not available: {error}") from None
    return library


def inspect_building_blocks(path: Path) -> Inspection:
    """Load a building-block file with the reactions layer; lists rejected rows with reasons."""
    library = _library_module().load_building_blocks(path)
    rejected = [_rejected_row(e) for e in getattr(library, "rejected", [])]
    return Inspection(size=len(library), rejected_rows=rejected, usable=len(library) > 0)


def inspect_templates(path: Path) -> Inspection:
    from reactions.templates import TemplateParseError, load_template_set

    try:
        templates = load_template_set(path)
    except TemplateParseError as error:
        row = {"line": error.line_number, "smiles": error.line, "reason": error.reason}
        return Inspection(size=0, rejected_rows=[row], usable=False)
    return Inspection(size=len(templates))


def bundled_entries() -> list[dict[str, Any]]:
    """The bundled default template set and library (names, sizes) that load in this install."""
    from reactions.templates import default_template_set

    loaders = [
        (TEMPLATES, default_template_set),
        (BUILDING_BLOCKS, lambda: _library_module().default_library()),
    ]
    entries = []
    for kind, load in loaders:
        try:
            entries.append({"name": "default", "kind": kind, "size": len(load())})
        except (CatalogueUnavailable, OSError) as error:
            log.warning("bundled %s not available: %s", kind, error)
    return entries


def reward_components() -> list[dict[str, Any]]:
    from synflow.rewards import component_catalogue

    return component_catalogue()
