"""One-line JSON errors for the service: ``{"error": "<problem> -- <fix>", "status": code}``.

Every error response of the app has this shape (bad input, unknown route, invalid query
parameter, database trouble, unexpected failure), so a client or the web page can show the
``error`` line as it is.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flawscope.errors import ConfigError, DataError, FlawscopeError, StoreError

log = logging.getLogger("flawscope")


class ServiceError(FlawscopeError):
    """A request the service refuses, with its HTTP status.

    Args:
        status: the HTTP status code (4xx for the client's input).
        problem: what is wrong with the request.
        fix: what the client should do about it.
        extra: more JSON fields of the error response (e.g. ``batches=2`` for SPC).
    """

    def __init__(self, status: int, problem: str, fix: str | None = None, **extra: Any) -> None:
        super().__init__(problem, fix)
        self.status = status
        self.extra = extra


def error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {"error": message, "status": status, **extra}


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A JSON error response (see the module docstring)."""
    return JSONResponse(error_body(status, message, **extra), status_code=status, headers=headers)


def _status_of(exc: FlawscopeError) -> int:
    """HTTP status of a library error: the client's input (4xx) or the server's store (503)."""
    if isinstance(exc, ServiceError):
        return exc.status
    if isinstance(exc, StoreError):
        return 503
    if isinstance(exc, (DataError, ConfigError)):
        return 422
    return 400


_ROUTE_FIX = "see /docs (or /openapi.json) for the endpoints"


def _validation_message(exc: RequestValidationError) -> str:
    """``invalid query parameter limit: Input should be ... -- fix`` from the first error."""
    errors = exc.errors()
    if not errors:
        return f"invalid request -- {_ROUTE_FIX}"
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ())]
    where = f"{loc[0]} parameter {'.'.join(loc[1:])}" if len(loc) > 1 else ".".join(loc)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"invalid {where}: {first.get('msg', 'invalid value')}{more} -- {_ROUTE_FIX}"


def install_error_handlers(app: FastAPI) -> None:
    """Make every error response of ``app`` a one-line JSON error."""

    @app.exception_handler(FlawscopeError)
    async def _flawscope(request: Request, exc: FlawscopeError) -> JSONResponse:
        status = _status_of(exc)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return error_response(status, str(exc), **getattr(exc, "extra", {}))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no route {request.method} {request.url.path} -- {_ROUTE_FIX}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path} -- {_ROUTE_FIX}"
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return error_response(422, _validation_message(exc), detail=detail)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(
            500,
            f"internal error in {request.method} {request.url.path} ({type(exc).__name__}) "
            "-- see the server log; report it if it repeats",
        )
