"""Reaction templates: one reaction SMARTS per line, uni- or bimolecular, run on reactants in order.

File format (the SynFlowNet / RxnFlow / SynNet format, extended with optional names)::

    # a comment line
    [C:1](=[O:2])[OH].[N;H2:3]>>[C:1](=[O:2])[N:3]    amide coupling

The reaction SMARTS is the first whitespace-separated field; anything after it is the template's
human-readable name (a leading ``#`` is dropped). A line that RDKit cannot parse, or that describes
a reaction with other than one or two reactants, raises `TemplateParseError` with its line number:
nothing is silently skipped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import overload

from rdkit import Chem, rdBase
from rdkit.Chem import rdChemReactions

DEFAULT_TEMPLATES_RESOURCE = "default_templates.txt"


class TemplateParseError(ValueError):
    """A template line that cannot be used, with its line number and RDKit's reason."""

    def __init__(self, source: str, line_number: int, line: str, reason: str) -> None:
        self.source = source
        self.line_number = line_number
        self.line = line
        self.reason = reason
        super().__init__(f"{source}, line {line_number}: {reason}\n    {line}")


@dataclass(frozen=True, eq=False)
class ReactionTemplate:
    """One reaction SMARTS with its position in its set and a human-readable name."""

    index: int
    name: str
    smarts: str
    reaction: rdChemReactions.ChemicalReaction = field(repr=False)
    reactant_patterns: tuple[Chem.Mol, ...] = field(repr=False)

    @property
    def arity(self) -> int:
        """1 for unimolecular templates, 2 for bimolecular ones."""
        return len(self.reactant_patterns)

    def matches(self, mol: Chem.Mol, slot: int) -> bool:
        """Whether `mol` can take reactant position `slot` (0-based) of this template."""
        return mol.HasSubstructMatch(self.reactant_patterns[slot])

    def run(self, reactants: Sequence[Chem.Mol]) -> list[str]:
        """Products of this template on `reactants` (in the template's order).

        Returns the sanitised, de-duplicated canonical SMILES of every outcome, sorted; outcomes
        that RDKit cannot sanitise (impossible valences, broken aromaticity) are dropped, and an
        outcome with several product molecules is written as one dot-separated SMILES.
        """
        if len(reactants) != self.arity:
            raise ValueError(f"template {self.index} ({self.name}) takes {self.arity} reactants, "
                             f"got {len(reactants)}")
        products: set[str] = set()
        with rdBase.BlockLogs():  # failed sanitisations are expected; keep them off stderr
            for outcome in self.reaction.RunReactants(tuple(reactants)):
                smiles = _outcome_smiles(outcome)
                if smiles is not None:
                    products.add(smiles)
        return sorted(products)


def _outcome_smiles(outcome: Sequence[Chem.Mol]) -> str | None:
    parts = []
    for product in outcome:
        # RunReactants products are unsanitised; catchErrors returns the failed step instead of raising.
        if Chem.SanitizeMol(product, catchErrors=True) != Chem.SanitizeFlags.SANITIZE_NONE:
            return None
        parts.append(Chem.MolToSmiles(product))
    return ".".join(parts)


