"""The padded bucket computation behind the hf backend's CUDA graphs.

On CPU the runner runs the same padded forward eagerly (``capture=False``): these tests check
that padding to a bucket (extra padding columns, all-padding rows, the 4-D mask built from the
0/1 mask) gives the engines' results. The capture itself is checked on a GPU
(``tests/engine/test_gpu.py::test_hf_cuda_graphs_match_eager``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qwen3_rag.engine.cuda_graphs import BUCKET_LENGTHS, GraphRunner, attention_inputs, left_pad


def test_attention_inputs_are_causal_and_skip_padding():
    _, mask = left_pad([[5, 6, 7], [8]], rows=3, length=4, pad_id=0)
    allowed, pos = attention_inputs(mask)
    assert allowed.shape == (3, 1, 4, 4) and allowed.dtype == torch.bool
    for b in range(2):
        for i in range(4):
            for j in range(4):
                if mask[b, i]:  # a real query: causal, real keys only
                    assert bool(allowed[b, 0, i, j]) == (j <= i and bool(mask[b, j])), (b, i, j)
    assert bool(allowed[1, 0, 0].all())  # a padding query with no real key attends everywhere
    assert bool(allowed[2].all())  # an all-padding row too: no NaN from an empty softmax
    assert pos.tolist() == [[0, 0, 1, 2], [0, 0, 0, 0], [0, 0, 0, 0]]
    additive, _ = attention_inputs(mask, torch.float32)
    assert torch.equal(additive == 0, allowed)
    assert float(additive.min()) == torch.finfo(torch.float32).min


def test_buckets_are_the_smallest_that_fit():
    runner = GraphRunner(lambda i, m: i, torch.device("cpu"), pad_id=0, max_tokens=4096, max_rows=32,
                         capture=False)
    assert runner.bucket(1, 1) == (1, 16)
    assert runner.bucket(20, 130) == (20, 144)
    assert runner.bucket(9, 200) == (12, 224)
    assert runner.bucket(33, 10) is None  # more rows than max_rows
    assert runner.bucket(32, 200) is None  # 32 x 224 > 4096 tokens
    assert runner.max_length == 2048
    assert runner.fits([[1] * 100] * 20) and not runner.fits([[1] * 3000]) and not runner.fits([])
    with pytest.raises(ValueError, match="do not fit"):
        runner.run([[1] * 3000])
    with pytest.raises(ValueError, match="max_tokens"):
        GraphRunner(lambda i, m: i, "cpu", pad_id=0, max_tokens=BUCKET_LENGTHS[0] - 1, capture=False)
    with pytest.raises(ValueError, match="empty"):
        runner.run([[1, 2], []])


def _seqs(rng, n, lo, hi, vocab=1000):
    return [rng.integers(10, vocab, size=int(rng.integers(lo, hi))).tolist() for _ in range(n)]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_padded_bucket_forward_matches_the_engines(tiny_embedding, tiny_reranker, attn):
    from qwen3_rag.engine.base import EngineConfig
    from qwen3_rag.engine.hf import HFEmbeddingEngine, HFRerankEngine

    rng = np.random.default_rng(0)
    opts = {"device": "cpu", "attn_implementation": attn}
    emb = HFEmbeddingEngine(EngineConfig("embedding", tiny_embedding, "hf", 512), opts)
    rr = HFRerankEngine(EngineConfig("reranker", tiny_reranker, "hf", 512), opts, yes_id=9693, no_id=2152)
    assert emb.graphs is None and rr.graphs is None  # CPU: no graphs unless asked (and then an error)
    for eng in (emb, rr):
        runner = eng.graph_runner(4096, capture=False)  # the mask: boolean (sdpa) or additive (eager)
        for n, lo, hi in ((1, 3, 4), (5, 1, 40), (20, 60, 130)):  # buckets (1,16), (6,48), (20,144)
            seqs = _seqs(rng, n, lo, hi)
            assert runner.fits(seqs)
            got = runner.run(seqs).numpy()
            assert got.shape[0] == n and np.isfinite(got).all()
            if eng is emb:
                got = got / np.linalg.norm(got, axis=1, keepdims=True)
                np.testing.assert_allclose(got, emb.embed(seqs), atol=2e-5)
            else:
                np.testing.assert_allclose(got[:, 0], rr.score(seqs), atol=2e-5)


def test_cuda_graphs_need_cuda(tiny_embedding):
    from qwen3_rag.engine.base import EngineConfig
    from qwen3_rag.engine.hf import HFEmbeddingEngine

    with pytest.raises(ValueError, match="cuda_graphs=True needs a CUDA device"):
        HFEmbeddingEngine(EngineConfig("embedding", tiny_embedding, "hf", 512),
                          {"device": "cpu", "cuda_graphs": True})


def test_routed_engine_sends_calls_that_fit_a_graph_to_the_fast_path(tiny_embedding):
    from qwen3_rag.engine.base import EmbeddingEngine, EngineConfig
    from qwen3_rag.engine.hf import HFEmbeddingEngine
    from qwen3_rag.engine.routed import RoutedEmbeddingEngine

    config = EngineConfig("embedding", tiny_embedding, "hf", 512)
    fast = HFEmbeddingEngine(config, {"device": "cpu"})
    fast.graphs = fast.graph_runner(256, capture=False)
    reference = HFEmbeddingEngine(config, {"device": "cpu", "max_batch_size": 4})

    class Bulk(EmbeddingEngine):
        dimension = fast.dimension

        def embed(self, token_ids):
            calls.append(len(token_ids))
            return reference.embed(token_ids)

    calls: list[int] = []
    bulk = Bulk(config, {})
    routed = RoutedEmbeddingEngine(config, {}, bulk, fast)
    rng = np.random.default_rng(1)
    small, large = _seqs(rng, 3, 5, 30), _seqs(rng, 40, 5, 30)  # (4 x 32) fits; 40 rows do not
    np.testing.assert_allclose(routed.embed(small), reference.embed(small), atol=2e-5)
    assert calls == []
    np.testing.assert_allclose(routed.embed(large), reference.embed(large), atol=2e-5)
    assert calls == [40]
    routed.close()
    assert routed.closed and fast.closed and bulk.closed


def test_fast_path_tokens_is_checked(tiny_embedding):
    from qwen3_rag.engine import get_engine
    from qwen3_rag.engine.routed import fast_options

    with pytest.raises(ValueError, match="vllm backend option"):
        get_engine("embedding", tiny_embedding, "hf", max_length=512, options={"fast_path_tokens": 4096})
    with pytest.raises(ValueError, match="number of tokens"):
        fast_options({}, "lots")
    with pytest.raises(ValueError, match="at least 16"):
        fast_options({}, 8)
    with pytest.raises(ValueError, match="fast_path_compile must be true or false"):
        fast_options({}, 64, "yes")
    with pytest.raises(ValueError, match="fast_path_compile needs fast_path_tokens"):
        get_engine("embedding", tiny_embedding, "hf", max_length=512, options={"fast_path_compile": True})
    assert fast_options({"dtype": "float16", "trust_remote_code": True}, 64, True) == {
        "device": "cuda", "cuda_graphs": True, "graph_max_tokens": 64, "max_batch_size": 32,
        "torch_compile": True, "dtype": "float16", "trust_remote_code": True}


def test_torch_compile_compiles_one_layer_for_every_layer_and_shape(tiny_reranker):
    """Regional compilation: the decoder layers share one Dynamo graph across layers and shapes,
    and the compiled engine scores as the eager one does."""
    from torch._dynamo.utils import counters

    from qwen3_rag.engine.base import EngineConfig
    from qwen3_rag.engine.hf import HFRerankEngine

    config = EngineConfig("reranker", tiny_reranker, "hf", 512)
    with pytest.raises(ValueError, match="torch_compile must be true or false"):
        HFRerankEngine(config, {"device": "cpu", "torch_compile": "fast"}, yes_id=9693, no_id=2152)
    eager = HFRerankEngine(config, {"device": "cpu"}, yes_id=9693, no_id=2152)
    torch._dynamo.reset()
    counters.clear()
    compiled = HFRerankEngine(config, {"device": "cpu", "torch_compile": True, "max_batch_size": 8},
                              yes_id=9693, no_id=2152)
    layers = compiled.model.base_model.layers
    assert len(layers) > 1 and all(layer._compiled_call_impl is not None for layer in layers)
    rng = np.random.default_rng(2)
    for n, lo, hi in ((3, 5, 20), (8, 30, 90), (5, 2, 9)):  # three padded shapes
        seqs = _seqs(rng, n, lo, hi)
        np.testing.assert_allclose(compiled.score(seqs), eager.score(seqs), atol=2e-5)
    assert counters["stats"]["unique_graphs"] == 1
