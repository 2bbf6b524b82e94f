"""With tokens configured every route except the public ones (enumerated from ``app.routes``, not a
hand-written list) refuses a missing, a wrong and a revoked token and accepts a valid one; tokens
are stored only as SHA-256 digests and compared with ``hmac.compare_digest``; revocation works from
the API and the command line, and revoking the last token does not switch auth off."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from starlette.routing import Route
from typer.testing import CliRunner

from app.core.auth import create_token, hash_token, verify_token
from app.core.models import ApiToken, Run
from app.main import create_app
from tests.app.security.conftest import QED_CONFIG, Seeded

# Public on purpose: probes, the API description, and the HTML shells and assets of the pages, which
# carry no run data (the browser fetches that from the API with the token kept in localStorage).
PUBLIC = {
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/",
    "/runs/new",
    "/reward-models",  # the page shell; its data comes from the protected /api/v1/reward-models
    "/runs/{run_id}",
    "/runs/{run_id}/molecules",
    "/molecules/{molecule_id}",
    "/pages/depict.svg",
    "/pages/static/{name}",
    "/pages/static/vendor/{name}",  # vendored libraries (3Dmol.js), no run data
}


def _walk(routes: list[object], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        if isinstance(route, APIRoute | Route):
            path = route.path if route.path.startswith(prefix) else prefix + route.path
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, path
        elif hasattr(route, "original_router"):  # FastAPI >= 0.16x keeps included routers whole
            context = getattr(route, "include_context", None)
            yield from _walk(route.original_router.routes, prefix + getattr(context, "prefix", ""))


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route from ``app.routes``, API prefixes included; checked
    against the OpenAPI schema so a route the walk misses fails the test."""
    found = sorted(set(_walk(app.routes)))
    documented = {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}
    assert documented <= set(found), documented - set(found)
    return found


@pytest.fixture
def secured(seeded: Seeded) -> Iterator[tuple[TestClient, Seeded, dict[str, str]]]:
    with seeded.db.session() as session:
        valid, revoked = create_token(session, "valid"), create_token(session, "revoked")
    with TestClient(create_app(seeded.settings, seeded.db), raise_server_exceptions=False) as client:
        with seeded.db.session() as session:
            revoked_id = session.scalar(select(ApiToken.id).where(ApiToken.name == "revoked"))
        answer = client.post(f"/api/v1/tokens/{revoked_id}/revoke", headers=_bearer(valid))
        assert answer.status_code == 200 and answer.json()["revoked"] is True
        yield client, seeded, {"valid": valid, "revoked": revoked, "revoked_id": str(revoked_id)}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _url(template: str, seeded: Seeded, tokens: dict[str, str], method: str) -> str:
    run_id = seeded.run_id
    if method == "DELETE":  # deleting the seeded run would hide the routes tested after it
        with seeded.db.session() as session:
            run = Run(config=QED_CONFIG, total_steps=4, status="failed")
            session.add(run)
            session.flush()
            run_id = run.id
    values = {
        "run_id": run_id,
        "molecule_id": str(seeded.molecule_ids[0]),
        "token_id": tokens["revoked_id"],
        "name": "app.css",
        "version": "1",
    }
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], template)


def test_every_non_public_route_needs_a_valid_token(
    secured: tuple[TestClient, Seeded, dict[str, str]],
) -> None:
    client, seeded, tokens = secured
    routes = _routes(client.app)
    protected = [(m, p) for m, p in routes if p not in PUBLIC]
    assert len(protected) >= 15 and ("GET", "/metrics") in protected
    assert {p for _, p in routes} >= PUBLIC - {"/docs/oauth2-redirect"}  # the allow-list is not stale
    refused = {
        "missing": {},
        "wrong": _bearer("sfk_" + "x" * 43),
        "revoked": _bearer(tokens["revoked"]),
        "malformed": {"Authorization": tokens["valid"]},  # no "Bearer" scheme
    }
    for method, template in protected:
        url = _url(template, seeded, tokens, method)
        for label, headers in refused.items():
            answer = client.request(method, url, headers=headers)
            assert answer.status_code in (401, 403), (
                f"{method} {url} with {label} token: {answer.status_code}"
            )
        answer = client.request(method, url, headers=_bearer(tokens["valid"]))
        assert answer.status_code not in (401, 403) and answer.status_code < 500, (method, url, answer.text)
    for method, template in [(m, p) for m, p in routes if p in PUBLIC]:
        answer = client.request(method, _url(template, seeded, tokens, method))
        assert answer.status_code not in (401, 403), (method, template)


def test_tokens_are_stored_hashed(secured: tuple[TestClient, Seeded, dict[str, str]]) -> None:
    _, seeded, tokens = secured
    with seeded.db.session() as session:
        rows = session.execute(text("SELECT * FROM api_tokens")).all()
        stored = " ".join(str(value) for row in rows for value in row)
        digests = set(session.scalars(select(ApiToken.token_hash)))
    for token in (tokens["valid"], tokens["revoked"]):
        assert token not in stored and token[10:] not in stored  # only the shown 10-char prefix
        assert hashlib.sha256(token.encode()).hexdigest() in digests


def test_tokens_are_compared_in_constant_time(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    import app.core.auth as auth

    compared: list[tuple[str, str]] = []
    real = auth.hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    settings = seeded.settings.model_copy(update={"api_tokens": ["from-env"]})
    with seeded.db.session() as session:
        token = create_token(session, "t")
    with seeded.db.session() as session:
        assert verify_token(session, settings, token) and verify_token(session, settings, "from-env")
        assert not verify_token(session, settings, "guess")
    # Every comparison went through compare_digest, on digests (never on the plain tokens).
    assert compared and all(len(a) == len(b) == 64 for a, b in compared)
    assert (hash_token("guess"), hash_token("from-env")) in compared


def test_revoking_the_last_token_keeps_auth_on(seeded: Seeded) -> None:
    with seeded.db.session() as session:
        token = create_token(session, "only")
    with TestClient(create_app(seeded.settings, seeded.db)) as client:
        token_id = client.get("/api/v1/tokens", headers=_bearer(token)).json()[0]["id"]
        assert client.post(f"/api/v1/tokens/{token_id}/revoke", headers=_bearer(token)).status_code == 200
        assert client.get("/api/v1/runs", headers=_bearer(token)).status_code == 401
        assert client.get("/api/v1/runs").status_code == 401


def test_cli_lists_and_revokes_tokens(seeded: Seeded) -> None:
    import typer

    from app.cli import service as cli_service

    cli = typer.Typer()
    cli_service.register(cli)
    runner = CliRunner()
    url = ["--database-url", seeded.settings.resolved_database_url()]
    created = runner.invoke(cli, ["token", "create", "--name", "cli", *url])
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    listed = runner.invoke(cli, ["token", "list", *url])
    assert token[:10] in listed.output and "active" in listed.output and token not in listed.output
    revoked = runner.invoke(cli, ["token", "revoke", token[:10], *url])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert "revoked" in runner.invoke(cli, ["token", "list", *url]).output
    assert runner.invoke(cli, ["token", "revoke", "sfk_nothere", *url]).exit_code != 0
    with TestClient(create_app(seeded.settings, seeded.db)) as client:
        assert client.get("/api/v1/runs", headers=_bearer(token)).status_code == 401
