"""Error answers of the service: the ``detail`` shape and the app's exception handlers.

Every client error answers ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}``
(FastAPI's validation shape, without echoing the input back): 413 for sizes over the limits,
404 for a part the service was started without, 422 for everything else invalid. A model
server that fails answers 502, any other error 500 with the exception's type only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from qwen3_rag.service.schemas import SIZE_ERRORS

logger = logging.getLogger("qwen3_rag")


def api_error(status: int, loc: Sequence[Any], msg: str, type_: str) -> HTTPException:
    """An ``HTTPException`` with one error in the validation shape.

    Example:
        >>> e = api_error(422, ["body", "rerank"], "no reranker", "invalid_input")
        >>> e.status_code, e.detail
        (422, [{'loc': ['body', 'rerank'], 'msg': 'no reranker', 'type': 'invalid_input'}])
    """
    return HTTPException(status, detail=[{"loc": list(loc), "msg": msg, "type": type_}])


def invalid_input(e: Exception) -> HTTPException:
    """422 for a request the models refuse (a ``ValueError``/``TypeError`` saying why)."""
    return api_error(422, ["body"], str(e), "invalid_input")


def error_status(errors: Sequence[dict[str, Any]]) -> int:
    """413 when any error is a size over the limits, else 422."""
    return 413 if any(e.get("type") in SIZE_ERRORS for e in errors) else 422


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # never echo the input back: it may be huge or not encodable
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=error_status(errors))


async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 400:  # a body FastAPI could not parse (e.g. a wrong content type)
        detail = [{"loc": ["body"], "msg": str(exc.detail), "type": "invalid_body"}]
        return JSONResponse({"detail": detail}, status_code=422)
    return await http_exception_handler(request, exc)


async def on_error(request: Request, exc: Exception) -> JSONResponse:
    from qwen3_rag.engine.remote import RemoteError

    if isinstance(exc, RemoteError):
        return JSONResponse({"detail": f"model server error: {exc}"}, status_code=502)
    logger.exception("qwen3_rag: internal error on %s", request.url.path)
    return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)


Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]

EXCEPTION_HANDLERS: dict[Any, Handler] = {
    RequestValidationError: on_validation_error,
    StarletteHTTPException: on_http_error,
    Exception: on_error,
}
"""The service's exception handlers (``FastAPI(exception_handlers=EXCEPTION_HANDLERS)``)."""
