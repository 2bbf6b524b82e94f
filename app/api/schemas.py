"""Pydantic request/response schemas of the REST API (kept apart from the ORM models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.runs.lifecycle import RunStatus


class ErrorItem(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    message: str
    errors: list[ErrorItem] = Field(default_factory=list)


class Progress(BaseModel):
    step: int
    total_steps: int
    fraction: float
    eta_seconds: float | None = None


class RunOut(BaseModel):
    id: str
    name: str
    kind: str
    parent_id: str | None
    status: RunStatus
    progress: Progress
    error: str | None
    stop_reason: str | None = Field(None, description="why a run ended early, e.g. 'oracle budget spent'")
    device: str | None
    worker_id: str | None
    attempts: int
    cancel_requested: bool
    checkpoint_step: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    molecules: int | None = None
    latest_metrics: dict[str, float | None] = Field(default_factory=dict)
    config: dict[str, Any] | None = None


class EventToken(BaseModel):
    """Opens one run's event stream as ``GET /runs/{id}/events?token=…`` within ``expires_in_s``
    (an EventSource cannot send an Authorization header); checked when the stream opens."""

    token: str
    expires_in_s: float


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None


class MetricPoint(BaseModel):
    step: int
    value: float | None


class MetricsOut(BaseModel):
    run_id: str
    metrics: dict[str, list[MetricPoint]]


class MoleculeOut(BaseModel):
    id: int
    run_id: str
    smiles: str
    inchikey: str | None
    reward: float
    scores: dict[str, float | None]
    route: dict[str, Any] | None
    step: int
    times_sampled: int
    first_seen: datetime
    similarity: float | None = None
    error: str | None = None  # why a reward plugin could not score it (reward is then the floor)
    alerts: list[str] | None = Field(
        None, description="names of the structural alerts it matches (null: no alerts component ran)"
    )
    purchasable: bool | None = Field(
        None, description="in the purchasability catalogue (null: no purchasability component ran)"
    )
    pose_url: str | None = Field(
        None, description="its best docked pose (SDF), when a docking component kept one"
    )


class MoleculePageOut(BaseModel):
    items: list[MoleculeOut]
    next_cursor: str | None
    scanned: int


class ParetoPoint(BaseModel):
    id: int = Field(description="the molecule's id")
    values: list[float] = Field(description="its scores, in the order of `scores`")


class ParetoOut(BaseModel):
    """The non-dominated molecules of a run over chosen score components, every one maximised."""

    run_id: str
    scores: list[str] = Field(description="the score components compared (all maximised), in this order")
    available: list[str] = Field(description="every score component of the run's reward `scores` may name")
    items: list[MoleculeOut] = Field(
        description="non-dominated molecules in descending order of the first score (ties: the next "
        "score, then id); with more than `limit`, `limit` of them spread evenly along that order"
    )
    front_size: int = Field(description="non-dominated molecules in all (`items` holds at most `limit`)")
    considered: int = Field(description="molecules with a finite value for every chosen score")
    excluded: int = Field(description="molecules left out: a chosen score missing, null or NaN")
    sample: list[ParetoPoint] = Field(
        default_factory=list,
        description="`sample` comparable molecules drawn uniformly (a fixed draw per molecule id), for a "
        "scatter plot of the whole run",
    )


class LibraryOut(BaseModel):
    id: int
    name: str
    kind: str
    bundled: bool
    size: int
    rejected: int
    path: str | None = None
    created_at: datetime


class RejectedRow(BaseModel):
    line: int | None
    smiles: str | None
    reason: str


class LibraryUploadOut(LibraryOut):
    rejected_rows: list[RejectedRow]


class DockedPoseOut(BaseModel):
    """A molecule's kept docking pose: where to fetch it and the receptor, and the box it was docked in."""

    molecule_id: int
    pose_url: str = Field(description="the pose (SDF, 3-D, hydrogens included)")
    receptor_url: str | None = Field(description="the receptor it was docked in (PDBQT); null if missing")
    receptor_name: str | None = Field(None, description="the receptor file's name in the run's config")
    center: tuple[float, float, float] | None = Field(None, description="docking box centre (Å)")
    size: tuple[float, float, float] | None = Field(None, description="docking box edges (Å)")
    affinity: float | None = Field(None, description="Vina's affinity of this pose (kcal/mol)")
    exhaustiveness: int | None = None
    seed: int | None = None


class CvMetricsOut(BaseModel):
    """Out-of-fold metrics of one candidate estimator (seeded k-fold cross-validation)."""

    rmse: float
    mae: float
    r2: float
    spearman: float | None


class RewardModelOut(BaseModel):
    """One stored version of a reward model fitted to uploaded measurements."""

    name: str
    version: int
    reference: str = Field(description="`name@version`: what a run's `assay_model` component is pinned to")
    created_at: datetime
    n_rows: int = Field(description="data rows read, rejected ones included")
    n_molecules: int = Field(description="distinct molecules fitted on (duplicates averaged)")
    n_duplicates: int = Field(description="rows averaged into an earlier row of the same molecule")
    n_rejected: int
    direction: str = Field(description="`higher` or `lower` values are better")
    estimator: str = Field(description="the chosen estimator: `random_forest` or `gaussian_process`")
    cv: dict[str, CvMetricsOut] = Field(description="cross-validated metrics of every candidate")
    folds: int
    value_min: float
    value_max: float
    transform: dict[str, float] = Field(
        description="the values scored 0.05 and 0.95 (`low`, `high`; mirrored when lower is better)"
    )
    smiles_column: str
    value_column: str
    path: str = Field(description="the model file (what a resolved run config names)")
    sha256: str
    versions: int | None = Field(None, description="number of versions of this name (in the list)")


class RewardModelUploadOut(RewardModelOut):
    rejected_rows: list[RejectedRow] = Field(description="unusable rows, by CSV line (the first 1,000)")


class BuildingBlockFlagOut(BaseModel):
    """One building block of a molecule's route, flagged with the run's purchasability catalogue."""

    step: int = Field(description="position of the step in `route.steps` that uses it")
    smiles: str | None
    id: str | None = Field(description="the block's ID in its library")
    purchasable: bool | None = Field(
        description="in the run's catalogue (null: the run has no `purchasable` component, or its "
        "catalogue cannot be opened any more)"
    )


class BuildingBlocksOut(BaseModel):
    molecule_id: int
    source: str | None = Field(description="the catalogue the blocks were checked against (the run's first "
                               "`purchasable` component: its name, or its file when it is no uploaded "
                               "catalogue); null when the run has none")
    items: list[BuildingBlockFlagOut]