class TemplateSet(Sequence[ReactionTemplate]):
    """An ordered, immutable set of reaction templates; `templates[i].index == i`."""

    def __init__(self, templates: Sequence[ReactionTemplate], source: str = "<memory>") -> None:
        self._templates = tuple(templates)
        self.source = source
        for position, template in enumerate(self._templates):
            if template.index != position:
                raise ValueError(f"template at position {position} has index {template.index}")

    def __len__(self) -> int:
        return len(self._templates)

    @overload
    def __getitem__(self, index: int) -> ReactionTemplate: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ReactionTemplate]: ...

    def __getitem__(self, index: int | slice) -> ReactionTemplate | Sequence[ReactionTemplate]:
        return self._templates[index]

    def __iter__(self) -> Iterator[ReactionTemplate]:
        return iter(self._templates)

    def __repr__(self) -> str:
        return (f"TemplateSet({len(self)} templates: {len(self.unimolecular)} uni, "
                f"{len(self.bimolecular)} bi; source={self.source!r})")

    @property
    def unimolecular(self) -> tuple[ReactionTemplate, ...]:
        return tuple(t for t in self._templates if t.arity == 1)

    @property
    def bimolecular(self) -> tuple[ReactionTemplate, ...]:
        return tuple(t for t in self._templates if t.arity == 2)

    @property
    def n_slots(self) -> int:
        """Reactant positions over all templates (1 per unimolecular, 2 per bimolecular)."""
        return sum(t.arity for t in self._templates)

    def by_name(self, name: str) -> ReactionTemplate:
        for template in self._templates:
            if template.name == name:
                return template
        raise KeyError(name)

    def content_hash(self) -> str:
        """SHA-256 over the SMARTS and names in order: equal hashes mean equal sets."""
        digest = hashlib.sha256(b"synflow-templates-v1\n")
        for template in self._templates:
            digest.update(f"{template.smarts}\t{template.name}\n".encode())
        return digest.hexdigest()


def parse_template(smarts: str, index: int, name: str | None = None) -> ReactionTemplate:
    """One template from a reaction SMARTS; raises ValueError with RDKit's reason."""
    with rdBase.CaptureErrorLog() as capture:
        try:
            reaction = rdChemReactions.ReactionFromSmarts(smarts)
        except ValueError as error:
            raise ValueError(_rdkit_reason(str(error), capture.messages)) from None
    _block = rdBase.BlockLogs()  # mapping warnings ("atoms not mapped in products") are normal here
    n_products = reaction.GetNumProductTemplates()
    arity = reaction.GetNumReactantTemplates()
    if arity not in (1, 2):
        raise ValueError(f"{arity} reactant templates: only uni- and bimolecular templates are supported")
    if n_products < 1:
        raise ValueError("the reaction has no product template")
    reaction.Initialize()
    patterns = tuple(reaction.GetReactantTemplate(i) for i in range(arity))
    return ReactionTemplate(index=index, name=name or f"template_{index}", smarts=smarts,
                            reaction=reaction, reactant_patterns=patterns)


def _rdkit_reason(exception_text: str, log_text: str) -> str:
    """RDKit's exception plus the parser's own diagnosis from its error log (timestamps removed)."""
    lines = [re.sub(r"^\[\d\d:\d\d:\d\d\] ", "", line).strip() for line in log_text.splitlines()]
    details = [line for line in lines if "syntax error" in line or "around position" in line]
    reason = exception_text.removeprefix("ChemicalReactionParserException: ")
    return "; ".join([reason, *dict.fromkeys(details)])


def parse_template_lines(lines: Sequence[str], source: str = "<memory>") -> TemplateSet:
    """A template set from the lines of a template file (see the module docstring)."""
    templates: list[ReactionTemplate] = []
    for line_number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        smarts, *rest = line.split(None, 1)
        name = rest[0].lstrip("#").strip() if rest else None
        try:
            templates.append(parse_template(smarts, len(templates), name or None))
        except ValueError as error:
            raise TemplateParseError(source, line_number, line, str(error)) from None
    return TemplateSet(templates, source=source)


def load_template_set(path: str | Path) -> TemplateSet:
    """Load a template file; raises TemplateParseError naming the first bad line."""
    path = Path(path)
    return parse_template_lines(path.read_text().splitlines(), source=str(path))


@lru_cache(maxsize=1)
def default_template_set() -> TemplateSet:
    """The project's own template set (reactions/data/default_templates.txt).

    Cached: parsing takes tens of milliseconds and every environment and test wants the same
    immutable object.
    """
    text = resources.files("reactions.data").joinpath(DEFAULT_TEMPLATES_RESOURCE).read_text()
    return parse_template_lines(text.splitlines(), source=f"reactions/data/{DEFAULT_TEMPLATES_RESOURCE}")
