"""404 routes for what a service was started without (a reranker, a store), saying so."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Depends

from qwen3_rag.service.auth import require_api_key
from qwen3_rag.service.errors import api_error

NO_RERANKER = "this service has no reranker loaded (started with --no-reranker)"
NO_STORE = "this service has no vector store (start it with --store DIR)"


class Unavailable:
    """An endpoint answering 404 with ``message``."""

    def __init__(self, message: str):
        self.message = message

    async def __call__(self) -> None:
        raise api_error(404, ["path"], self.message, "not_available")


def unavailable_router(paths: Sequence[str], message: str) -> APIRouter:
    """``POST`` routes at ``paths``, left out of the API schema, that answer 404 with
    ``message`` (behind the same API key as the others)."""
    router = APIRouter(dependencies=[Depends(require_api_key)])
    for path in paths:
        router.add_api_route(path, Unavailable(message), methods=["POST"], include_in_schema=False)
    return router
