"""The action encoding shared by the network's heads and the environment, in one place.

Level 1 (per molecule state): index 0 is stop, and ``1 + 2·template + slot`` applies ``template``
with the current molecule in ``slot`` (unimolecular templates use slot 0). Level 2 (the building
block) is scored against a (template, slot) embedding: ``2·template + slot``, and ``2·T`` for the
start action, which has no template.
"""

from __future__ import annotations

__all__ = [
    "STOP",
    "decode_level1",
    "level1_index",
    "level1_size",
    "start_tslot",
    "tslot_count",
    "tslot_index",
]

STOP = 0


def level1_size(n_templates: int) -> int:
    """Width of the level-1 head: stop plus two slots per template."""
    return 1 + 2 * n_templates


def level1_index(template: int, slot: int) -> int:
    return 1 + 2 * template + slot


def decode_level1(index: int) -> tuple[int, int] | None:
    """(template, slot) of a level-1 index, or None for stop."""
    if index == STOP:
        return None
    template, slot = divmod(index - 1, 2)
    return template, slot


def tslot_index(template: int, slot: int) -> int:
    """The (template, slot) embedding row a block query uses."""
    return 2 * template + slot


def start_tslot(n_templates: int) -> int:
    """The embedding row of the start action (the first building block)."""
    return 2 * n_templates


def tslot_count(n_templates: int) -> int:
    return 2 * n_templates + 1
