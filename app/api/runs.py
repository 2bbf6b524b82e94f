"""``/api/v1/runs``: create, list, get, cancel, resume, delete, metrics, live events, sampling jobs."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.api.deps import SESSION, event_scope, get_db, get_settings
from app.api.errors import ApiError
from app.api.schemas import EventToken, MetricPoint, MetricsOut, Progress, RunOut, RunPage
from app.core.auth import issue_scoped_token, signing_key
from app.core.db import Database
from app.core.models import Molecule, Run, utcnow
from app.core.settings import Settings
from app.libraries.purchasable import resolve_catalogues
from app.libraries.reward_models import resolve_assay_models
from app.runs.configs import check_code_allowed, check_paths, check_storable, run_config_of
from app.runs.lifecycle import FINISHED, RunStatus, cancel, requeue
from app.runs.queries import latest_metrics, list_runs, metric_history
from synflow.config import RunConfig, SamplingConfig
from synflow.preferences import preference_vector

router = APIRouter(prefix="/runs", tags=["runs"])


def get_run(session: Session, run_id: str) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise ApiError(404, f"run_id: no run {run_id!r}", "run_id")
    return run


def _eta(run: Run) -> float | None:
    if run.status != RunStatus.RUNNING or not run.started_at or run.step <= 0 or run.total_steps <= run.step:
        return None
    elapsed = (utcnow() - run.started_at).total_seconds()
    done = run.step - (run.checkpoint_step or 0) if run.attempts > 1 else run.step
    return elapsed / max(done, 1) * (run.total_steps - run.step)


def run_out(run: Run, session: Session | None = None, detail: bool = False) -> RunOut:
    total = run.total_steps
    progress = Progress(
        step=run.step,
        total_steps=total,
        fraction=min(1.0, run.step / total) if total else 0.0,
        eta_seconds=_eta(run),
    )
    out = RunOut(
        id=run.id,
        name=run.name,
        kind=run.kind,
        parent_id=run.parent_id,
        status=RunStatus(run.status),
        progress=progress,
        error=run.error,
        stop_reason=run.stop_reason,
        device=run.device,
        worker_id=run.worker_id,
        attempts=run.attempts,
        cancel_requested=run.cancel_requested,
        checkpoint_step=run.checkpoint_step,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        heartbeat_at=run.heartbeat_at,
    )
    if detail and session is not None:
        out.latest_metrics = latest_metrics(session, run.id)
        out.molecules = session.scalar(select(func.count()).where(Molecule.run_id == run.id))
        out.config = run.config
    return out


@router.post("", status_code=201, response_model=RunOut)
def create_run(
    config: RunConfig,
    session: Session = SESSION,
    settings: Settings = Depends(get_settings),
) -> RunOut:
    """Queue a training run. The body is a RunConfig (validated once, here); every file it names must
    lie inside the server's data directory, and a ``python`` or ``command`` reward must be on the
    server's allowlist (403 otherwise). The stored config is the resolved one (preset values written
    out). An ``assay_model`` reward naming a stored model (``NAME`` or ``NAME@VERSION``) is pinned to
    that version: the stored config records ``reference`` (name@version), the file and its SHA-256."""
    config = resolve_assay_models(config, session)
    config = resolve_catalogues(config, session)  # a `purchasable` source: an uploaded catalogue's file
    check_paths(config, settings.data_dir)
    check_storable(config)
    _check_code(config, settings)
    stored = config.model_dump(mode="json")
    run = Run(name=config.name, kind="train", config=stored, total_steps=config.training.steps)
    session.add(run)
    session.flush()
    return run_out(run, session, detail=True)


@router.get("", response_model=RunPage)
def runs_index(
    status: RunStatus | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
    session: Session = SESSION,
) -> RunPage:
    runs, next_cursor = list_runs(session, status, limit, cursor)
    return RunPage(items=[run_out(r) for r in runs], next_cursor=next_cursor)


@router.get("/{run_id}", response_model=RunOut)
def run_detail(run_id: str, session: Session = SESSION) -> RunOut:
    return run_out(get_run(session, run_id), session, detail=True)


@router.post("/{run_id}/cancel", status_code=202, response_model=RunOut)
def cancel_run(run_id: str, session: Session = SESSION) -> RunOut:
    run = get_run(session, run_id)
    changed = cancel(session, run_id)
    session.refresh(run)
    if not changed:
        raise ApiError(409, f"status: run {run_id} already {run.status}", "status")
    return run_out(run)


def _check_code(config: RunConfig, settings: Settings) -> None:
    check_code_allowed(
        config, settings.allowed_python_targets, settings.allowed_commands, settings.ray_address
    )


@router.post("/{run_id}/resume", status_code=202, response_model=RunOut)
def resume_run(run_id: str, session: Session = SESSION, settings: Settings = Depends(get_settings)) -> RunOut:
    """Requeue a failed or cancelled run; its reward code is checked against today's allowlist."""
    run = get_run(session, run_id)
    if run.kind == "train":
        _check_code(run_config_of(run), settings)
    if not requeue(session, run_id):
        raise ApiError(
            409, f"status: only failed or cancelled runs resume; run {run_id} is {run.status}", "status"
        )
    session.refresh(run)
    return run_out(run)


