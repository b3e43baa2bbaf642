"""vLLM backend parity on a GPU (bf16) against the hf float32 reference on the same weights.

Marked ``gpu``: skipped where vLLM or CUDA is absent. Run on the GPU machine with
``python -m pytest -m gpu tests/engine/test_gpu.py`` (see docs/gpu.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from qwen3_rag.engine import vllm_available

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not vllm_available(), reason="needs vLLM and a CUDA GPU"),
]

DOCS = [
    "Paris is the capital and most populous city of France.",
    "Bananas are an excellent source of potassium.",
    "The Eiffel Tower was completed in 1889 for the World's Fair held in Paris.",
    "短い日本語の文書。",
    "x",
    "lorem ipsum dolor sit amet " * 60,
]
QUERIES = ["What is the capital of France?", "fruit nutrition", "When was the Eiffel Tower built?"]
VLLM_OPTS = {"dtype": "bfloat16", "gpu_memory_utilization": 0.3, "enforce_eager": False}


@pytest.fixture(scope="module", params=["tiny", "0.6B"])
def checkpoints(request, tmp_path_factory):
    from qwen3_rag.testing import make_qwen3, make_tiny_qwen3

    if request.param == "tiny":
        return (
            make_tiny_qwen3(tmp_path_factory.mktemp("g-emb")),
            make_tiny_qwen3(tmp_path_factory.mktemp("g-rr"), kind="reranker", seed=1),
        )
    return (
        make_qwen3(tmp_path_factory.mktemp("g-emb6"), "0.6B", dtype="float32"),
        make_qwen3(tmp_path_factory.mktemp("g-rr6"), "0.6B", seed=1, dtype="float32"),
    )


def test_vllm_matches_hf_fp32(checkpoints):
    from qwen3_rag.engine import shutdown_engines

    emb_path, rr_path = checkpoints
    try:
        _compare(emb_path, rr_path)
    finally:
        shutdown_engines()


def _compare(emb_path, rr_path):
    from qwen3_rag import Qwen3Embedder, Qwen3Reranker

    ref = {"backend": "hf", "device": "cuda", "dtype": "float32", "max_length": 512, "cuda_graphs": False}
    ref_emb = Qwen3Embedder(emb_path, **ref)
    ref_rr = Qwen3Reranker(rr_path, **ref)
    ref_d, ref_q = ref_emb.embed_documents(DOCS), ref_emb.embed_queries(QUERIES)
    pairs = [(q, d) for q in QUERIES for d in DOCS]
    ref_s = ref_rr.score_pairs(pairs)

    # embedder and reranker on one GPU in one process, with the default memory split
    emb = Qwen3Embedder(emb_path, backend="vllm", max_length=512, **VLLM_OPTS)
    rr = Qwen3Reranker(rr_path, backend="vllm", max_length=512, **VLLM_OPTS)
    got_d, got_q = emb.embed_documents(DOCS), emb.embed_queries(QUERIES)
    got_s = rr.score_pairs(pairs)

    # vLLM's own tokenizer (what pool workers format with) gives exactly our formatters' ids
    from qwen3_rag.formats import make_formatter

    own_emb, own_rr = emb.engine.own_tokenizer(), rr.engine.own_tokenizer()
    assert own_emb is not None and own_rr is not None
    texts = DOCS + [d * 40 for d in DOCS]  # some cut at max_length
    assert make_formatter("embedding", own_emb, 512).documents(texts) == emb.formatter.documents(texts)
    assert make_formatter("embedding", own_emb, 512).queries(QUERIES) == emb.formatter.queries(QUERIES)
    long_pairs = [(q, d) for q in QUERIES for d in texts]
    assert make_formatter("reranker", own_rr, 512).pairs(long_pairs) == rr.formatter.pairs(long_pairs)

    cos_d = (got_d * ref_d).sum(1)
    cos_q = (got_q * ref_q).sum(1)
    delta = np.abs(got_s - ref_s)
    print(
        f"\nPARITY {emb_path}: min cos docs {cos_d.min():.6f} queries {cos_q.min():.6f}; "
        f"max |dscore| {delta.max():.6f} (mean {delta.mean():.6f}); "
        f"score range {ref_s.min():.4f}..{ref_s.max():.4f}"
    )
    assert cos_d.min() >= 0.999 and cos_q.min() >= 0.999
    # bf16 against fp32: 28 random layers carry more rounding than 2 (0.6B on the CPU in bf16:
    # max 0.0046, mean 0.0016; on an H200 up to 0.0059 with mean 0.0021), while errors move
    # scores by more (0.6B, benchmarks/score_noise.py: another
    # instruction max 0.092, mean 0.029; "." appended to every document mean 0.006): docs/gpu.md
    assert delta.max() <= (1e-2 if "g-emb6" in str(emb_path) else 5e-3)
    assert delta.mean() <= 4e-3
    assert emb.embed_documents([]).shape == (0, emb.dimension)


@pytest.mark.parametrize(("dtype", "compiled"), [("float32", False), ("bfloat16", False), ("bfloat16", True)])
def test_hf_cuda_graphs_match_eager(checkpoints, dtype, compiled):
    """The hf backend's CUDA graphs (padded buckets, 4-D mask built in the graph) against its
    eager path on the same GPU and dtype."""
    from qwen3_rag import Qwen3Embedder, Qwen3Reranker
    from qwen3_rag.engine import shutdown_engines

    emb_path, rr_path = checkpoints
    common = {"backend": "hf", "device": "cuda", "dtype": dtype, "max_length": 512}
    pairs = [(q, d) for q in QUERIES for d in DOCS]
    outputs = lambda e, r: (e.embed_documents(DOCS), e.embed_queries(QUERIES), r.score_pairs(pairs))  # noqa: E731
    try:
        eager_e = Qwen3Embedder(emb_path, cuda_graphs=False, **common)
        eager_r = Qwen3Reranker(rr_path, cuda_graphs=False, **common)
        ref_d, ref_q, ref_s = outputs(eager_e, eager_r)
        graph_e = Qwen3Embedder(emb_path, graph_max_tokens=4096, torch_compile=compiled, **common)
        graph_r = Qwen3Reranker(rr_path, graph_max_tokens=4096, torch_compile=compiled, **common)
        assert graph_e.engine.graphs is not None and len(graph_e.engine.graphs.graphs) > 20
        got_d, got_q, got_s = outputs(graph_e, graph_r)
        for _ in range(3):  # replays give the same result, whatever ran in between
            np.testing.assert_array_equal(graph_e.embed_queries(QUERIES), got_q)
            graph_e.embed_documents(DOCS[:2])
        cos = min((got_d * ref_d).sum(1).min(), (got_q * ref_q).sum(1).min())
        delta = np.abs(got_s - ref_s).max()
        print(f"\nGRAPHS {dtype} compiled={compiled} {emb_path}: min cos {cos:.6f}; max |dscore| {delta:.6f}")
        assert cos >= (0.99999 if dtype == "float32" else 0.999)
        assert delta <= (1e-4 if dtype == "float32" else 2e-2)
    finally:
        shutdown_engines()


def test_vllm_fast_path_matches_vllm(checkpoints):
    """``fast_path_tokens``: small calls take the CUDA-graph copy, and agree with vLLM itself."""
    from qwen3_rag import Qwen3Embedder, Qwen3Reranker
    from qwen3_rag.engine import shutdown_engines
    from qwen3_rag.engine.routed import RoutedEmbeddingEngine, RoutedRerankEngine

    emb_path, rr_path = checkpoints
    try:
        fast = {"fast_path_tokens": 8192, "fast_path_compile": True}  # as `qwen3-rag serve` runs it
        emb = Qwen3Embedder(emb_path, backend="vllm", max_length=512, **fast, **VLLM_OPTS)
        rr = Qwen3Reranker(rr_path, backend="vllm", max_length=512, **fast, **VLLM_OPTS)
        assert isinstance(emb.engine, RoutedEmbeddingEngine) and isinstance(rr.engine, RoutedRerankEngine)
        ids = emb.formatter.queries(QUERIES, emb.query_instruction) + emb.formatter.documents(DOCS)
        prompts = rr.formatter.pairs([(q, d) for q in QUERIES for d in DOCS[:-1]], rr.instruction)
        assert emb.engine.fast.graphs.fits(ids) and rr.engine.fast.graphs.fits(prompts)
        cos = (emb.engine.embed(ids) * emb.engine.bulk.embed(ids)).sum(1).min()
        delta = np.abs(rr.engine.score(prompts) - rr.engine.bulk.score(prompts)).max()
        print(f"\nFAST PATH {emb_path}: min cos {cos:.6f}; max |dscore| {delta:.6f}")
        assert cos >= 0.999 and delta <= 2e-2
        big = emb.formatter.documents(DOCS * 30)  # 180 rows: more than a bucket holds, so vLLM
        assert not emb.engine.fast.graphs.fits(big)
        assert emb.engine.embed(big).shape == (180, emb.dimension)
    finally:
        shutdown_engines()


def test_vllm_pool_matches_one_engine(checkpoints):
    """Two vLLM workers on one GPU that tokenize with vLLM's tokenizer agree with one engine here."""
    from qwen3_rag import Qwen3Embedder, Qwen3Reranker
    from qwen3_rag.engine import shutdown_engines

    emb_path, rr_path = checkpoints
    if "g-emb6" in str(emb_path):
        pytest.skip("the tiny checkpoints show it (the pool code does not depend on the shapes)")
    pool = {"engines_per_gpu": 2, "kv_cache_memory_bytes": 2_000_000_000}
    texts = [f"Document {i}: " + "about Paris and bananas " * (i % 40) for i in range(300)]
    pairs = [(q, d) for q in QUERIES for d in texts]
    try:
        one_e = Qwen3Embedder(emb_path, backend="vllm", max_length=512, **VLLM_OPTS)
        one_r = Qwen3Reranker(rr_path, backend="vllm", max_length=512, **VLLM_OPTS)
        ref_d, ref_s = one_e.embed_documents(texts), one_r.score_pairs(pairs)
        shutdown_engines()
        pool_e = Qwen3Embedder(emb_path, backend="vllm", max_length=512, **pool, **VLLM_OPTS)
        assert not pool_e.tokenizer_loaded  # the workers tokenize
        got_d = pool_e.embed_documents(texts)
        pool_e.engine.pool.wait_ready(300)
        startup = pool_e.engine.pool.startup
        assert all(w["tokenizer"] < 1.0 for w in startup["workers"])  # vLLM's tokenizer, no 2nd load
        pool_e.engine.close()
        pool_r = Qwen3Reranker(rr_path, backend="vllm", max_length=512, **pool, **VLLM_OPTS)
        got_s = pool_r.score_pairs(pairs)
        cos = (got_d * ref_d).sum(1).min()
        delta = np.abs(got_s - ref_s).max()
        print(f"\nPOOL {emb_path}: min cos {cos:.6f}; max |dscore| {delta:.6f}; "
              f"start-up {startup}")
        assert cos >= 0.999 and delta <= 2e-2
    finally:
        shutdown_engines()
