"""``/api/v1/runs``: create, list, get, cancel, resume, delete, metrics, live events, sampling jobs."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.api.deps import get_db, get_session, get_settings
from app.api.errors import ApiError
from app.api.schemas import MetricPoint, MetricsOut, Progress, RunOut, RunPage, RunStatus, SampleCreate
from app.chem.parsing import ChemQueryError, check_smarts, check_smiles
from app.core.db import Database
from app.core.models import FINISHED_STATUSES, Molecule, Run, utcnow
from app.core.settings import Settings
from app.runs.queries import latest_metrics, list_runs, metric_history
from app.runs.training import ConfigInvalid, total_steps, validate_run_config

router = APIRouter(prefix="/runs", tags=["runs"])


def get_run(session: Session, run_id: str) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise ApiError(404, f"run_id: no run {run_id!r}", "run_id")
    return run


def _eta(run: Run) -> float | None:
    if run.status != "running" or not run.started_at or run.step <= 0 or run.total_steps <= run.step:
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
        status=run.status,
        progress=progress,
        error=run.error,
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


def _split_body(body: Any) -> tuple[dict[str, Any], str | None, str]:
    """The body is ``{"config": RunConfig, "name"?}`` or the bare RunConfig."""
    if not isinstance(body, dict):
        raise ConfigInvalid([("(body)", 'expected a JSON object: a RunConfig or {"config": RunConfig}')])
    if isinstance(body.get("config"), dict) and "reward" not in body:
        extra = set(body) - {"config", "name"}
        if extra:
            raise ConfigInvalid([(key, "Extra inputs are not permitted") for key in sorted(extra)])
        return body["config"], body.get("name"), "config."
    return body, None, ""


_FILE_FIELDS = ("building_blocks", "templates", "cache_dir")
_CHEM_FIELDS = {"references": check_smiles, "required": check_smarts, "forbidden": check_smarts}


def nul_fields(value: Any, path: str = "") -> list[str]:
    """Where a JSON value holds a NUL character (PostgreSQL JSONB and text refuse them)."""
    if isinstance(value, str):
        return [path or "(body)"] if "\x00" in value else []
    if isinstance(value, dict):
        found = [f"{path}.{k}".lstrip(".") for k in value if isinstance(k, str) and "\x00" in k]
        for key, item in value.items():
            found += nul_fields(item, f"{path}.{key}".lstrip("."))
        return found
    if isinstance(value, list):
        return [f for i, item in enumerate(value) for f in nul_fields(item, f"{path}.{i}".lstrip("."))]
    return []


def screen_config(raw: dict[str, Any], settings: Settings) -> None:
    """Checks the RunConfig schema cannot make: files stay inside the data directory (a run must not
    read or write elsewhere on the server), and reward chemistry (reference SMILES, SMARTS filters)
    stays within ``app.chem`` limits before RDKit parses it while validating."""
    errors: list[tuple[str, str]] = []
    environment = raw.get("environment")
    root = settings.data_dir.resolve()
    for key in _FILE_FIELDS if isinstance(environment, dict) else ():
        value = environment.get(key)
        if isinstance(value, str) and not _inside(value, root):
            errors.append((f"environment.{key}", f"must be a path inside the data directory ({root})"))
    reward = raw.get("reward")
    components = reward.get("components") if isinstance(reward, dict) else None
    for i, component in enumerate(components if isinstance(components, list) else []):
        for key, check in _CHEM_FIELDS.items():
            values = component.get(key) if isinstance(component, dict) else None
            for j, text in enumerate(values if isinstance(values, list) else []):
                try:
                    check(text) if isinstance(text, str) else None
                except ChemQueryError as error:
                    errors.append((f"reward.components.{i}.{key}.{j}", str(error)))
    if errors:
        raise ConfigInvalid(errors)


def _inside(value: str, root: Path) -> bool:
    """``value`` resolved (symlinks followed, ``..`` collapsed) lies under ``root``."""
    if "\0" in value:
        return False
    try:
        return Path(value).resolve().is_relative_to(root)
    except (OSError, RuntimeError, ValueError):
        return False


@router.post("", status_code=201, response_model=RunOut)
def create_run(
    body: Any = Body(...),
    session: Session = Depends(get_session),
    settings: Settings = Depends(get_settings),
) -> RunOut:
    bad = nul_fields(body)
    if bad:
        raise ConfigInvalid([(field, "must not contain NUL characters") for field in bad[:20]])
    raw, name, prefix = _split_body(body)
    try:
        screen_config(raw, settings)
        config = validate_run_config(raw)
    except ConfigInvalid as error:
        raise ConfigInvalid([(prefix + field, msg) for field, msg in error.errors]) from None
    run = Run(
        name=name or config.get("name") or "run", kind="train", config=config, total_steps=total_steps(config)
    )
    session.add(run)
    session.flush()
    return run_out(run, session, detail=True)


@router.get("", response_model=RunPage)
def runs_index(
    status: RunStatus | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
    session: Session = Depends(get_session),
) -> RunPage:
    runs, next_cursor = list_runs(session, status, limit, cursor)
    return RunPage(items=[run_out(r) for r in runs], next_cursor=next_cursor)


@router.get("/{run_id}", response_model=RunOut)
def run_detail(run_id: str, session: Session = Depends(get_session)) -> RunOut:
    return run_out(get_run(session, run_id), session, detail=True)


@router.post("/{run_id}/cancel", status_code=202, response_model=RunOut)
def cancel_run(run_id: str, session: Session = Depends(get_session)) -> RunOut:
    run = get_run(session, run_id)
    # Conditional updates, not read-then-write: a worker may claim or finish the run in between.
    now = utcnow()
    changed = session.execute(
        update(Run).where(Run.id == run_id, Run.status == "queued")
        .values(status="cancelled", finished_at=now, cancel_requested=True, updated_at=now)
    ).rowcount or session.execute(
        update(Run).where(Run.id == run_id, Run.status == "running")
        .values(cancel_requested=True, updated_at=now)
    ).rowcount
    session.refresh(run)
    if not changed:
        raise ApiError(409, f"status: run {run_id} already {run.status}", "status")
    return run_out(run)


@router.post("/{run_id}/resume", status_code=202, response_model=RunOut)
def resume_run(run_id: str, session: Session = Depends(get_session)) -> RunOut:
    run = get_run(session, run_id)
    if run.status not in ("failed", "cancelled"):
        raise ApiError(
            409, f"status: only failed or cancelled runs resume; run {run_id} is {run.status}", "status"
        )
    run.status, run.cancel_requested, run.error = "queued", False, None
    run.finished_at, run.worker_id, run.lease_expires_at, run.attempts = None, None, None, 0
    session.flush()
    return run_out(run)


@router.delete("/{run_id}", status_code=204)
def delete_run(
    run_id: str, session: Session = Depends(get_session), settings: Settings = Depends(get_settings)
) -> Response:
    run = get_run(session, run_id)
    if run.status == "running":
        raise ApiError(409, f"status: run {run_id} is running; cancel it first", "status")
    session.delete(run)
    session.flush()
    shutil.rmtree(settings.checkpoint_root() / run_id, ignore_errors=True)
    return Response(status_code=204)


@router.get("/{run_id}/metrics", response_model=MetricsOut)
def run_metrics(
    run_id: str,
    name: list[str] = Query(default_factory=list, description="metric names; all when omitted"),
    max_points: int | None = Query(None, ge=2, le=100_000, description="downsample each series"),
    session: Session = Depends(get_session),
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
    body: SampleCreate = Body(default_factory=SampleCreate),
    session: Session = Depends(get_session),
) -> RunOut:
    parent = get_run(session, run_id)
    if parent.kind != "train" or parent.status != "succeeded" or parent.checkpoint_path is None:
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
        config={"run_config": parent.config, "count": body.count},
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


@router.get("/{run_id}/events")
async def run_events(
    run_id: str,
    interval: float = Query(0.5, ge=0.1, le=10),
    db: Database = Depends(get_db),
) -> StreamingResponse:
    """Server-sent events: ``progress`` whenever the run changes, then ``end`` once it finishes."""
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
        if snap["status"] in FINISHED_STATUSES:
            yield f"event: end\ndata: {json.dumps({'status': snap['status']})}\n\n"
            return
        await asyncio.sleep(interval)