@router.delete("/{run_id}", status_code=204)
def delete_run(
    run_id: str, session: Session = SESSION, settings: Settings = Depends(get_settings)
) -> Response:
    run = get_run(session, run_id)
    if run.status == RunStatus.RUNNING:
        raise ApiError(409, f"status: run {run_id} is running; cancel it first", "status")
    session.delete(run)
    session.flush()
    shutil.rmtree(settings.checkpoint_root() / run_id, ignore_errors=True)
    shutil.rmtree(settings.generator_root() / run_id, ignore_errors=True)  # an imported run's reward files
    return Response(status_code=204)


@router.get("/{run_id}/metrics", response_model=MetricsOut)
def run_metrics(
    run_id: str,
    name: list[str] = Query(default_factory=list, description="metric names; all when omitted"),
    max_points: int | None = Query(None, ge=2, le=100_000, description="downsample each series"),
    session: Session = SESSION,
) -> MetricsOut:
    get_run(session, run_id)
    series = metric_history(session, run_id, name, max_points)
    return MetricsOut(
        run_id=run_id,
        metrics={key: [MetricPoint(step=s, value=v) for s, v in points] for key, points in series.items()},
    )


@router.post("/{run_id}/sample", status_code=201, response_model=RunOut)
def sample_from_run(
    run_id: str,
    body: SamplingConfig = Body(default_factory=SamplingConfig),
    session: Session = SESSION,
    settings: Settings = Depends(get_settings),
) -> RunOut:
    """Queue a sampling job: ``count`` molecules drawn from the run's final checkpoint (and scored by
    its reward, whose code is checked against today's allowlist). ``preference`` (a run trained with
    ``conditioning.preferences``): the weights to draw at, checked here against the run's preference
    components (422 naming ``preference`` or ``preference.<name>``, also for an unconditioned run)."""
    parent = get_run(session, run_id)
    if parent.kind == "train":
        parent_config = run_config_of(parent)
        _check_code(parent_config, settings)
        preference_vector(parent_config, body.preference)  # the worker's own check, before queueing
    if parent.kind != "train" or parent.status != RunStatus.SUCCEEDED or parent.checkpoint_path is None:
        raise ApiError(
            409,
            f"run_id: run {run_id} has no final checkpoint to sample from (status {parent.status})",
            "run_id",
        )
    job = Run(
        name=f"{parent.name} sample",
        kind="sample",
        parent_id=parent.id,
        total_steps=1,
        config=body.model_dump(mode="json"),
    )
    session.add(job)
    session.flush()
    return run_out(job, session, detail=True)


def _snapshot(db: Database, run_id: str) -> dict[str, Any] | None:
    with db.session() as session:
        run = session.get(Run, run_id)
        return (
            None
            if run is None
            else json.loads(run_out(run, session, detail=True).model_dump_json(exclude={"config"}))
        )


@router.post("/{run_id}/events-token", response_model=EventToken)
def events_token(
    run_id: str, session: Session = SESSION, settings: Settings = Depends(get_settings)
) -> EventToken:
    """A short-lived token that opens this run's event stream (and nothing else) from a browser."""
    get_run(session, run_id)
    seconds = settings.event_token_seconds
    token = issue_scoped_token(signing_key(settings), event_scope(run_id), seconds, time.time())
    return EventToken(token=token, expires_in_s=seconds)


@router.get("/{run_id}/events")
async def run_events(
    run_id: str,
    interval: float = Query(0.5, ge=0.1, le=10),
    db: Database = Depends(get_db),
) -> StreamingResponse:
    """Server-sent events: ``progress`` whenever the run changes, then ``end`` once it finishes. With
    auth on, a bearer header or ``?token=`` from ``POST /runs/{id}/events-token``."""
    if await asyncio.to_thread(_snapshot, db, run_id) is None:
        raise ApiError(404, f"run_id: no run {run_id!r}", "run_id")
    return StreamingResponse(
        _event_stream(db, run_id, interval),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _event_stream(db: Database, run_id: str, interval: float) -> AsyncIterator[str]:
    last: str | None = None
    while True:
        snap = await asyncio.to_thread(_snapshot, db, run_id)
        if snap is None:
            yield 'event: end\ndata: {"status": "deleted"}\n\n'
            return
        data = json.dumps(snap)
        if data != last:
            yield f"event: progress\ndata: {data}\n\n"
            last = data
        if snap["status"] in FINISHED:
            yield f"event: end\ndata: {json.dumps({'status': snap['status']})}\n\n"
            return
        await asyncio.sleep(interval)
