"""One store format: the core, LangChain and LlamaIndex each open the stores the others write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from langchain_qwen3_rag import Qwen3Embeddings, Qwen3FaissVectorStore
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores import MetadataFilter, MetadataFilters, VectorStoreQuery
from llama_index.embeddings.qwen3_rag import Qwen3Embedding
from llama_index.vector_stores.qwen3_rag import Qwen3FaissVectorStore as LlamaStore
from lock_support import held_writer_lock

from qwen3_rag import FaissStore, Qwen3Embedder, index_corpus

RECORDS = [
    {"id": "p", "text": "Paris is the capital of France.", "lang": "en"},
    {"id": "b", "text": "Berlin ist die Hauptstadt Deutschlands.", "lang": "de"},
    {"id": "m", "text": "Madrid es la capital de España.", "lang": "es"},
    {"id": "r", "text": "Rome is the capital of Italy.", "lang": "en"},
]
QUERY = "capital of France"


@pytest.fixture(scope="module")
def models(tiny_embedding):
    return (Qwen3Embedder(tiny_embedding, backend="hf"), Qwen3Embeddings(model=tiny_embedding, backend="hf"),
            Qwen3Embedding(model_name=tiny_embedding, backend="hf"))


def _core(path, core) -> list[tuple[str, float]]:
    hits = FaissStore.load(path, core).search(core.embed_queries([QUERY]), k=4)[0]
    return [(h.id, h.score) for h in hits]


def _langchain(path, lc) -> list[tuple[str, float]]:
    store = Qwen3FaissVectorStore.load_local(path, lc)
    return [(d.id, s) for d, s in store.similarity_search_with_score(QUERY, k=4)]


def _llama(path, li) -> list[tuple[str, float]]:
    store = LlamaStore.from_persist_path(path, embed_model=li)
    res = store.query(VectorStoreQuery(query_embedding=li.get_query_embedding(QUERY), similarity_top_k=4))
    return list(zip(res.ids, res.similarities, strict=True))


def _same(a, b) -> None:
    assert [i for i, _ in a] == [i for i, _ in b] and len(a) == 4
    np.testing.assert_allclose([s for _, s in a], [s for _, s in b], atol=1e-5)


def test_core_built_store_opens_in_both_frameworks(models, tmp_path):
    core, lc, li = models
    index_corpus(RECORDS, tmp_path / "core", core, resume=False, show_progress=False)
    reference = _core(tmp_path / "core", core)
    _same(_langchain(tmp_path / "core", lc), reference)
    _same(_llama(tmp_path / "core", li), reference)
    lc_store = Qwen3FaissVectorStore.load_local(tmp_path / "core", lc)
    assert lc_store.similarity_search(QUERY, k=4, filter={"lang": "de"})[0].page_content == RECORDS[1]["text"]
    li_store = LlamaStore.from_persist_path(tmp_path / "core", embed_model=li)
    res = li_store.query(VectorStoreQuery(
        query_embedding=li.get_query_embedding(QUERY), similarity_top_k=4,
        filters=MetadataFilters(filters=[MetadataFilter(key="lang", value="de")])))
    assert res.ids == ["b"] and res.nodes[0].metadata == {"lang": "de"}


def test_langchain_store_opens_in_core_and_llamaindex(models, tmp_path):
    core, lc, li = models
    store = Qwen3FaissVectorStore.from_texts(
        [r["text"] for r in RECORDS], lc, metadatas=[{"lang": r["lang"]} for r in RECORDS],
        ids=[r["id"] for r in RECORDS])
    store.save_local(tmp_path / "lc")
    reference = _core(tmp_path / "lc", core)
    _same(_langchain(tmp_path / "lc", lc), reference)
    _same(_llama(tmp_path / "lc", li), reference)


def test_llamaindex_store_opens_in_core_and_langchain(models, tmp_path):
    core, lc, li = models
    nodes = [TextNode(id_=r["id"], text=r["text"], metadata={"lang": r["lang"]},
                      embedding=li.get_text_embedding(r["text"])) for r in RECORDS]
    store = LlamaStore(embed_model=li)
    store.add(nodes)
    store.persist(str(tmp_path / "li"))
    reference = _core(tmp_path / "li", core)
    _same(_langchain(tmp_path / "li", lc), reference)
    _same(_llama(tmp_path / "li", li), reference)
    doc = Qwen3FaissVectorStore.load_local(tmp_path / "li", lc).get_by_ids(["m"])[0]
    assert doc.page_content == RECORDS[2]["text"] and doc.metadata == {"lang": "es"}


ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> str:
    """Run ``python -m qwen3_rag ...`` on this checkout's code; return its stdout."""
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*inherited, str(ROOT / "src")])}
    proc = subprocess.run([sys.executable, "-m", "qwen3_rag", *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_cli_index_opens_in_both_frameworks(models, tmp_path, tiny_embedding):
    core, lc, li = models
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    _cli("index", str(corpus), "--store", str(tmp_path / "cli"), "--model", tiny_embedding,
         "--backend", "hf", "--no-progress")
    reference = _core(tmp_path / "cli", core)
    _same(_langchain(tmp_path / "cli", lc), reference)
    _same(_llama(tmp_path / "cli", li), reference)


@pytest.mark.slow
def test_framework_stores_open_in_cli_search(models, tmp_path):
    _, lc, li = models
    store = Qwen3FaissVectorStore.from_texts([r["text"] for r in RECORDS], lc, ids=[r["id"] for r in RECORDS])
    store.save_local(tmp_path / "lc")
    out = json.loads(_cli("search", QUERY, "--store", str(tmp_path / "lc"), "-k", "4", "--backend", "hf",
                          "--json"))  # the embedding model comes from the store's manifest
    got = [(r["id"], r["score"]) for r in out["results"]]
    _same(got, _langchain(tmp_path / "lc", lc))
    _same(got, _llama(tmp_path / "lc", li))


def test_store_built_from_vector_shards_opens_in_both_frameworks(models, tmp_path):
    """What ``qwen3_rag.distributed`` builds (per-shard indexes merged) is a store like any other."""
    import pyarrow.parquet as pq

    from qwen3_rag.distributed import build_store
    from qwen3_rag.distributed.shards import shard_table, write_shard_manifest

    core, lc, li = models
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, part in enumerate((RECORDS[:3], RECORDS[3:])):  # two shards, as two write tasks make them
        texts = [r["text"] for r in part]
        table = shard_table([r["id"] for r in part], texts, [json.dumps({"lang": r["lang"]}) for r in part],
                            core.embed_documents(texts))
        pq.write_table(table, shards / f"part-r1-{i:06d}-w.parquet")
    write_shard_manifest(shards, "r1", core.model)
    build_store(shards, tmp_path / "sharded", show_progress=False)
    index_corpus(RECORDS, tmp_path / "core", core, resume=False, show_progress=False)
    reference = _core(tmp_path / "core", core)
    _same(_core(tmp_path / "sharded", core), reference)
    _same(_langchain(tmp_path / "sharded", lc), reference)
    _same(_llama(tmp_path / "sharded", li), reference)
    lc_store = Qwen3FaissVectorStore.load_local(tmp_path / "sharded", lc)
    assert lc_store.similarity_search(QUERY, k=4, filter={"lang": "de"})[0].page_content == RECORDS[1]["text"]


@pytest.mark.slow  # another process holds the lock
def test_every_writer_takes_the_store_s_writer_lock(models, tmp_path):
    """LangChain's save_local, LlamaIndex's persist and the shard build each refuse a store another
    process is writing, at once and naming it, and write it once that process is gone."""
    import pyarrow.parquet as pq

    from qwen3_rag.distributed import build_store
    from qwen3_rag.distributed.shards import shard_table, write_shard_manifest
    from qwen3_rag.store import StoreLockedError

    core, lc, li = models
    texts = [r["text"] for r in RECORDS]
    lc_store = Qwen3FaissVectorStore.from_texts(texts, lc, ids=[r["id"] for r in RECORDS])
    li_store = LlamaStore(embed_model=li)
    li_store.add([TextNode(id_=r["id"], text=r["text"], embedding=li.get_text_embedding(r["text"]))
                  for r in RECORDS])
    (tmp_path / "shards").mkdir()
    pq.write_table(shard_table([r["id"] for r in RECORDS], texts, ["{}"] * len(RECORDS),
                               core.embed_documents(texts)), tmp_path / "shards" / "part-r1-000000-w.parquet")
    write_shard_manifest(tmp_path / "shards", "r1", core.model)
    writers = {"langchain": lambda root: lc_store.save_local(root),
               "llamaindex": lambda root: li_store.persist(str(root)),
               "shard build": lambda root: build_store(tmp_path / "shards", root, overwrite=True,
                                                       show_progress=False)}
    for name, write in writers.items():
        root = tmp_path / name.replace(" ", "-")
        root.mkdir()
        with held_writer_lock(root) as holder:
            with pytest.raises(StoreLockedError, match=f"pid {holder.pid}"):
                write(root)
        write(root)  # the holder is gone: the kernel released its lock
        assert len(FaissStore.load(root)) == len(RECORDS), name
