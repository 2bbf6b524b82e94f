"""The FastAPI application factory; settings and the database are passed in, never global."""

from __future__ import annotations

import os

from fastapi import Depends, FastAPI

from app.api import catalogues, generators, health, molecules, reward_models, runs, tokens
from app.api.deps import require_token
from app.api.errors import install_error_handlers
from app.api.limits import BodySizeLimit, RefuseNulBytes
from app.chem.filters import ChemCache
from app.chem.render import make_svg_renderer
from app.core.db import Database
from app.core.settings import Settings
from app.pages import pages_router

API_PREFIX = "/api/v1"
# ``synflow serve --api-workers N`` (N > 1) hands its resolved settings to each API process this way
SERVE_SETTINGS_VARIABLE = "SYNFLOW_SERVE_SETTINGS_JSON"


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or Settings()
    db = db or Database.from_settings(settings)
    app = FastAPI(
        title="synflow",
        version="0.1.0",
        description="Design synthesisable molecules with their routes: runs, molecules, catalogues.",
    )
    app.state.settings, app.state.db = settings, db
    app.state.svg = make_svg_renderer(settings.svg_cache_size)
    app.state.chem_cache = ChemCache()
    install_error_handlers(app)
    protected = [Depends(require_token)]
    for router in (runs.router, molecules.router, catalogues.router, tokens.router, reward_models.router):
        app.include_router(router, prefix=API_PREFIX, dependencies=protected)
    app.include_router(generators.router, prefix=API_PREFIX, dependencies=protected)
    app.include_router(health.router)
    app.include_router(pages_router())
    health.install_metrics(app, db, protected, prefixes=(API_PREFIX,))
    # Added last, so outermost: bodies are bounded before any other middleware or route reads them.
    app.add_middleware(RefuseNulBytes)
    app.add_middleware(
        BodySizeLimit, max_body_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes
    )
    return app


def create_app_from_environment() -> FastAPI:
    """The factory each API process of ``synflow serve --api-workers N`` calls: the settings the
    parent resolved (command-line options included), or the environment's."""
    settings_json = os.environ.get(SERVE_SETTINGS_VARIABLE)
    return create_app(Settings.model_validate_json(settings_json) if settings_json else None)
