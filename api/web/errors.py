"""The one place that turns errors into HTTP answers for the staff API.

Every answer that is not a success has the same JSON shape: `detail` (English, for people and
the command line), `code` (stable and machine-readable: the pages translate codes, never
messages) and `params` (values a translation may show). A domain error (flows.errors.KccError)
gets the status its `kind` names; FastAPI's own refusals (an unknown route, a malformed body)
get a code as well. Webhooks never come here: api/webhooks/ always answers TwiML.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from flows.errors import ErrorKind, FlowInvalid, KccError

log = logging.getLogger(__name__)

STATUS = {
    ErrorKind.INVALID: 422,
    ErrorKind.CONFLICT: 409,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.UNAUTHORIZED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.LIMITED: 429,
    ErrorKind.UPSTREAM: 502,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.INTERNAL: 500,
}
_HTTP_CODES = {
    400: "body_unreadable",  # FastAPI: "There was an error parsing the body" (not UTF-8)
    401: "not_signed_in",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    422: "request_invalid",
}


class ProblemOut(BaseModel):
    line: int
    message: str
    code: str
    params: dict[str, str]


class ErrorOut(BaseModel):
    """What every refusal of the staff API answers (documented in the OpenAPI schema)."""

    detail: Any
    code: str
    params: dict[str, Any] = {}
    problems: list[ProblemOut] | None = None  # flow_invalid: every problem of the draft


# -- errors of the web edge itself -------------------------------------------------------------


class WebError(KccError):
    """A refusal only the web edge knows (signing in, the simulated phone)."""

    kind = ErrorKind.CONFLICT

    def __init__(self, code: str, message: str, **params: str | int | None) -> None:
        super().__init__(message, **params)
        self.code = code


class NotSignedIn(WebError):
    kind = ErrorKind.UNAUTHORIZED


class Forbidden(WebError):
    kind = ErrorKind.FORBIDDEN


class NotFound(WebError):
    kind = ErrorKind.NOT_FOUND


class RequestInvalid(WebError):
    kind = ErrorKind.INVALID


def problems_out(exc: FlowInvalid) -> list[ProblemOut]:
    return [
        ProblemOut(line=p.line, message=p.message, code=p.code, params=dict(p.params))
        for p in exc.problems
    ]


def error_answer(exc: KccError) -> JSONResponse:
    status = STATUS[exc.kind]
    body = ErrorOut(detail=exc.message, code=exc.code, params=exc.params)
    if isinstance(exc, FlowInvalid):
        body = ErrorOut(
            detail="the flow is invalid; nothing was changed",
            code=exc.code,
            problems=problems_out(exc),
        )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 429:
        headers = {"Retry-After": str(exc.params.get("retry_after") or 1)}
    return JSONResponse(body.model_dump(exclude_none=True), status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KccError)
    async def domain_error(request: Request, exc: KccError) -> JSONResponse:
        if exc.kind is ErrorKind.INTERNAL:
            log.error("internal error", exc_info=exc, extra={"path": request.url.path})
        return error_answer(exc)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        body = ErrorOut(detail=exc.detail, code=code)
        return JSONResponse(body.model_dump(exclude_none=True), exc.status_code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        body = ErrorOut(detail=errors, code="request_invalid")
        return JSONResponse(body.model_dump(exclude_none=True), 422)

    # A dependency away is not a bug: 503 with a code the pages can say, and the proxy may
    # retry another instance. (Webhooks never get here: they answer the apology.)
    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def redis_away(request: Request, exc: Exception) -> JSONResponse:
        return _unavailable(request, exc, "redis_unavailable", "Redis is not answering")

    @app.exception_handler(OperationalError)
    async def database_away(request: Request, exc: Exception) -> JSONResponse:
        return _unavailable(request, exc, "database_unavailable", "the database is not answering")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        body = ErrorOut(detail="internal error", code="internal")
        return JSONResponse(body.model_dump(exclude_none=True), 500)


def _unavailable(request: Request, exc: Exception, code: str, detail: str) -> JSONResponse:
    log.warning(detail, extra={"path": request.url.path, "error": type(exc).__name__})
    body = ErrorOut(detail=detail, code=code)
    return JSONResponse(body.model_dump(exclude_none=True), 503, {"Retry-After": "5"})
