"""Oversized bodies are refused with 413 without being read whole: a declared Content-Length at once,
a chunked body (no length) as soon as the bytes pulled pass the limit. In-process the test counts
what the app pulled from ``receive``; against a real server it streams chunks over a socket and
checks the server answered 413 long before the body ended and its memory did not grow by it."""

from __future__ import annotations

import asyncio
import json
import select
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from app.main import create_app
from tests.app.security.conftest import SERVER_BODY_LIMIT, Seeded, Server

CHUNK = 64 * 1024


def _asgi_post(app: object, path: str, content_type: bytes, chunks: Iterator[bytes], length: int | None):
    """Drive the app with a streamed body; returns (status, JSON body, bytes the app pulled)."""
    pulled = 0
    messages: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        messages.append(message)

    headers = [(b"content-type", content_type), (b"host", b"testserver")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[operator]
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled


FILE_PART = (
    b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.smi"\r\n'
    b"Content-Type: text/plain\r\n\r\n"
)


def _endless(total: int, first: bytes = b"") -> Iterator[bytes]:
    """A valid start (a multipart file part's header) then filler, ``total`` bytes in all."""
    sent = len(first)
    if first:
        yield first
    while sent < total:
        sent += CHUNK
        yield b" " * CHUNK


@pytest.mark.parametrize(
    ("path", "content_type", "field"),
    [
        ("/api/v1/runs", b"application/json", "(body)"),
        ("/api/v1/libraries", b"multipart/form-data; boundary=xyz", "file"),
    ],
)
def test_chunked_body_stops_at_the_limit(seeded: Seeded, path: str, content_type: bytes, field: str) -> None:
    limit = 200_000
    settings = seeded.settings.model_copy(update={"max_body_bytes": limit, "max_upload_bytes": limit})
    app = create_app(settings, seeded.db)
    total = 50 * 1024 * 1024
    first = FILE_PART if field == "file" else b""
    status, body, pulled = _asgi_post(app, path, content_type, _endless(total, first), length=None)
    assert status == 413
    assert body["errors"][0]["field"] == field and "larger than 200000 bytes" in body["message"]
    assert pulled <= limit + CHUNK < total  # it stopped reading right after the limit


def test_declared_length_refused_before_reading(seeded: Seeded) -> None:
    app = create_app(seeded.settings.model_copy(update={"max_body_bytes": 1000}), seeded.db)
    status, body, pulled = _asgi_post(app, "/api/v1/runs", b"application/json", _endless(10**6), 10**6)
    assert status == 413 and pulled == 0 and body["errors"][0]["field"] == "(body)"


def test_small_bodies_still_pass(seeded: Seeded) -> None:
    app = create_app(seeded.settings.model_copy(update={"max_body_bytes": 10_000}), seeded.db)
    config = json.dumps({"reward": {"components": [{"type": "qed"}]}}).encode()
    status, body, _ = _asgi_post(app, "/api/v1/runs", b"application/json", iter([config]), len(config))
    assert status == 201, body


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))


def test_real_server_refuses_a_chunked_upload_early(server: Server) -> None:
    """64 MiB offered in chunks to a server whose JSON limit is 256 KiB: it must answer 413 after
    reading little more than the limit, and its resident memory must not grow by the body."""
    url = urlsplit(server.url)
    rss_before = _rss_kib(server.proc.pid)
    total, sent, answer = 64 * 1024 * 1024, 0, b""
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        head = (
            f"POST /api/v1/runs HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode())
        frame = f"{CHUNK:x}\r\n".encode() + b" " * CHUNK + b"\r\n"
        try:
            while sent < total:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered: stop sending
                writable = select.select([], [sock], [], 5)[1]
                if not writable:
                    break  # the server stopped reading and its buffers are full
                sock.sendall(frame)
                sent += CHUNK
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            sock.settimeout(10)
            while b"}" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert f"larger than {SERVER_BODY_LIMIT} bytes".encode() in answer
    assert sent < 16 * 1024 * 1024, f"sent {sent} bytes before the answer"  # far less than 64 MiB
    grew_kib = _rss_kib(server.proc.pid) - rss_before
    assert grew_kib < 32 * 1024, f"server RSS grew by {grew_kib} KiB"
    assert server.client.get("/healthz").status_code == 200


def test_nul_characters_are_refused_with_the_field(seeded: Seeded) -> None:
    """PostgreSQL text cannot hold NUL: ``make fuzz`` found a 500 from ``?name=%00`` on PostgreSQL."""
    from fastapi.testclient import TestClient

    with TestClient(create_app(seeded.settings, seeded.db)) as client:
        answer = client.get(f"/api/v1/runs/{seeded.run_id}/metrics", params={"name": "loss\x00"})
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "name"
        assert client.get("/api/v1/runs/abc%00def").status_code == 422
        config = {"name": "a\x00b", "reward": {"components": [{"type": "qed"}]}}
        answer = client.post("/api/v1/runs", json=config)
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "name"
        upload = {"file": ("a.smi", b"CCO a\n")}
        answer = client.post("/api/v1/libraries", data={"name": "x\x00"}, files=upload)
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "name"
