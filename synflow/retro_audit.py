"""Does the retro-analysis find every step the forward chemistry can take?

The uniform backward policy is exact only over the molecules whose making step the retro-analysis
gives back: a forward product it cannot verify ends its trajectory as invalid. ``audit_retro`` takes
random forward steps from real blocks (one reaction from blocks, then a second on the product), and
for each product checks that ``SynthesisChemistry.retro`` returns the very step that made it; every
miss is kept with its template and its cause.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from synflow.chemistry import RetroParent, SynthesisChemistry

__all__ = ["RetroAudit", "audit_retro"]


@dataclass
class RetroAudit:
    """Forward steps tried, products made, and the products whose step retro-analysis missed."""

    steps: int = 0
    products: int = 0
    misses: list[tuple[str, str, str]] = field(default_factory=list)  # (template name, product, cause)

    @property
    def by_template(self) -> Counter[tuple[str, str]]:
        return Counter((name, cause) for name, _, cause in self.misses)


def audit_retro(chem: SynthesisChemistry, rng: np.random.Generator, steps: int) -> RetroAudit:
    """``steps`` random forward steps (half from blocks, half on a product), each checked backwards."""
    audit = RetroAudit()
    usable = [
        (t.index, s)
        for t in chem.templates
        for s in range(t.arity)
        if chem.partners(t.index, s).size or t.arity == 1
    ]
    usable = [(t, s) for t, s in usable if _slot_blocks(chem, t, s).size]
    if not usable:
        return audit
    while audit.steps < steps:
        t, s = usable[rng.integers(len(usable))]
        molecule = chem.block_smiles(int(rng.choice(_slot_blocks(chem, t, s))))
        first = _step(chem, rng, audit, t, s, molecule)
        if first is not None and audit.steps < steps:
            follow = chem.template_slots(first)
            if follow:
                t2, s2 = follow[rng.integers(len(follow))]
                _step(chem, rng, audit, t2, s2, first)
    return audit


def _slot_blocks(chem: SynthesisChemistry, template: int, slot: int) -> np.ndarray:
    """Blocks that fit ``slot`` of ``template``: the partners of the other slot's molecule."""
    t = chem.templates[template]
    return chem.partners(template, 1 - slot) if t.arity == 2 else chem.start_blocks


def _step(
    chem: SynthesisChemistry,
    rng: np.random.Generator,
    audit: RetroAudit,
    template: int,
    slot: int,
    molecule: str,
) -> str | None:
    t = chem.templates[template]
    reactants: tuple[str, ...]
    if t.arity == 2:
        partners = chem.partners(template, slot)
        if not partners.size:
            return None
        block = int(rng.choice(partners))
        reactants = chem.ordered(slot, molecule, chem.block_smiles(block))
    else:
        block, reactants = -1, (molecule,)
    audit.steps += 1
    product = chem.product(template, reactants)
    if product is None:
        return None
    audit.products += 1
    if RetroParent(template, slot, molecule, block) not in chem.retro(product):
        audit.misses.append(
            (t.name or str(template), product, _cause(chem, template, slot, molecule, block, product))
        )
    return product


def _cause(
    chem: SynthesisChemistry, template: int, slot: int, molecule: str, block: int, product: str
) -> str:
    """Why the step is missing: which stage of the retro-analysis lost it."""
    outcomes = chem.reverse_candidates(template, product)
    if outcomes is None:
        return "the template cannot be reversed"
    if not outcomes:
        return "the reverse template does not match the product"
    arity = chem.templates[template].arity
    for sides in outcomes:
        if len(sides) != arity or molecule not in sides[slot]:
            continue
        if arity == 2 and chem.block_smiles(block) not in sides[1 - slot]:
            continue
        return "the parent is found but the forward check of it gives another product"
    return "no reverse outcome gives back the parent (hydrogens, charges or a lost leaving group)"
