"""Every error is JSON ``{"message", "errors": [{"field", "message"}]}``; the message names the field."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.limits import BodyTooLarge
from app.chem.parsing import ChemQueryError
from app.runs.configs import CodeNotAllowed
from app.runs.queries import QueryError
from synflow.config import ConfigError


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


def error_body(message: str, errors: list[tuple[str, str]] | None = None) -> dict[str, object]:
    return {"message": message, "errors": [{"field": f, "message": m} for f, m in errors or []]}


def _fields(errors: list[tuple[str, str]], status: int = 422) -> JSONResponse:
    message = "; ".join(f"{field}: {msg}" for field, msg in errors)
    return JSONResponse(error_body(message, errors), status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        errors = [(exc.field, exc.message)] if exc.field else []
        return JSONResponse(error_body(exc.message, errors), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(ConfigError)
    async def _config(_: Request, exc: ConfigError) -> JSONResponse:
        return _fields(exc.errors)

    @app.exception_handler(CodeNotAllowed)  # a ConfigError, but refused for trust, not form: 403
    async def _forbidden(_: Request, exc: CodeNotAllowed) -> JSONResponse:
        return _fields(exc.errors, 403)

    @app.exception_handler(QueryError)
    async def _query(_: Request, exc: QueryError) -> JSONResponse:
        return _fields([(exc.field, str(exc))])

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for item in exc.errors():
            loc = [str(p) for p in item["loc"] if p not in ("body", "query", "path", "header")]
            errors.append((".".join(loc) or "(body)", item["msg"]))
        return _fields(errors)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        # Close the connection: the rest of the body is never read.
        body = error_body(str(exc.detail), [(exc.field, str(exc.detail))])
        return JSONResponse(body, status_code=413, headers={"Connection": "close"})

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        # The database restarting, unreachable or (SQLite) locked past busy_timeout: transient, so
        # 503 with Retry-After, not a 500; the pool's pre-ping reconnects once it is back.
        body = error_body("database unavailable; retry shortly")
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


def chem_field_error(field: str, error: ChemQueryError) -> ApiError:
    return ApiError(422, f"{field}: {error}", field)
