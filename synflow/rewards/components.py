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
    pose_dir: Path | None = Field(
        None,
        description="where each docked molecule's best pose (SDF) is kept, named by its content; unset: "
        "not kept (the service uses DATA_DIR/poses, `synflow train` OUT/poses)",
    )

    def effective_transform(self) -> TransformConfig:
        return self.transform or DEFAULT_DOCKING_TRANSFORM


# A stored reward model's name, optionally pinned to a version: `solubility`, `solubility@2`.
MODEL_REFERENCE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,99})(@(?P<version>[1-9][0-9]{0,8}))?$")


def is_model_reference(model: str) -> bool:
    """Whether ``model`` names a stored reward model (``name`` or ``name@version``), not a file."""
    return MODEL_REFERENCE.match(model) is not None and not model.endswith(".npz")


class AssayModelComponent(ComponentBase):
    """A model fitted to your own measurements (``POST /api/v1/reward-models``, or
    ``synflow.rewards.assay``): the predicted value mapped to [0, 1] by the transform fitted with
    the model (its direction included). With ``uncertainty_bonus`` κ > 0 the score is
    ``clip(t(μ) + κ·σ_t, 0, 1)``: optimism where the model is unsure (an upper confidence bound)."""

    type: Literal["assay_model"] = "assay_model"
    model: str = Field(
        min_length=1,
        max_length=4096,
        description="the stored model file (.npz); through the service a model's name or `name@version` "
        "(the latest version when none is given), resolved when the run is created",
    )
    uncertainty_bonus: float = Field(0.0, ge=0.0, le=100.0, description="κ: weight of the predicted std")
    reference: str | None = Field(
        None, description="`name@version` the service resolved `model` to (written by the service)"
    )
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="the model file's SHA-256: a changed file is refused"
    )

    def default_name(self) -> str:
        if self.reference:
            return self.reference.split("@", 1)[0]
        if is_model_reference(self.model):
            return self.model.split("@", 1)[0]
        return Path(self.model).stem


AlertCatalog = Literal[
    "PAINS_A", "PAINS_B", "PAINS_C", "PAINS", "BRENK", "NIH", "ZINC",
    "CHEMBL", "CHEMBL_BMS", "CHEMBL_LINT", "CHEMBL_MLSMR",
]


def _default_alert_catalogs() -> list[AlertCatalog]:
    return ["PAINS_A", "PAINS_B", "PAINS_C", "BRENK", "NIH"]


class AlertsComponent(ComponentBase):
    """Structural alerts from RDKit's FilterCatalog (PAINS A/B/C, Brenk, NIH, ...): the value is
    ``penalty ** n`` for n distinct alerts matched, so 1 without alerts; with the default penalty 0
    any alert gives 0 (a hard filter), with 0 < penalty < 1 each alert multiplies by it. The matched
    alerts (``CATALOG: name``) are stored with the molecule. A filter unless `role` says otherwise."""

    type: Literal["alerts"] = "alerts"
    role: Literal["score", "filter"] = "filter"
    catalogs: list[AlertCatalog] = Field(
        default_factory=_default_alert_catalogs,
        min_length=1,
        description="RDKit FilterCatalog catalogues; PAINS is PAINS_A + PAINS_B + PAINS_C",
    )
    penalty: float = Field(0.0, ge=0.0, le=1.0, description="factor per alert (0: any alert gives 0)")

    @field_validator("catalogs")
    @classmethod
    def _distinct(cls, catalogs: list[str]) -> list[str]:
        if len(set(catalogs)) != len(catalogs):
            raise ValueError("list each catalogue once")
        if "PAINS" in catalogs and {"PAINS_A", "PAINS_B", "PAINS_C"} & set(catalogs):
            raise ValueError("PAINS already holds PAINS_A, PAINS_B and PAINS_C: list either")
        return catalogs


BUNDLED_PURCHASABILITY = ("zinc-instock-mini",)


class PurchasableComponent(ComponentBase):
    """Purchasability: 1 if the molecule is in the catalogue, else 0, stored with the molecule.
    `source` `zinc-instock-mini` is molbloom's bundled Bloom filter of ZINC20's in-stock molecules
    ("probably purchasable": about 7 % false positives, measured); any other value is a molecule
    file (.smi/.csv/.sdf, optionally .gz) matched exactly (`match`: InChIKey or canonical SMILES of
    the largest fragment, neutralised); through the service, the name of an uploaded catalogue
    (`POST /api/v1/catalogues`), resolved to its file when the run is created."""

    type: Literal["purchasable"] = "purchasable"
    source: str = Field(
        "zinc-instock-mini", min_length=1, max_length=4096,
        description="`zinc-instock-mini`, a catalogue file, or (service) an uploaded catalogue's name",
    )
    match: Literal["inchikey", "smiles"] = Field(
        "inchikey", description="how a catalogue file is matched (ignored for the bloom filter)"
    )

    @field_validator("source")
    @classmethod
    def _offline(cls, source: str) -> str:
        if source in ("zinc20", "zinc-instock", "surechembl"):
            raise ValueError(
                f"molbloom's {source!r} filter needs a download, which synflow never does; use "
                "zinc-instock-mini or a catalogue file"
            )
        return source

    def is_bundled(self) -> bool:
        return self.source in BUNDLED_PURCHASABILITY


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
        AssayModelComponent,
        AlertsComponent,
        PurchasableComponent,
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
    | DockingComponent
    | AssayModelComponent
    | AlertsComponent
    | PurchasableComponent,
    WrapValidator(tagged_validator(component_registry)),
]
