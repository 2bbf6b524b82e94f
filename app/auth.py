"""Optional bearer tokens: only a SHA-256 of each token is stored; comparison is constant-time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ApiToken, utcnow
from app.settings import Settings

TOKEN_PREFIX = "sfk_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str) -> str:
    """Store a new token's hash and return the token itself (shown once, never stored)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_token(token), prefix=token[:10]))
    return token


def auth_enabled(session: Session, settings: Settings) -> bool:
    if settings.auth_required or settings.api_tokens:
        return True
    return session.scalar(select(ApiToken.id).where(ApiToken.revoked.is_(False)).limit(1)) is not None


def verify_token(session: Session, settings: Settings, token: str) -> bool:
    digest = hash_token(token)
    ok = any(hmac.compare_digest(digest, hash_token(plain)) for plain in settings.api_tokens)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest, ApiToken.revoked.is_(False)))
    if row is not None and hmac.compare_digest(row.token_hash, digest):
        row.last_used_at = utcnow()
        ok = True
    return ok
