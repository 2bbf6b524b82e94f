"""Reward components: one pydantic model per ``type``, declaring its parameters (no scorers here;
``synflow.rewards.factory`` builds a component's scorer from these fields).

Every component has a ``name`` (its key in ``scores``; defaults to the type, the PMO task or the
descriptor), a ``weight`` in the aggregation, an optional ``transform`` that shapes the raw value
into [0, 1], and a ``role``: ``score`` components are aggregated by a weighted mean, ``filter``
components multiply the aggregated reward afterwards (substructure filters default to this).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WrapValidator,
    field_validator,
    model_validator,
)

from reactions.smiles import INPUT_LIMITS, SmilesError, parse_smarts, parse_smiles
from synflow.rewards.tagged import tagged_validator
from synflow.rewards.transforms import ClipTransform, TransformConfig

FingerprintKind = Literal["morgan", "feature_morgan", "atom_pair", "topological_torsion", "rdkit", "maccs"]
PmoTask = Literal[
    "albuterol_similarity",
    "mestranol_similarity",
    "celecoxib_rediscovery",
    "troglitazone_rediscovery",
    "thiothixene_rediscovery",
    "amlodipine_mpo",
    "fexofenadine_mpo",
    "osimertinib_mpo",
    "perindopril_mpo",
    "ranolazine_mpo",
    "sitagliptin_mpo",
    "zaleplon_mpo",
    "median1",
    "median2",
    "isomers_c7h8n2o2",
    "isomers_c9h10n2o2pf2cl",
    "deco_hop",
    "scaffold_hop",
    "valsartan_smarts",
    "qed",
]
PhyschemDescriptor = Literal[
    "mw",
    "tpsa",
    "logp",
    "hbd",
    "hba",
    "rotatable_bonds",
    "rings",
    "aromatic_rings",
    "heavy_atoms",
    "fraction_sp3",
    "formal_charge",
]


def _reference_smiles(smiles: str) -> str:
    """A reference molecule must parse, within the input limits (the API validates with this too)."""
    try:
        parse_smiles(smiles, INPUT_LIMITS)
    except SmilesError as error:
        raise ValueError(str(error)) from None
    return smiles


def _smarts(pattern: str) -> str:
    try:
        parse_smarts(pattern, INPUT_LIMITS)
    except SmilesError as error:
        raise ValueError(str(error)) from None
    return pattern


ReferenceSmiles = Annotated[str, AfterValidator(_reference_smiles)]
Smarts = Annotated[str, AfterValidator(_smarts)]


class ComponentBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Whether raw values already lie in [0, 1]; unbounded ones need a transform to be scored.
    bounded: ClassVar[bool] = True

    name: str | None = Field(None, min_length=1, description="key in `scores`; default from the type")
    weight: float = Field(1.0, ge=0.0, description="weight in the aggregation (ignored for filters)")
    transform: TransformConfig | None = Field(None, description="shapes the raw value into [0, 1]")
    role: Literal["score", "filter"] = Field(
        "score",
        description="`score`: aggregated by weighted mean; `filter`: multiplies afterwards",
    )

    def default_name(self) -> str:
        return str(self.type)  # type: ignore[attr-defined]

    @property
    def label(self) -> str:
        return self.name or self.default_name()

    def effective_transform(self) -> TransformConfig | None:
        return self.transform


class QedComponent(ComponentBase):
    """QED drug-likeness (RDKit), in [0, 1]."""

    type: Literal["qed"] = "qed"


class SaComponent(ComponentBase):
    """Synthetic accessibility (Ertl's SA score, RDKit Contrib) mapped to [0, 1] by (10 - SA) / 9."""

    type: Literal["sa"] = "sa"


class PhyschemComponent(ComponentBase):
    """A physico-chemical descriptor (raw value kept), shaped into [0, 1] by a required transform."""

    bounded: ClassVar[bool] = False
    type: Literal["physchem"] = "physchem"
    descriptor: PhyschemDescriptor
    transform: TransformConfig = Field(description="required: shapes the descriptor into [0, 1]")

    def default_name(self) -> str:
        return self.descriptor


class SimilarityComponent(ComponentBase):
    """Tanimoto similarity to reference molecules (the maximum, or the mean, over them)."""

    type: Literal["similarity"] = "similarity"
    references: list[ReferenceSmiles] = Field(min_length=1, description="reference SMILES")
    fingerprint: FingerprintKind = "morgan"
    radius: int = Field(2, ge=0, le=6, description="Morgan radius (2 = ECFP4)")
    n_bits: int = Field(2048, ge=64, le=65536, description="folded size when counts is false")
    counts: bool = Field(False, description="unfolded count vectors instead of folded bits")
    aggregate: Literal["max", "mean"] = "max"


class SubstructureComponent(ComponentBase):
    """Required and forbidden SMARTS; each violation zeroes (mode zero) or multiplies by penalty."""

    type: Literal["substructure"] = "substructure"
    role: Literal["score", "filter"] = "filter"
    required: list[Smarts] = Field(default_factory=list, description="SMARTS that must all match")
    forbidden: list[Smarts] = Field(default_factory=list, description="SMARTS that must not match")
    mode: Literal["zero", "penalty"] = Field("zero", description="a violation zeroes or penalises")
    penalty: float = Field(0.5, ge=0.0, le=1.0, description="factor per violation in penalty mode")
    use_chirality: bool = False

    @model_validator(mode="after")
    def _some_pattern(self) -> SubstructureComponent:
        if not self.required and not self.forbidden:
            raise ValueError("give at least one `required` or `forbidden` SMARTS")
        return self


class PmoComponent(ComponentBase):
    """One of the 20 offline PMO/GuacaMol oracles, by its TDC task name."""

    type: Literal["pmo"] = "pmo"
    task: PmoTask
    legacy_isomers: bool = Field(
        False,
        description="TDC <= 0.3 isomer scoring (counts atoms in the SMILES text)",
    )

    def default_name(self) -> str:
        return self.task


_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class PythonComponent(ComponentBase):
    """A python function ``package.module:function`` mapping a list of SMILES to a list of floats.

    Without a transform the values must lie in [0, 1]. A molecule the function fails on (NaN, an
    exception or a timeout when tried alone) gets the reward floor and the reason; a function that
    fails for every molecule, or returns the wrong number of values, raises ``RewardPluginError``
    naming the component.
    """

    bounded: ClassVar[bool] = True
    type: Literal["python"] = "python"
    target: str = Field(description="`package.module:function`")
    kwargs: dict[str, object] = Field(default_factory=dict, description="extra keyword arguments")
    timeout_s: float = Field(300.0, gt=0, description="per batch")
    molecule_timeout_s: float | None = Field(
        None, gt=0, description="per molecule, when a failed batch is retried one by one (default timeout_s)"
    )

    @field_validator("target")
    @classmethod
    def _target(cls, target: str) -> str:
        if not _TARGET.match(target):
            raise ValueError("target must look like 'package.module:function'")
        return target

    def default_name(self) -> str:
        return self.target.rsplit(":", 1)[1]


class CommandComponent(ComponentBase):
    """An external command: canonical SMILES on stdin, one line per molecule; one float per line
    on stdout. Failures are pinned on molecules as for ``python``; a command that fails for every
    molecule, or prints the wrong number of lines, raises ``RewardPluginError``."""

    type: Literal["command"] = "command"
    command: list[str] = Field(min_length=1, description="argv; a string is split like a shell")
    timeout_s: float = Field(300.0, gt=0, description="per batch")
    molecule_timeout_s: float | None = Field(
        None, gt=0, description="per molecule, when a failed batch is retried one by one (default timeout_s)"
    )
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict, description="added to the environment")

    @field_validator("command", mode="before")
    @classmethod
    def _split(cls, command: object) -> object:
        return shlex.split(command) if isinstance(command, str) else command

    def default_name(self) -> str:
        return Path(self.command[0]).name


