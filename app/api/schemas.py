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


class MoleculePageOut(BaseModel):
    items: list[MoleculeOut]
    next_cursor: str | None
    scanned: int


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
