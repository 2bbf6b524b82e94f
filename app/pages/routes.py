"""The pages router: HTML shells rendered by Jinja2, static CSS/JS, depictions, selection exports.

Data comes from the REST API in the browser; the only server-side reads here are the existence
checks that turn an unknown run or molecule into a real 404 page, and the selection export.
"""

from __future__ import annotations

import mimetypes
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from app.api.deps import SESSION, block_flags, get_db, get_settings, require_token
from app.chem.parsing import ChemQueryError
from app.core.db import Database
from app.core.models import Molecule, Run
from app.core.settings import Settings
from app.pages.selection import SELECTION_MEDIA_TYPES, SelectionFormat, parse_ids, selection_stream
from app.runs.poses import run_pose_dir
from app.runs.purchasability import BlockFlags
from synflow.config import DIVERGENCE_NAMES

STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


def _package_dir() -> Path:
    return Path(str(resources.files("app.pages")))


def _divergences() -> list[str]:
    return list(DIVERGENCE_NAMES)  # from the config: the API process never imports torch


def pages_router() -> APIRouter:
    """Build the router; templates are loaded from the package directory on first render."""
    root = _package_dir()
    templates = Jinja2Templates(directory=str(root / "templates"))
    static_dir = root / "static"
    router = APIRouter(include_in_schema=False)

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=status)

    def not_found(request: Request, what: str) -> HTMLResponse:
        return page(request, "error.html", 404, title="Not found", message=what)

    @router.get("/", response_class=HTMLResponse)
    def runs_page(request: Request) -> HTMLResponse:
        return page(request, "runs.html", title="Runs")

    @router.get("/reward-models", response_class=HTMLResponse)
    def reward_models_page(request: Request) -> HTMLResponse:
        return page(request, "reward_models.html", title="Reward models")

    @router.get("/runs/new", response_class=HTMLResponse)
    def new_run_page(request: Request) -> HTMLResponse:
        return page(request, "new_run.html", title="New run", divergences=_divergences())

    @router.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: str, session: Session = SESSION) -> HTMLResponse:
        run = session.get(Run, run_id)
        if run is None:
            return not_found(request, f"There is no run {run_id!r}.")
        return page(request, "run.html", title=f"Run {run.name}", run_id=run.id, run_name=run.name)

    @router.get("/runs/{run_id}/molecules", response_class=HTMLResponse)
    def molecules_page(request: Request, run_id: str, session: Session = SESSION) -> HTMLResponse:
        run = session.get(Run, run_id)
        if run is None:
            return not_found(request, f"There is no run {run_id!r}.")
        return page(
            request, "molecules.html", title=f"Molecules of {run.name}", run_id=run.id, run_name=run.name
        )

    # The selection export returns run data, so it needs a token like the REST API once auth is on.
    @router.post("/runs/{run_id}/molecules/export", dependencies=[Depends(require_token)])
    def export_selection(
        run_id: str,
        ids: str = Form(..., description="comma-separated molecule ids"),
        format: SelectionFormat = Form("csv"),
        session: Session = SESSION,
        db: Database = Depends(get_db),
        settings: Settings = Depends(get_settings),
        flags: BlockFlags = Depends(block_flags),
    ) -> Response:
        run = session.get(Run, run_id)
        if run is None:
            return Response(f"no run {run_id!r}", status_code=404, media_type="text/plain")
        try:
            wanted = parse_ids(ids)
        except ValueError as error:
            return Response(f"ids: {error}", status_code=422, media_type="text/plain")
        pose_dir = run_pose_dir(session, run, settings.data_dir)  # SDF: docked poses as 3-D blocks
        session.commit()  # the export reads in its own short sessions; hold no connection meanwhile
        headers = {"Content-Disposition": f'attachment; filename="{run_id}-selection.{format}"'}
        body = selection_stream(db, run_id, wanted, format, pose_dir, flags)
        return StreamingResponse(body, media_type=SELECTION_MEDIA_TYPES[format], headers=headers)

    @router.get("/molecules/{molecule_id}", response_class=HTMLResponse)
    def molecule_page(request: Request, molecule_id: int, session: Session = SESSION) -> HTMLResponse:
        mol = session.get(Molecule, molecule_id)
        if mol is None:
            return not_found(request, f"There is no molecule {molecule_id}.")
        return page(
            request, "molecule.html", title=f"Molecule {mol.id}", molecule_id=mol.id, run_id=mol.run_id
        )

    @router.get("/pages/depict.svg")
    def depict(
        request: Request,
        smiles: str = Query(..., max_length=2000),
        width: int = Query(220, ge=50, le=1200),
        height: int = Query(160, ge=50, le=1200),
    ) -> Response:
        """Depicts building blocks and intermediates of a route (they have no molecule id)."""
        try:
            svg = request.app.state.svg(smiles, width, height)
        except ChemQueryError as error:
            return Response(str(error), status_code=422, media_type="text/plain")
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})

    @router.get("/pages/static/{name}")
    def static(name: str) -> Response:
        path = static_dir / name
        suffix = path.suffix
        if "/" in name or name.startswith(".") or suffix not in STATIC_TYPES or not path.is_file():
            return Response("not found", status_code=404, media_type="text/plain")
        media = STATIC_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(path.read_bytes(), media_type=media, headers={"Cache-Control": "no-cache"})

    @router.get("/pages/static/vendor/{name}")
    def vendor(name: str) -> Response:
        """Third-party libraries kept in the repository (static/vendor/README.md: versions, licences)."""
        path = static_dir / "vendor" / name
        if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
            return Response("not found", status_code=404, media_type="text/plain")
        # a vendored file has its version in its name (README.md), so caching it is safe
        headers = {"Cache-Control": "public, max-age=86400"}
        return Response(path.read_bytes(), media_type=STATIC_TYPES[path.suffix], headers=headers)

    return router
