"""The Ray Data pipeline on a small local Ray (CPU, tiny model): the same store as index_corpus,
a dead actor restarted with no document written twice, reruns, Parquet input, bad records, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from qwen3_rag import FaissStore, index_corpus
from qwen3_rag.distributed import build_store, read_shard_manifest
from qwen3_rag.indexing import BadInputError


def shard_rows(shards: Path) -> list[str]:
    _, root, manifest = read_shard_manifest(shards)
    return [i for name in manifest["shards"]
            for i in pq.read_table(f"{root}/{name}", columns=["id"])["id"].to_pylist()]


@pytest.mark.slow
def test_pipeline_gives_the_store_index_corpus_gives(
    local_ray, tmp_path, emb, tiny_embedding, records, write_jsonl
):
    from qwen3_rag.distributed import embed_to_shards

    recs = records(36)
    write_jsonl(tmp_path / "a.jsonl", recs[:20])
    write_jsonl(tmp_path / "b.jsonl", recs[20:])
    report = embed_to_shards(tmp_path, tmp_path / "shards", model=tiny_embedding, backend="hf",
                             batch_size=8, chunk_tokens=12, chunk_overlap=3)
    built = build_store(tmp_path / "shards", tmp_path / "ray_store", index="flat", show_progress=False)
    ref = index_corpus(recs, tmp_path / "ref_store", emb, chunk_tokens=12, chunk_overlap=3, resume=False,
                       show_progress=False, index="flat")
    store = FaissStore.load(tmp_path / "ray_store", emb)  # the recorded embedder is this one
    ref_store = FaissStore.load(tmp_path / "ref_store", emb)
    assert report.rows == ref.chunks == built.documents == len(store) == len(ref_store) > 36
    assert report.dimension == 64 and built.duplicates_dropped == 0
    ids = sorted(r.id for r in ref_store.iter_records())
    assert sorted(r.id for r in store.iter_records()) == ids
    assert store.get(ids) == ref_store.get(ids)  # same chunk texts and metadata
    np.testing.assert_allclose(store.vectors(ids), ref_store.vectors(ids), atol=2e-5)
    q = emb.embed_queries(["what about rivers?"])
    hits, ref_hits = store.search(q, k=5)[0], ref_store.search(q, k=5)[0]
    # The same top 5: the vectors agree to ~2e-5 (other batches, other processes), so two
    # candidates scoring within that of each other may swap places; each hit must carry the
    # reference store's score for its id, and the k scores must agree in order.
    np.testing.assert_allclose([h.score for h in hits], [h.score for h in ref_hits], atol=1e-4)
    ref_scores = {h.id: h.score for h in ref_store.search(q, k=len(ref_store))[0]}
    for h in hits:
        assert abs(ref_scores[h.id] - h.score) <= 1e-4, (h.id, h.score, ref_scores[h.id])
    assert store.extra["distributed_run"] == report.run_id


@pytest.mark.slow
def test_dead_actor_is_restarted_and_no_document_is_written_twice(
    local_ray, tmp_path, tiny_embedding, records, write_jsonl
):
    from qwen3_rag.distributed import embed_to_shards
    from qwen3_rag.testing.ray_faults import CrashOnceEmbedBatch

    recs = records(40)
    write_jsonl(tmp_path / "c.jsonl", recs)
    marker = tmp_path / "crashed"
    report = embed_to_shards(tmp_path / "c.jsonl", tmp_path / "shards", model=tiny_embedding, backend="hf",
                             batch_size=6, actor_class=CrashOnceEmbedBatch, max_retries=2,
                             actor_kwargs={"crash_marker": str(marker), "crash_on_call": 2})
    pid, rows_lost = marker.read_text().split()
    assert int(rows_lost) > 0 and int(pid) != os.getpid()  # an actor died holding a computed batch
    ids = shard_rows(tmp_path / "shards")
    assert sorted(ids) == sorted(r["id"] for r in recs) and report.rows == 40  # each once
    built = build_store(tmp_path / "shards", tmp_path / "store", show_progress=False)
    assert built.documents == 40 and built.duplicates_dropped == 0


@pytest.mark.slow
def test_rerun_replaces_the_shards_of_an_earlier_run(
    local_ray, tmp_path, tiny_embedding, records, write_jsonl
):
    from qwen3_rag.distributed import embed_to_shards

    src = write_jsonl(tmp_path / "c.jsonl", records(12))
    first = embed_to_shards(src, tmp_path / "shards", model=tiny_embedding, backend="hf")
    with pytest.raises(FileExistsError, match="overwrite"):
        embed_to_shards(src, tmp_path / "shards", model=tiny_embedding, backend="hf")
    write_jsonl(src, records(5, prefix="new"))
    second = embed_to_shards(src, tmp_path / "shards", model=tiny_embedding, backend="hf", overwrite=True)
    assert second.run_id != first.run_id
    files = sorted(p.name for p in (tmp_path / "shards").glob("part-*"))
    assert files and all(f.startswith(f"part-{second.run_id}-") for f in files)
    assert sorted(shard_rows(tmp_path / "shards")) == [f"new{i}" for i in range(5)]


@pytest.mark.slow
def test_parquet_input_and_bad_records(local_ray, tmp_path, tiny_embedding, records):
    import pyarrow as pa

    from qwen3_rag.distributed import embed_to_shards

    recs = records(10)
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "c.parquet")
    embed_to_shards(tmp_path / "c.parquet", tmp_path / "shards", model=tiny_embedding, backend="hf")
    build_store(tmp_path / "shards", tmp_path / "store", show_progress=False)
    got = FaissStore.load(tmp_path / "store").get(["d3"])[0]
    assert got is not None and got.text == recs[3]["text"] and got.metadata == {"topic": "stars", "n": 3}

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": oops}\n', encoding="utf-8")
    with pytest.raises(BadInputError, match=r"bad\.jsonl: malformed JSON"):
        embed_to_shards(bad, tmp_path / "s2", model=tiny_embedding, backend="hf")
    assert not (tmp_path / "s2" / "manifest.json").exists()  # a failed run leaves no finished shards
    with pytest.raises(FileNotFoundError):
        embed_to_shards(tmp_path / "missing.jsonl", tmp_path / "s4", model=tiny_embedding, backend="hf")


@pytest.mark.slow
def test_cli_distributed_index_then_search(local_ray, tmp_path, tiny_embedding, capsys, records, write_jsonl):
    from qwen3_rag.cli import main

    write_jsonl(tmp_path / "c.jsonl", records(15))
    store = tmp_path / "store"
    args = ["distributed-index", str(tmp_path / "c.jsonl"), "--store", str(store), "--model", tiny_embedding,
            "--backend", "hf"]
    assert main([*args, "--batch-size", "8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["embed"]["rows"] == 15 and report["build"]["documents"] == 15
    assert not Path(str(store) + ".shards").exists()  # default shards are removed after the build
    assert main(["search", "stars", "--store", str(store), "--backend", "hf", "-k", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["results"]
    assert len(hits) == 3 and all(h["id"].startswith("d") for h in hits)
    # the same store again: refused without --overwrite
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err


def test_parse_records_validates_as_index_corpus_does():
    pytest.importorskip("ray.data")
    import pyarrow as pa

    from qwen3_rag.distributed.pipeline import parse_records

    lines = [json.dumps({"id": 7, "body": "seven", "when": "2020"}), "  ", json.dumps({"body": "no id"})]
    batch = pa.table({"text": lines[:2], "path": ["f.jsonl"] * 2})
    out = parse_records(batch, input_format="jsonl", text_field="body", id_field="id")
    assert out.to_pylist() == [{"id": "7", "text": "seven", "metadata": '{"when": "2020"}'}]
    with pytest.raises(BadInputError, match=r"f\.jsonl: no 'id'"):
        parse_records(pa.table({"text": lines[2:], "path": ["f.jsonl"]}), input_format="jsonl",
                      text_field="body", id_field="id")
    with pytest.raises(BadInputError, match="'text' must be a non-empty string"):
        parse_records(pa.Table.from_pylist([{"id": "a", "text": ""}]), input_format="parquet",
                      text_field="text", id_field="id")
