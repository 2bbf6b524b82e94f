"""Request dependencies: the app's settings and database, a session per request, bearer auth."""

from __future__ import annotations

import time
from collections.abc import Iterator

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.api.errors import ApiError
from app.core.auth import auth_enabled, signing_key, verify_scoped_token, verify_token
from app.core.db import Database
from app.core.settings import Settings
from app.runs.purchasability import BlockFlags


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def block_flags(request: Request) -> BlockFlags:
    """The process's open purchasability catalogues (made on first use), shared by the API's and
    the pages' exports."""
    state = request.app.state
    if getattr(state, "block_flags", None) is None:
        state.block_flags = BlockFlags()
    flags: BlockFlags = state.block_flags
    return flags


def get_session(db: Database = Depends(get_db)) -> Iterator[Session]:
    """A session per request. Depend on it with ``scope="function"``: the commit then runs when the
    endpoint returns, before the response is sent. With FastAPI's default (``"request"``) it ran
    after the body went out, so a client could read a 404 for the run its 201 had just created, and
    a failed commit lost a run already acknowledged. Streaming endpoints read in their own sessions."""
    with db.session() as session:
        yield session


# Every endpoint and dependency uses this one marker: FastAPI caches a dependency per scope, so a
# mixed scope would give a request two sessions (two pooled connections).
SESSION = Depends(get_session, scope="function")


def require_token(
    request: Request,
    settings: Settings = Depends(get_settings),
    session: Session = SESSION,
) -> None:
    # The request's own session (FastAPI caches the dependency), so a request holds one pooled
    # connection, not two: under load two per request exhausted the pool.
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not auth_enabled(session, settings):
        session.commit()  # hands the connection back; the endpoint takes one again if it needs one
        return
    if scheme.lower() == "bearer" and token and verify_token(session, settings, token.strip()):
        session.commit()
        return
    if _event_stream_token_ok(request, settings):
        session.commit()
        return
    # RFC 6750: a 401 names the scheme the client should use.
    raise ApiError(
        401,
        "authorization: a valid bearer token is required",
        "authorization",
        headers={"WWW-Authenticate": 'Bearer realm="synflow"'},
    )


def event_scope(run_id: str) -> str:
    return f"events:{run_id}"


def _event_stream_token_ok(request: Request, settings: Settings) -> bool:
    """A ``?token=`` from ``POST /runs/{id}/events-token`` opens that run's event stream, nothing else."""
    scoped = request.query_params.get("token")
    run_id = str(request.path_params.get("run_id", ""))
    if not scoped or not run_id or not request.url.path.endswith(f"/runs/{run_id}/events"):
        return False
    return verify_scoped_token(signing_key(settings), scoped, event_scope(run_id), time.time())
