"""The service's API key: the dependency every route but ``/health`` and the docs sits behind."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from qwen3_rag.service.state import State


async def require_api_key(request: Request, state: State) -> None:
    """Answer 401 unless the request sends ``Authorization: Bearer <key>`` with the app's key
    (compared in constant time); a service started without a key lets every request through."""
    if state.api_key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), state.api_key):
        raise HTTPException(401, detail="invalid or missing API key (Authorization: Bearer <key>)",
                            headers={"WWW-Authenticate": "Bearer"})
