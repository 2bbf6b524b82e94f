"""``/api/v1/tokens``: list, create and revoke bearer tokens (a token is shown once; only its hash is
stored). Like every API route these need a valid token once auth is on."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body
from fastapi import Path as FastApiPath
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from app.api.deps import SESSION
from app.api.errors import ApiError
from app.core.auth import issue_token, list_tokens, revoke_token
from app.core.models import ApiToken

router = APIRouter(prefix="/tokens", tags=["tokens"])


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("api", min_length=1, max_length=200)


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


class TokenCreated(TokenOut):
    token: str = Field(description="the bearer token; shown this once, never stored")


def token_out(row: ApiToken) -> TokenOut:
    return TokenOut(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked=row.revoked,
    )


@router.get("", response_model=list[TokenOut])
def tokens_index(session: Session = SESSION) -> list[TokenOut]:
    return [token_out(row) for row in list_tokens(session)]


@router.post("", status_code=201, response_model=TokenCreated)
def tokens_create(
    body: TokenCreate = Body(default_factory=TokenCreate), session: Session = SESSION
) -> TokenCreated:
    if "\x00" in body.name:
        raise ApiError(422, "name: must not contain NUL characters", "name")
    row, token = issue_token(session, body.name)
    return TokenCreated(**token_out(row).model_dump(), token=token)


@router.post("/{token_id}/revoke", response_model=TokenOut)
def tokens_revoke(
    token_id: Annotated[int, FastApiPath(ge=1, le=2**31 - 1)], session: Session = SESSION
) -> TokenOut:
    row = revoke_token(session, str(token_id))
    if row is None:
        raise ApiError(404, f"token_id: no token {token_id}", "token_id")
    session.flush()
    return token_out(row)
