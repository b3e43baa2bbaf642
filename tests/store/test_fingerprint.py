"""A store recognises its model by what it is: real tiny checkpoints copied, re-weighted, cut
to fewer dimensions, found in a Hugging Face cache, and the explicit override."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from qwen3_rag import FaissStore, Qwen3Embedder
from qwen3_rag.store import EmbedderMismatchError, check_fingerprint
from qwen3_rag.store.fingerprint import checkpoint_digest, model_checkpoint
from qwen3_rag.testing import make_tiny_qwen3


def _saved_store(path, embedder) -> FaissStore:
    vecs = embedder.embed_documents(["alpha", "beta", "gamma"])
    store = FaissStore(vecs.shape[1], embedder=embedder)
    store.add(["alpha", "beta", "gamma"], vecs, ids=["a", "b", "c"])
    store.save(path)
    return store


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny checkpoint, a ``cp -r`` copy of it, and one of other weights (same shapes)."""
    root = tmp_path_factory.mktemp("ckpt")
    emb = make_tiny_qwen3(root / "emb", seed=0)
    shutil.copytree(emb, root / "emb_copy")
    other = make_tiny_qwen3(root / "other", seed=1)
    return emb, str(root / "emb_copy"), other


def test_a_copied_model_directory_opens_the_store(tmp_path, checkpoints):
    emb, copy, _ = checkpoints
    store = _saved_store(tmp_path / "s", Qwen3Embedder(emb, backend="hf"))
    assert store.fingerprint["checkpoint"].startswith("sha256:")
    loaded = FaissStore.load(tmp_path / "s", Qwen3Embedder(copy, backend="hf"))
    assert len(loaded) == 3
    q = Qwen3Embedder(copy, backend="hf").embed_queries(["alpha"])
    assert loaded.search(q, k=1)[0][0].id in {"a", "b", "c"}


def test_other_weights_or_dimensions_are_refused(tmp_path, checkpoints):
    emb, _, other = checkpoints
    assert checkpoint_digest(emb) != checkpoint_digest(other)  # same shapes, other weights
    _saved_store(tmp_path / "s", Qwen3Embedder(emb, backend="hf"))
    with pytest.raises(EmbedderMismatchError, match="another checkpoint"):
        FaissStore.load(tmp_path / "s", Qwen3Embedder(other, backend="hf"))
    with pytest.raises(EmbedderMismatchError, match=r"64-dimensional.*32-dimensional"):
        FaissStore.load(tmp_path / "s", Qwen3Embedder(emb, backend="hf", dimensions=32))


def test_a_changed_config_or_tokenizer_is_another_checkpoint(tmp_path, checkpoints):
    emb, _, _ = checkpoints
    base = checkpoint_digest(emb)
    for name, edit in (("config.json", lambda s: s.replace('"rms_norm_eps": 1e-06', '"rms_norm_eps": 1e-05')),
                       ("tokenizer_config.json", lambda s: s.replace("}", ', "x": 1}', 1))):
        changed = shutil.copytree(emb, tmp_path / name)
        text = (changed / name).read_text()
        assert edit(text) != text
        (changed / name).write_text(edit(text))
        assert checkpoint_digest(changed) != base, name


