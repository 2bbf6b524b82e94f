"""Request bodies are bounded before anything buffers them: an ASGI middleware refuses a declared
``Content-Length`` over the limit at once and counts the bytes of a chunked body as the application
pulls them, answering 413 as soon as the count passes the limit (the rest is never read)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """The 413 error; raised from ``receive`` only if the app had already started its response."""

    def __init__(self, field: str, limit: int) -> None:
        super().__init__(413, f"{field}: the request body is larger than {limit} bytes")
        self.field, self.limit = field, limit


class BodySizeLimit:
    """``max_upload_bytes`` for multipart uploads, ``max_body_bytes`` for every other body."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes, self.max_upload_bytes = max_body_bytes, max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        upload = headers.get("content-type", "").lower().startswith("multipart/")
        limit, field = (self.max_upload_bytes, "file") if upload else (self.max_body_bytes, "(body)")
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _answer(send, 400, "content-length", "content-length: not a byte count")
                return
            if int(declared) > limit:
                await _answer(send, 413, field, BodyTooLarge(field, limit).detail)
                return
        received = 0
        started = answered = False

        async def counted_receive() -> Message:
            # Past the limit the 413 goes out at once and the app is told the client left, so it
            # stops reading (whatever wraps ``receive`` in between: task groups, middleware).
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if started:
                        raise BodyTooLarge(field, limit)
                    answered = True
                    await _answer(send, 413, field, BodyTooLarge(field, limit).detail)
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the 413 is the answer; drop whatever the interrupted app sends
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except Exception:
            if not answered:
                raise  # after a 413 the app's own failure (client disconnected) is expected


class RefuseNulBytes:
    """422 for a NUL character in the path or a query parameter: PostgreSQL text cannot hold one
    (the query would fail with a 500), and no name, id, SMILES or filter legitimately has one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            field = _nul_field(scope)
            if field is not None:
                await _answer(send, 422, field, f"{field}: must not contain NUL characters")
                return
        await self.app(scope, receive, send)


def _nul_field(scope: Scope) -> str | None:
    if "\x00" in scope.get("path", ""):
        return "(path)"
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "") or "(query)"
    return None


async def _answer(send: Send, status: int, field: str, message: str) -> None:
    body = json.dumps({"message": message, "errors": [{"field": field, "message": message}]}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
