"""Builds a component's scorer from its config: the one module that knows schemas and scorers.

Like REINVENT 4's component registry: ``BUILDERS`` maps each component class to a function that
reads the config's fields and calls the scorer with plain settings (strings, numbers, tuples,
``DockingSettings``), so scorers never see a pydantic model and configs never import a scorer.
A new component type is a schema in ``components``, a scorer, and one entry here.

Every builder also gets the ``Placement``: where scorers that farm work out (docking) run, local
processes or Ray actors (``training.executor``). Scorers that compute in the caller ignore it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from synflow.rewards.alerts import AlertScorer
from synflow.rewards.assay import AssayModelScorer
from synflow.rewards.base import Scorer
from synflow.rewards.components import (
    AlertsComponent,
    AssayModelComponent,
    CommandComponent,
    ComponentBase,
    DockingComponent,
    PhyschemComponent,
    PmoComponent,
    PurchasableComponent,
    PythonComponent,
    QedComponent,
    SaComponent,
    SimilarityComponent,
    SubstructureComponent,
)
from synflow.rewards.docking import EXECUTORS, DockingScorer, DockingSettings, Executor
from synflow.rewards.molecular import (
    PhyschemScorer,
    QedScorer,
    SaScorer,
    SimilarityScorer,
    SubstructureScorer,
)
from synflow.rewards.plugins import CommandPlugin, PythonPlugin
from synflow.rewards.pmo import pmo_oracle
from synflow.rewards.purchasable import PurchasableScorer, open_catalogue


@dataclass(frozen=True)
class Placement:
    """Where docking runs: ``local`` worker processes, or ``ray`` actors on the cluster at
    ``ray_address`` (a local Ray instance when None). ``ray`` is imported only for ``ray``."""

    executor: Executor = "local"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, not {self.executor!r}")


LOCAL = Placement()


def build_qed(component: QedComponent, placement: Placement) -> Scorer:
    return QedScorer()


def build_sa(component: SaComponent, placement: Placement) -> Scorer:
    return SaScorer()


def build_physchem(component: PhyschemComponent, placement: Placement) -> Scorer:
    return PhyschemScorer(component.descriptor)


def build_similarity(component: SimilarityComponent, placement: Placement) -> Scorer:
    return SimilarityScorer(
        tuple(component.references), component.fingerprint, component.radius, component.n_bits,
        component.counts, component.aggregate,
    )


def build_substructure(component: SubstructureComponent, placement: Placement) -> Scorer:
    factor = 0.0 if component.mode == "zero" else component.penalty
    return SubstructureScorer(
        tuple(component.required), tuple(component.forbidden), factor, component.use_chirality,
    )


def build_pmo(component: PmoComponent, placement: Placement) -> Scorer:
    return pmo_oracle(component.task, component.legacy_isomers)


def build_python(component: PythonComponent, placement: Placement) -> Scorer:
    return PythonPlugin(
        component.label, component.target, dict(component.kwargs), component.timeout_s,
        component.molecule_timeout_s,
    )


def build_command(component: CommandComponent, placement: Placement) -> Scorer:
    return CommandPlugin(
        component.label, tuple(component.command), component.timeout_s, component.cwd,
        dict(component.env), component.molecule_timeout_s,
    )


def build_docking(component: DockingComponent, placement: Placement) -> Scorer:
    settings = DockingSettings(
        receptor=component.receptor, center=component.center, size=component.size,
        exhaustiveness=component.exhaustiveness, n_poses=component.n_poses, seed=component.seed,
    )
    return DockingScorer(
        settings, processes=component.processes, timeout_s=component.timeout_s,
        executor=placement.executor, ray_address=placement.ray_address, pose_dir=component.pose_dir,
    )


def build_assay_model(component: AssayModelComponent, placement: Placement) -> Scorer:
    return AssayModelScorer(component.model, component.uncertainty_bonus, component.sha256)


def build_alerts(component: AlertsComponent, placement: Placement) -> Scorer:
    return AlertScorer(tuple(component.catalogs), component.penalty)


def build_purchasable(component: PurchasableComponent, placement: Placement) -> Scorer:
    return PurchasableScorer(open_catalogue(component.source, component.match))


# Each builder takes exactly the component class it is listed under, and the placement.
Builder = Callable[[Any, Placement], Scorer]

BUILDERS: Mapping[type[ComponentBase], Builder] = MappingProxyType({
    QedComponent: build_qed,
    SaComponent: build_sa,
    PhyschemComponent: build_physchem,
    SimilarityComponent: build_similarity,
    SubstructureComponent: build_substructure,
    PmoComponent: build_pmo,
    PythonComponent: build_python,
    CommandComponent: build_command,
    DockingComponent: build_docking,
    AssayModelComponent: build_assay_model,
    AlertsComponent: build_alerts,
    PurchasableComponent: build_purchasable,
})


def build_scorer(component: ComponentBase, placement: Placement = LOCAL) -> Scorer:
    """The scorer for ``component`` (docking workers or actors start on first use, not here)."""
    try:
        builder = BUILDERS[type(component)]
    except KeyError:
        raise TypeError(f"no scorer is registered for {type(component).__name__}") from None
    return builder(component, placement)