def test_a_hub_id_in_the_cache_and_a_local_download_are_the_same_model(tmp_path, checkpoints, monkeypatch):
    import huggingface_hub.constants

    emb, copy, other = checkpoints
    commit = "c54f2e0123456789abcdef0123456789abcdef01"
    repo = tmp_path / "hub" / "models--org--tiny-emb"
    shutil.copytree(emb, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    hub = model_checkpoint("org/tiny-emb")
    assert hub == {"checkpoint": checkpoint_digest(emb), "revision": commit}
    assert model_checkpoint("org/not-cached") == {}
    vecs = Qwen3Embedder(emb, backend="hf").embed_documents(["alpha"])
    store = FaissStore(64, embedder={"model": "org/tiny-emb", "dimension": 64, **hub})
    store.add(["alpha"], vecs, ids=["a"])
    store.save(tmp_path / "s")
    assert FaissStore.load(tmp_path / "s").fingerprint["revision"] == commit
    assert len(FaissStore.load(tmp_path / "s", Qwen3Embedder(copy, backend="hf"))) == 1  # a local download
    with pytest.raises(EmbedderMismatchError, match="another checkpoint"):
        FaissStore.load(tmp_path / "s", Qwen3Embedder(other, backend="hf"))


def test_old_stores_keep_the_name_check(tmp_path, checkpoints):
    emb, copy, _ = checkpoints
    store = FaissStore(64, embedder={"model": emb, "dimension": 64})  # a manifest of model + dimension
    store.add(["alpha"], np.eye(64, dtype=np.float32)[:1], ids=["a"])
    store.save(tmp_path / "s")
    assert len(FaissStore.load(tmp_path / "s", Qwen3Embedder(emb, backend="hf"))) == 1
    with pytest.raises(EmbedderMismatchError, match="not"):
        FaissStore.load(tmp_path / "s", Qwen3Embedder(copy, backend="hf"))


def test_the_model_check_can_be_turned_off_with_a_warning(checkpoints, caplog):
    emb, _, other = checkpoints
    recorded = Qwen3Embedder(emb, backend="hf").fingerprint
    given = Qwen3Embedder(other, backend="hf")
    with pytest.raises(EmbedderMismatchError):
        check_fingerprint(recorded, 64, given, "store s")
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        check_fingerprint(recorded, 64, given, "store s", check_model=False)
    assert "model check is off" in caplog.text
    with pytest.raises(EmbedderMismatchError, match="dimensional"):  # the dimension still counts
        check_fingerprint(recorded, 32, given, "store s", check_model=False)


def test_index_corpus_refuses_another_checkpoint_unless_told(tmp_path, checkpoints, caplog):
    from qwen3_rag import index_corpus

    emb, copy, other = checkpoints
    index_corpus([{"id": "a", "text": "alpha"}], tmp_path / "s", Qwen3Embedder(emb, backend="hf"))
    report = index_corpus([{"id": "b", "text": "beta"}], tmp_path / "s", Qwen3Embedder(copy, backend="hf"))
    assert report.store_size == 2  # the copy is the same model
    with pytest.raises(EmbedderMismatchError, match="another checkpoint"):
        index_corpus([{"id": "c", "text": "gamma"}], tmp_path / "s", Qwen3Embedder(other, backend="hf"))
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        report = index_corpus([{"id": "c", "text": "gamma"}], tmp_path / "s",
                              Qwen3Embedder(other, backend="hf"), check_model=False)
    assert report.store_size == 3 and "model check is off" in caplog.text


@pytest.mark.slow
def test_cli_index_and_search_on_a_copied_model_and_no_model_check(tmp_path, checkpoints):
    import json
    import os
    import subprocess
    import sys

    emb, copy, other = checkpoints
    (tmp_path / "c.jsonl").write_text('{"id": "a", "text": "alpha"}\n{"id": "b", "text": "beta"}\n')
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QWEN3_RAG_BACKEND": "hf"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "qwen3_rag", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    assert cli("index", "c.jsonl", "--store", "s", "--model", emb, "--no-progress").returncode == 0
    found = cli("search", "alpha", "--store", "s", "--model", copy, "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)
    other_search = cli("search", "alpha", "--store", "s", "--model", other, "--json")
    assert other_search.returncode == 2 and "another checkpoint" in other_search.stderr
    told = cli("search", "alpha", "--store", "s", "--model", other, "--json", "--no-model-check")
    assert told.returncode == 0 and "model check is off" in told.stderr, told.stderr
    refused = cli("index", "c.jsonl", "--store", "s", "--model", other, "--no-progress")
    assert refused.returncode == 2 and "another checkpoint" in refused.stderr
    told = cli("index", "c.jsonl", "--store", "s", "--model", other, "--no-progress", "--no-model-check")
    assert told.returncode == 0, told.stderr
    assert "model check is off" in told.stderr


def test_load_and_the_adapters_pass_check_model_through(tmp_path, checkpoints, caplog):
    from langchain_qwen3_rag import Qwen3Embeddings
    from langchain_qwen3_rag import Qwen3FaissVectorStore as LangChainStore
    from llama_index.embeddings.qwen3_rag import Qwen3Embedding
    from llama_index.vector_stores.qwen3_rag import Qwen3FaissVectorStore as LlamaStore

    emb, _, other = checkpoints
    _saved_store(tmp_path / "s", Qwen3Embedder(emb, backend="hf"))
    with pytest.raises(EmbedderMismatchError, match="another checkpoint"):
        FaissStore.load(tmp_path / "s", Qwen3Embedder(other, backend="hf"))
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        unchecked = FaissStore.load(tmp_path / "s", Qwen3Embedder(other, backend="hf"), check_model=False)
    assert len(unchecked) == 3
    assert caplog.text.count("model check is off") == 1
    lc = Qwen3Embeddings(model=other, backend="hf")
    with pytest.raises(EmbedderMismatchError):
        LangChainStore.load_local(tmp_path / "s", lc)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        assert len(LangChainStore.load_local(tmp_path / "s", lc, check_model=False).get_by_ids(["a"])) == 1
    assert caplog.text.count("model check is off") == 1
    li = Qwen3Embedding(model_name=other, backend="hf")
    with pytest.raises(EmbedderMismatchError):
        LlamaStore.from_persist_path(str(tmp_path / "s"), embed_model=li)
    assert LlamaStore.from_persist_path(str(tmp_path / "s"), embed_model=li, check_model=False) is not None
    with pytest.raises(EmbedderMismatchError, match="dimensional"):  # the dimension still counts
        FaissStore.load(tmp_path / "s", Qwen3Embedder(emb, backend="hf", dimensions=32), check_model=False)
