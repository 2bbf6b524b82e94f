"""Optional bearer tokens: only a SHA-256 of each token is stored; comparison is constant-time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

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
