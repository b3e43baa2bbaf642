"""LlamaIndex adapters: Qwen3Embedding and Qwen3Rerank on the tiny checkpoints (hf backend)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.embeddings.qwen3_rag import Qwen3Embedding
from llama_index.postprocessor.qwen3_rag import Qwen3Rerank

from qwen3_rag import Qwen3Embedder, Qwen3Reranker
from qwen3_rag.formats import format_query

TEXTS = [
    "Paris is the capital and largest city of France.",
    "Bananas are rich in potassium.",
    "The Eiffel Tower is in Paris.",
    "BM25 is a bag-of-words ranking function.",
    "Mount Everest is the highest mountain above sea level.",
]
QUERY = "What is the capital of France?"


@pytest.fixture(scope="module")
def embed_model(tiny_embedding: str) -> Qwen3Embedding:
    return Qwen3Embedding(model_name=tiny_embedding, backend="hf", embed_batch_size=2)


def test_query_and_text_embeddings_differ_exactly_by_the_instruction(embed_model, tiny_embedding):
    core = Qwen3Embedder(tiny_embedding, backend="hf")
    query = np.array(embed_model.get_query_embedding(QUERY))
    text = np.array(embed_model.get_text_embedding(QUERY))
    assert not np.allclose(query, text, atol=1e-3)
    np.testing.assert_allclose(text, core.embed_documents([QUERY])[0], atol=1e-6)
    # the query vector is the document vector of the instruction-formatted query
    formatted = format_query(QUERY, embed_model.query_instruction)
    np.testing.assert_allclose(query, core.embed_documents([formatted])[0], atol=1e-5)


def test_batches_and_async_agree(embed_model):
    batch = np.array(embed_model.get_text_embedding_batch(TEXTS))  # 3 calls of embed_batch_size=2
    singles = np.array([embed_model.get_text_embedding(t) for t in TEXTS])
    assert batch.shape == (len(TEXTS), 64)
    np.testing.assert_allclose(batch, singles, atol=1e-5)


async def test_async_embeddings_equal_sync(embed_model):
    q = await embed_model.aget_query_embedding(QUERY)
    np.testing.assert_allclose(q, embed_model.get_query_embedding(QUERY), atol=1e-6)
    texts = await embed_model.aget_text_embedding_batch(TEXTS)
    np.testing.assert_allclose(texts, embed_model.get_text_embedding_batch(TEXTS), atol=1e-6)
    one = await embed_model.aget_text_embedding(TEXTS[0])
    np.testing.assert_allclose(one, embed_model.get_text_embedding(TEXTS[0]), atol=1e-6)


def test_misspelt_engine_option_names_the_nearest_one(tiny_embedding):
    with pytest.raises(ValueError, match="option 'max_batch_sise'; did you mean 'max_batch_size'"):
        Qwen3Embedding(model_name=tiny_embedding, backend="hf", engine_kwargs={"max_batch_sise": 4})


def _nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}", metadata={"n": i}), score=1.0 - i / 10)
        for i, t in enumerate(TEXTS)
    ]


class _Collect(BaseEventHandler):
    events: list = Field(default_factory=list)

    def handle(self, event, **kwargs) -> None:
        self.events.append(event)


@pytest.fixture
def rerank_events():
    root = get_dispatcher()
    handler = _Collect(events=[])
    root.add_event_handler(handler)
    yield handler.events
    root.event_handlers.remove(handler)


def test_postprocessor_order_scores_metadata_and_events(tiny_reranker, rerank_events):
    nodes = _nodes()
    contents = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    scores = Qwen3Reranker(tiny_reranker, backend="hf").score(QUERY, contents)
    debug = LlamaDebugHandler()
    rerank = Qwen3Rerank(
        model=tiny_reranker, backend="hf", top_n=3, keep_retrieval_score=True,
        callback_manager=CallbackManager([debug]),
    )
    out = rerank.postprocess_nodes(nodes, query_str=QUERY)

    expected = sorted(range(len(TEXTS)), key=lambda i: -scores[i])[:3]
    assert [n.node.node_id for n in out] == [f"n{i}" for i in expected]
    for n, i in zip(out, expected, strict=True):
        assert n.score == pytest.approx(float(scores[i]), abs=1e-6)
        assert n.node.metadata["relevance_score"] == pytest.approx(float(scores[i]), abs=1e-6)
        assert n.node.metadata["confidence"] == pytest.approx(abs(2 * float(scores[i]) - 1), abs=1e-6)
        assert n.node.metadata["retrieval_score"] == pytest.approx(1.0 - i / 10)
        assert "relevance_score" not in n.node.get_content(metadata_mode=MetadataMode.LLM)
    # the input nodes are not modified
    assert [n.score for n in nodes] == [n.score for n in _nodes()]
    assert all(set(n.node.metadata) == {"n"} for n in nodes)

    starts = [e for e in rerank_events if isinstance(e, ReRankStartEvent)]
    ends = [e for e in rerank_events if isinstance(e, ReRankEndEvent)]
    assert len(starts) == len(ends) == 1
    assert starts[0].top_n == 3 and starts[0].model_name == tiny_reranker and len(starts[0].nodes) == 5
    assert [n.node.node_id for n in ends[0].nodes] == [n.node.node_id for n in out]
    assert len(debug.get_event_pairs(CBEventType.RERANKING)) == 1


async def test_postprocessor_async_threshold_and_errors(tiny_reranker, rerank_events):
    nodes = _nodes()
    rerank = Qwen3Rerank(model=tiny_reranker, backend="hf", top_n=None)
    every = rerank.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))
    assert len(every) == len(TEXTS)
    threshold = float(np.median([n.score for n in every]))
    strict = Qwen3Rerank(model=tiny_reranker, backend="hf", top_n=None, score_threshold=threshold)
    kept = await strict.apostprocess_nodes(nodes, query_str=QUERY)
    assert [n.node.node_id for n in kept] == [n.node.node_id for n in every if n.score >= threshold]
    assert len([e for e in rerank_events if isinstance(e, ReRankEndEvent)]) == 2
    assert rerank.postprocess_nodes([], query_str=QUERY) == []
    with pytest.raises(ValueError, match="needs a query"):
        rerank.postprocess_nodes(nodes)
    with pytest.raises(ValueError, match="top_n"):
        Qwen3Rerank(model=tiny_reranker, backend="hf", top_n=-2)



def test_postprocessor_selects_like_the_core_ranking(tiny_reranker):
    """Thresholds, then top_n, in qwen3_rag.ranking's order: the adapter adds no selection of its own."""
    from qwen3_rag.ranking import select_results

    contents = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in _nodes()]
    scores = Qwen3Reranker(tiny_reranker, backend="hf").score(QUERY, contents)
    options = {"top_n": 2, "score_threshold": float(np.min(scores)),
               "min_confidence": float(np.median(np.abs(2 * scores - 1)))}
    rerank = Qwen3Rerank(model=tiny_reranker, backend="hf", **options)
    out = rerank.postprocess_nodes(_nodes(), query_str=QUERY)
    expected = select_results(scores, **options).results
    assert [n.node.node_id for n in out] == [f"n{r.index}" for r in expected]

def test_unknown_arguments_are_errors_not_the_default_model(tiny_embedding, tiny_reranker):
    """``model=`` on the embedding (its field is ``model_name``, as in LlamaIndex) or ``device``
    outside ``engine_kwargs`` would otherwise be dropped and the hub default loaded."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="model"):
        Qwen3Embedding(model=tiny_embedding, backend="hf")
    with pytest.raises(ValidationError, match="device"):
        Qwen3Embedding(model_name=tiny_embedding, backend="hf", device="cpu")
    with pytest.raises(ValidationError, match="model_name"):
        Qwen3Rerank(model_name=tiny_reranker, backend="hf")
