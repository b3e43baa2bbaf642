"""``POST /search``: embed the query, search the store, optionally rerank."""

import asyncio
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from qwen3_rag.service.app import _error, _format_error, select_results

if TYPE_CHECKING:
    from qwen3_rag.service.app import _Service


def _hit(rank: int, hit: Any, preview_chars: int | None, include_metadata: bool) -> dict[str, Any]:
    text = hit.text or ""
    shown = text if preview_chars is None else text[:preview_chars]
    return {
        "rank": rank,
        "id": str(hit.id),
        "score": float(hit.score),
        "rerank_score": None,
        "confidence": None,
        "text": shown,
        "text_length": len(text),
        "truncated": len(shown) < len(text),
        "metadata": (dict(hit.metadata) if hit.metadata else {}) if include_metadata else None,
    }


def add_search_route(app: FastAPI, svc: "_Service", M: SimpleNamespace, auth: list[Any]) -> None:
    """Register ``POST /search`` on ``app``."""

    @app.post("/search", tags=["search"], dependencies=auth, response_model=M.SearchResponse)
    async def search(req: M.SearchRequest) -> Any:  # type: ignore[name-defined]
        """Vector search over the index; ``rerank`` reorders the ``top_k`` candidates with the
        reranker (``true`` keeps them all, an integer keeps that many)."""
        start = time.perf_counter()
        timings: dict[str, float] = {}
        do_rerank = req.rerank is not False
        if do_rerank and svc.reranker is None:
            raise _error(422, ["body", "rerank"], "this service has no reranker loaded", "invalid_input")
        if req.min_confidence is not None and not do_rerank:
            raise _error(422, ["body", "min_confidence"], "min_confidence needs rerank", "invalid_input")
        emb = svc.embedder
        instr = emb.query_instruction if req.instruction is None else req.instruction
        with svc.metrics.stage("embed", timings):
            ids = await asyncio.to_thread(emb.formatter.queries, [req.query], instr)
            vec = await svc.embed_ids(ids, None)
        with svc.metrics.stage("search", timings):
            try:
                found = await asyncio.to_thread(
                    svc.store.search, vec, req.top_k, filter=req.filter, score_threshold=req.score_threshold
                )
            except (ValueError, TypeError, KeyError) as e:  # a filter the store rejects
                raise _format_error(e) from e
        hits = list(found[0])
        total = len(hits)
        out = [_hit(i, h, req.preview_chars, req.include_metadata) for i, h in enumerate(hits)]
        if do_rerank and hits:
            with svc.metrics.stage("rerank", timings):
                docs = [h.text or "" for h in hits]
                pair_ids = await svc.rerank_ids(req.query, docs, req.rerank_instruction)
                scores = await svc.score_ids(pair_ids)
            top_n = None if req.rerank is True else int(req.rerank)
            results, total = select_results(scores, top_n, None, req.min_confidence)
            ranked = []
            for rank, r in enumerate(results):
                item = out[r.index]
                item.update(rank=rank, rerank_score=r.relevance_score, confidence=r.confidence)
                ranked.append(item)
            out = ranked
        elapsed = (time.perf_counter() - start) * 1000.0
        timings["total"] = round(elapsed, 3)
        return {
            "query": req.query,
            "hits": out,
            "total_found": total,
            "reranked": do_rerank,
            "timings_ms": timings,
            "processing_time_ms": round(elapsed, 3),
        }
