"""Purchasability of a route's building blocks, read with the run's own ``purchasable`` source.

A molecule row stores whether the molecule itself is purchasable (its reward's notes); its building
blocks are flagged when they are read (molecule page, exports), with the catalogue of the run's
first ``purchasable`` component: a block either is in it or is not, whichever molecule used it, so
storing a flag per row would only repeat the catalogue. Catalogues are opened once per process
(a bounded cache, shared by request threads) and every block's answer is kept.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from synflow.rewards.purchasable import Catalogue, CatalogueMatch, flags, open_catalogue

MAX_CATALOGUES = 4  # a user catalogue of 10^6 molecules holds ~150 MB of keys
MAX_ANSWERS = 200_000  # remembered block answers per catalogue
_UNSEEN = object()


def purchasable_source(config: dict[str, Any] | None) -> tuple[str, CatalogueMatch] | None:
    """(source, match) of a stored run config's first ``purchasable`` component, if any."""
    components = ((config or {}).get("reward") or {}).get("components") or []
    for component in components:
        if isinstance(component, dict) and component.get("type") == "purchasable":
            return str(component.get("source") or "zinc-instock-mini"), component.get("match") or "inchikey"
    return None


def route_blocks(route: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The building blocks of a route in synthesis order: ``{"step", "smiles", "id"}``."""
    steps = (route or {}).get("steps") or []
    return [
        {"step": i, "smiles": step["building_block"].get("smiles"), "id": step["building_block"].get("id")}
        for i, step in enumerate(steps)
        if isinstance(step, dict) and isinstance(step.get("building_block"), dict)
    ]


class _Answers:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.known: dict[str, bool | None] = {}

    def __call__(self, smiles: str) -> bool | None:
        known = self.known.get(smiles, _UNSEEN)
        if known is not _UNSEEN:
            return known  # type: ignore[return-value]
        answer = next(flags(self.catalogue, [smiles]))
        if len(self.known) >= MAX_ANSWERS:
            self.known.clear()
        self.known[smiles] = answer
        return answer


class BlockFlags:
    """Flags route building blocks as purchasable or not; catalogues opened once, least recently
    used dropped first. Thread-safe: the API answers from a thread pool."""

    def __init__(self, max_catalogues: int = MAX_CATALOGUES) -> None:
        self.max_catalogues = max_catalogues
        self._answers: OrderedDict[tuple[str, str], _Answers] = OrderedDict()
        self._lock = threading.Lock()

    def _for(self, source: str, match: CatalogueMatch) -> _Answers:
        key = (source, match)
        with self._lock:  # opening a catalogue file under the lock: two requests never read it twice
            if key not in self._answers:
                self._answers[key] = _Answers(open_catalogue(source, match))
                while len(self._answers) > self.max_catalogues:
                    self._answers.popitem(last=False)
            self._answers.move_to_end(key)
            answers = self._answers[key]
        return answers

    def blocks(self, config: dict[str, Any] | None, route: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The route's blocks (``route_blocks``) each with ``purchasable``: a bool, or None where the
        run has no ``purchasable`` component, its catalogue cannot be opened any more, or RDKit cannot
        read the block."""
        blocks = route_blocks(route)
        found = purchasable_source(config)
        answers = None
        if found is not None and blocks:
            try:
                answers = self._for(*found)
            except (OSError, ValueError):
                answers = None  # the catalogue file is gone or unreadable: unknown, not "no"
        for block in blocks:
            smiles = block["smiles"]
            block["purchasable"] = answers(smiles) if answers is not None and smiles else None
        return blocks


class ExportNotes:
    """What the reward found besides scores, for one run's exports: ``purchasable``, ``alerts`` and the
    route's building blocks flagged with the run's catalogue (None where nothing looked)."""

    def __init__(self, config: dict[str, Any] | None, block_flags: BlockFlags | None) -> None:
        self.config = config
        self.block_flags = block_flags or BlockFlags(max_catalogues=1)

    def fields(self, purchasable: bool | None, alerts: list[str] | None, route: Any) -> dict[str, Any]:
        """JSON fields ``purchasable``, ``alerts``, ``building_blocks`` ({step, smiles, id, purchasable})."""
        return {
            "purchasable": purchasable,
            "alerts": alerts,
            "building_blocks": self.block_flags.blocks(self.config, route),
        }

    def text(self, purchasable: bool | None, alerts: list[str] | None, route: Any) -> dict[str, str]:
        """The same as text columns (CSV, SDF properties): ``true``/``false``, JSON lists, empty for
        None; ``building_blocks_purchasable`` is the blocks' flags in route order."""
        blocks = self.block_flags.blocks(self.config, route)
        flagged = [b["purchasable"] for b in blocks]
        return {
            "purchasable": "" if purchasable is None else str(purchasable).lower(),
            "alerts": "" if alerts is None else json.dumps(alerts),
            "building_blocks_purchasable": json.dumps(flagged) if any(f is not None for f in flagged) else "",
        }
