"""``/healthz`` (the process answers), ``/readyz`` (the database answers and is migrated), ``/metrics``."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select, text

from app.core.db import Database
from app.core.migrate import current_head
from app.core.models import Run

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    # async: answered on the event loop, so it keeps answering while the thread pool is busy.
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    db: Database = request.app.state.db
    try:
        with db.session() as session:
            session.execute(text("SELECT 1"))
            version = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as error:
        return JSONResponse({"status": "unavailable", "database": f"{type(error).__name__}: {error}"}, 503)
    head = current_head()
    if version != head:
        return JSONResponse(
            {
                "status": "unavailable",
                "database": f"schema at {version}, expected {head}; run `synflow db upgrade`",
            },
            503,
        )
    return JSONResponse({"status": "ok", "database": db.dialect, "schema": version})


class RunCollector:
    """Runs by status, read from the database at scrape time."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("synflow_runs", "Runs by status", labels=["status"])
        with self.db.session() as session:
            for status, count in session.execute(select(Run.status, func.count()).group_by(Run.status)):
                gauge.add_metric([status], count)
        yield gauge


def route_template(request: Request, prefixes: tuple[str, ...]) -> str:
    """The matched route's template with its full path (``/api/v1/runs/{run_id}``), so labels stay
    few; recent FastAPI versions leave an included router's prefix out of ``route.path``."""
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    if template is None:
        return "unmatched"
    path = request.scope.get("path", "")
    for prefix in prefixes:
        if path.startswith(prefix + "/") and not template.startswith(prefix + "/"):
            return prefix + template
    return template


def install_metrics(
    app: FastAPI, db: Database, dependencies: list[Any], prefixes: tuple[str, ...] = ()
) -> None:
    """Prometheus at ``/metrics``; ``prefixes`` are those the API routers are included under."""
    registry = CollectorRegistry()
    requests = Counter(
        "synflow_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
    )
    latency = Histogram("synflow_http_request_seconds", "HTTP request latency", ["route"], registry=registry)
    registry.register(RunCollector(db))

    @app.middleware("http")
    async def _measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = route_template(request, prefixes)
        requests.labels(request.method, route, str(response.status_code)).inc()
        latency.labels(route).observe(time.perf_counter() - start)
        return response

    @app.get("/metrics", tags=["health"], include_in_schema=False, dependencies=dependencies)
    def metrics() -> Response:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # several API processes: every one's counts
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            merged.register(RunCollector(db))
            return Response(generate_latest(merged), media_type=CONTENT_TYPE_LATEST)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
