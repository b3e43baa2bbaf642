"""``Qwen3Rerank``: a LlamaIndex node postprocessor over the core :class:`qwen3_rag.Qwen3Reranker`."""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr, field_validator
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from qwen3_rag import Qwen3Reranker, RerankResult
from qwen3_rag.formats import DEFAULT_INSTRUCTION
from qwen3_rag.ranking import check_rank_options

dispatcher = get_dispatcher(__name__)

SCORE_KEYS = ("relevance_score", "confidence")
"""Metadata keys set on returned nodes (hidden from the LLM and the embedder)."""


class Qwen3Rerank(BaseNodePostprocessor):
    """Qwen3-Reranker as a LlamaIndex node postprocessor.

    Returns at most ``top_n`` nodes, best first; each ``NodeWithScore.score`` is P(yes) in
    [0, 1], and the node (a copy: the input nodes are not modified) carries
    ``metadata["relevance_score"]`` and ``metadata["confidence"]`` (``|2p - 1|``), excluded
    from LLM and embedding text. Emits ``ReRankStartEvent`` / ``ReRankEndEvent`` and a
    ``RERANKING`` callback event, like core's ``SentenceTransformerRerank``. The thresholds
    apply first, then ``top_n``, as everywhere (:func:`qwen3_rag.ranking.select_results`).

    Args:
        model: hub id or local directory of a Qwen3-Reranker checkpoint.
        top_n: how many nodes to return (``None``: all).
        backend: ``"auto"``, ``"vllm"``, ``"hf"`` or ``"remote"``.
        instruction: the task instruction of the reranker prompt.
        score_threshold: drop nodes whose relevance score is below it.
        min_confidence: drop nodes whose confidence ``|2p - 1|`` is below it.
        keep_retrieval_score: keep the retriever's score in ``metadata["retrieval_score"]``.
        max_length: longest prompt in tokens (only the document is cut).
        batch_size: pairs per engine call (default: the backend's preference).
        engine_kwargs: backend options.

    Example:
        >>> from llama_index.postprocessor.qwen3_rag import Qwen3Rerank
        >>> rerank = Qwen3Rerank(top_n=3)                                  # doctest: +SKIP
        >>> engine = index.as_query_engine(                                # doctest: +SKIP
        ...     similarity_top_k=20, node_postprocessors=[rerank])
    """

    # a misspelt or foreign argument (``model`` here, ``device`` outside engine_kwargs) is an
    # error, not a silent fall-back to the default model
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="Qwen3-Reranker id or dir (None: config).")
    top_n: int | None = Field(default=3, description="Nodes to return, best first (None: all).")
    backend: str | None = Field(default=None, description="'auto', 'vllm', 'hf', 'remote' (None: config).")
    instruction: str = Field(default=DEFAULT_INSTRUCTION, description="Reranker task instruction.")
    score_threshold: float | None = Field(default=None, description="Minimum relevance score.")
    min_confidence: float | None = Field(default=None, description="Minimum |2p - 1|.")
    keep_retrieval_score: bool = Field(default=False, description="Keep the retrieval score in metadata.")
    max_length: int | None = Field(default=None, description="Longest prompt in tokens (None: config).")
    batch_size: int | None = Field(default=None, description="Pairs per engine call.")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="Backend options.")

    _reranker: Qwen3Reranker = PrivateAttr()

    @field_validator("top_n", "score_threshold", "min_confidence")
    @classmethod
    def _check_selection(cls, v: Any, info: Any) -> Any:
        check_rank_options(**{info.field_name: v})  # the core's one check (qwen3_rag.ranking)
        return v

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._reranker = Qwen3Reranker(
            self.model,
            backend=self.backend,
            instruction=self.instruction,
            max_length=self.max_length,
            batch_size=self.batch_size,
            **self.engine_kwargs,
        )
        self.model, self.backend = self._reranker.model, self._reranker.backend
        self.max_length = self._reranker.max_length

    @classmethod
    def class_name(cls) -> str:
        return "Qwen3Rerank"

    @property
    def reranker(self) -> Qwen3Reranker:
        """The core reranker doing the work."""
        return self._reranker

    def _options(self) -> dict[str, Any]:
        return {
            "top_n": self.top_n,
            "score_threshold": self.score_threshold,
            "min_confidence": self.min_confidence,
        }

    def _scored(self, nodes: list[NodeWithScore], results: list[RerankResult]) -> list[NodeWithScore]:
        out = []
        for r in results:
            original = nodes[r.index]
            node = original.node.model_copy()
            extra: dict[str, Any] = {"relevance_score": r.relevance_score, "confidence": r.confidence}
            hidden = list(SCORE_KEYS)
            if self.keep_retrieval_score:
                extra["retrieval_score"] = original.score
                hidden.append("retrieval_score")
            node.metadata = {**original.node.metadata, **extra}
            node.excluded_llm_metadata_keys = _merge(node.excluded_llm_metadata_keys, hidden)
            node.excluded_embed_metadata_keys = _merge(node.excluded_embed_metadata_keys, hidden)
            out.append(NodeWithScore(node=node, score=r.relevance_score))
        return out

    def _start(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> tuple[str, list[str]]:
        top_n = len(nodes) if self.top_n is None else self.top_n
        start = ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=top_n, model_name=self.model)
        dispatcher.event(start)
        if query_bundle is None:
            raise ValueError("Qwen3Rerank needs a query: pass query_bundle or query_str")
        texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        return query_bundle.query_str, texts

    def _event(self, nodes: list[NodeWithScore], query: str) -> Any:
        payload = {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self.model,
            EventPayload.QUERY_STR: query,
            EventPayload.TOP_K: self.top_n,
        }
        return self.callback_manager.event(CBEventType.RERANKING, payload=payload)

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query, texts = self._start(nodes, query_bundle)
        new_nodes: list[NodeWithScore] = []
        if nodes:
            with self._event(nodes, query) as event:
                new_nodes = self._scored(nodes, self._reranker.rerank(query, texts, **self._options()))
                event.on_end(payload={EventPayload.NODES: new_nodes})
        dispatcher.event(ReRankEndEvent(nodes=new_nodes))
        return new_nodes

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query, texts = self._start(nodes, query_bundle)
        new_nodes: list[NodeWithScore] = []
        if nodes:
            with self._event(nodes, query) as event:
                results = await self._reranker.arerank(query, texts, **self._options())
                new_nodes = self._scored(nodes, results)
                event.on_end(payload={EventPayload.NODES: new_nodes})
        dispatcher.event(ReRankEndEvent(nodes=new_nodes))
        return new_nodes


def _merge(keys: list[str], extra: list[str]) -> list[str]:
    return [*keys, *(k for k in extra if k not in keys)]
