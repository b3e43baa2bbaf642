"""``POST /v1/embeddings``: OpenAI-compatible embeddings of texts or token ids."""

from __future__ import annotations

import asyncio
import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from qwen3_rag.service.auth import require_api_key
from qwen3_rag.service.errors import api_error, invalid_input
from qwen3_rag.service.limits import WithinLimits
from qwen3_rag.service.schemas import EmbeddingRequest, EmbeddingResponse
from qwen3_rag.service.state import ServiceState, State

router = APIRouter(tags=["embeddings"], dependencies=[Depends(require_api_key)])

Embedding = Annotated[EmbeddingRequest, Depends(WithinLimits(EmbeddingRequest))]


@router.post("/v1/embeddings", response_model=EmbeddingResponse)
async def embeddings(req: Embedding, state: State) -> Any:
    """OpenAI-compatible embeddings. Texts are documents unless ``instruction`` (or
    ``input_type="query"``) makes them queries; token-id inputs are embedded as given."""
    ids = await token_ids(req, state)
    with state.metrics.stage("embed"):
        vecs = await state.embed_ids(ids, req.dimensions)
    if req.encoding_format == "base64":
        items: list[Any] = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vecs]
    else:
        items = vecs.tolist()
    n_tokens = sum(len(x) for x in ids)
    return JSONResponse({  # built here: validating thousands of floats again would only cost time
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(items)],
        "model": state.embedding_model_name,
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    })


async def token_ids(req: EmbeddingRequest, state: ServiceState) -> list[list[int]]:
    """The token ids to embed: the inputs' own, or the texts formatted as documents or queries."""
    inputs = req.input
    if inputs.texts is None:
        assert inputs.ids is not None
        if req.instruction is not None or req.input_type == "query":
            raise api_error(422, ["body", "instruction"], "instruction and input_type='query' apply to text "
                            "inputs; token ids are embedded as given", "invalid_input")
        return inputs.ids
    embedder = state.embedder
    instruction = req.instruction
    if instruction is None and req.input_type == "query":
        instruction = embedder.query_instruction
    with state.metrics.stage("tokenize"):
        if instruction is None:
            return await asyncio.to_thread(embedder.formatter.documents, inputs.texts)
        try:
            return await asyncio.to_thread(embedder.formatter.queries, inputs.texts, instruction)
        except ValueError as e:  # an instruction that leaves no room for the query
            raise invalid_input(e) from e
