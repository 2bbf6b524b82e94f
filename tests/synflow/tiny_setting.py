"""A tiny, fully enumerable synthesis setting built from real SMILES and real reaction SMARTS."""

from __future__ import annotations

from typing import Any

from reactions.index import build_compatibility_index
from reactions.library import library_from_smiles
from reactions.templates import parse_template_lines
from synflow.chemistry import SynthesisChemistry
from synflow.config import RunConfig, parse_run_config

TEMPLATES = [
    "[C:1](=[O:2])-[OD1].[N!H0;!$(NC=O):3]>>[C:1](=[O:2])[N:3] amide_coupling",
    "[C:1](=[O:2])-[OD1].[OH1;$(O[CX4]);!$(OC=O):3]>>[C:1](=[O:2])[O:3] esterification",
    "[N:1]C(=O)OC(C)(C)C>>[N:1] boc_deprotection",
]
BLOCKS = [
    "CC(=O)O",
    "OC(=O)c1ccncc1",
    "NCc1ccccc1",
    "C1CCNCC1",
    "OCc1ccco1",
    "NCC(=O)O",
    "CC(C)(C)OC(=O)NCC(=O)O",
    "c1ccccc1",  # fits no template: never a start block
]


def tiny_chemistry(
    max_reactions: int = 2, min_reactions: int = 1, cache_size: int = 200_000
) -> SynthesisChemistry:
    templates = parse_template_lines(TEMPLATES)
    library = library_from_smiles(BLOCKS, ids=[f"TINY{i:02d}" for i in range(len(BLOCKS))], workers=1)
    index = build_compatibility_index(library, templates, workers=1)
    return SynthesisChemistry(library, templates, index, max_reactions, min_reactions, cache_size)


def tiny_config(**overrides: Any) -> RunConfig:
    data: dict[str, Any] = {
        "reward": {"components": [{"type": "qed"}], "beta": 4.0},
        "environment": {"max_reactions": 2},
        "model": {"hidden": 64, "layers": 2, "block_hidden": 32},
        "training": {"steps": 300, "batch_size": 32, "lr": 3e-3, "log_every": 1000, "seed": 0},
        "loss": {"log_z_lr": 0.1},
    }
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return parse_run_config(data)
