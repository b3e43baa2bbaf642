"""``create_app``: what it refuses, and which routes it assembles for which models."""

from __future__ import annotations

import pytest

from qwen3_rag.service import ServiceState, create_app


def test_a_store_path_instead_of_a_store_is_a_clear_error(embedder):
    with pytest.raises(TypeError, match=r"store must be a qwen3_rag.FaissStore .*got str 'my_store'"):
        create_app(embedder, store="my_store")


def test_the_app_shares_one_service_state(embedder, reranker, store):
    app = create_app(embedder, reranker, store, api_key="k", embedding_model_name="emb")
    state = app.state.service
    assert isinstance(state, ServiceState)
    assert (state.embedding_model_name, state.reranker_model_name) == ("emb", reranker.model)
    assert state.store is store and state.api_key == b"k"
    assert state.bounds.dimension == embedder.dimension
