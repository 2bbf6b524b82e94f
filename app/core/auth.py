"""Optional bearer tokens: only a SHA-256 of each token is stored; comparison is constant-time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.models import ApiToken, utcnow
from app.core.settings import Settings

TOKEN_PREFIX = "sfk_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, name: str) -> tuple[ApiToken, str]:
    """Store a new token's hash; return the row and the token itself (shown once, never stored)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, token_hash=hash_token(token), prefix=token[:10])
    session.add(row)
    session.flush()
    return row, token


def create_token(session: Session, name: str) -> str:
    return issue_token(session, name)[1]


def auth_enabled(session: Session, settings: Settings) -> bool:
    """On once any token was ever created: revoking the last token must not open the API."""
    if settings.auth_required or settings.api_tokens:
        return True
    return session.scalar(select(ApiToken.id).limit(1)) is not None


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(session: Session, key: str) -> ApiToken | None:
    """Revoke by id or by the token's shown prefix (``sfk_…``, first 10 characters); None if unknown."""
    row = session.get(ApiToken, int(key)) if key.isdigit() else None
    if row is None:
        row = session.scalar(select(ApiToken).where(ApiToken.prefix == key[:10]))
    if row is not None:
        row.revoked = True
    return row


def verify_token(session: Session, settings: Settings, token: str) -> bool:
    digest = hash_token(token)
    ok = any(hmac.compare_digest(digest, hash_token(plain)) for plain in settings.api_tokens)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest, ApiToken.revoked.is_(False)))
    if row is not None and hmac.compare_digest(row.token_hash, digest):
        # A write per request would contend with the workers' writes (one SQLite writer at a time).
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            row.last_used_at = now
        ok = True
    return ok


# Scoped, short-lived tokens signed with the server's key: what a browser's EventSource (which cannot
# send an Authorization header) puts in the URL of one run's event stream.


def signing_key(settings: Settings) -> bytes:
    """``SYNFLOW_SECRET_KEY``, or a random key kept in DATA_DIR/secret_key (mode 600), created once by
    whichever process needs it first (link(2) makes the creation atomic), shared by every API process
    on that data directory."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = settings.data_dir / "secret_key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process made it first: use theirs
            pass
        finally:
            Path(tmp).unlink()
    return bytes.fromhex(path.read_text().strip())


def _sign(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def issue_scoped_token(key: bytes, scope: str, seconds: float, now: float) -> str:
    """``base64(scope|expiry).hmac``: valid for ``scope`` until ``now + seconds``."""
    payload = f"{scope}|{int(now + seconds)}".encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _sign(key, payload)


def verify_scoped_token(key: bytes, token: str, scope: str, now: float) -> bool:
    encoded, _, signature = token.partition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError:
        return False
    if not hmac.compare_digest(_sign(key, payload), signature):
        return False
    token_scope, _, expiry = payload.decode(errors="replace").rpartition("|")
    return hmac.compare_digest(token_scope, scope) and expiry.isdigit() and now <= int(expiry)