DEFAULT_DOCKING_TRANSFORM = ClipTransform(low=0.0, high=-12.0)


class DockingComponent(ComponentBase):
    """AutoDock Vina docking of RDKit-embedded, meeko-prepared ligands; a process pool (or Ray
    actors), one ligand per core. The raw value is the best affinity (kcal/mol, more negative is
    better); the default transform is ``clip(low=0, high=-12)``: score = clip(-affinity / 12, 0, 1)."""

    bounded: ClassVar[bool] = False
    type: Literal["docking"] = "docking"
    receptor: str = Field(description="receptor PDBQT file")
    center: tuple[float, float, float] = Field(description="box centre (Å)")
    size: tuple[float, float, float] = Field((20.0, 20.0, 20.0), description="box edges (Å)")
    exhaustiveness: int = Field(8, ge=1, le=64)
    n_poses: int = Field(1, ge=1, le=20)
    seed: int = Field(0, ge=0, description="Vina and RDKit embedding seed: the same seed, the same scores")
    processes: int | None = Field(
        None,
        ge=1,
        description="worker processes (or Ray actors with training.executor = ray); default all cores "
        "(ray: every CPU free on the cluster)",
    )
    timeout_s: float = Field(300.0, gt=0, description="per ligand; a timed-out ligand scores 0")

    def effective_transform(self) -> TransformConfig:
        return self.transform or DEFAULT_DOCKING_TRANSFORM


def component_registry() -> Mapping[str, type[ComponentBase]]:
    """Every component type by name (an immutable mapping of classes)."""
    classes: list[type[ComponentBase]] = [
        QedComponent,
        SaComponent,
        PhyschemComponent,
        SimilarityComponent,
        SubstructureComponent,
        PmoComponent,
        PythonComponent,
        CommandComponent,
        DockingComponent,
    ]
    return MappingProxyType({c.model_fields["type"].default: c for c in classes})


ComponentConfig = Annotated[
    QedComponent
    | SaComponent
    | PhyschemComponent
    | SimilarityComponent
    | SubstructureComponent
    | PmoComponent
    | PythonComponent
    | CommandComponent
    | DockingComponent,
    WrapValidator(tagged_validator(component_registry)),
]
