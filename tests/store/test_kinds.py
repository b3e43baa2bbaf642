"""Index kinds: ``index="auto"`` switches to IVF by size when the store is saved."""

from __future__ import annotations

import numpy as np

from qwen3_rag import FaissStore


def test_auto_index_switches_to_ivf_by_size(tmp_path, monkeypatch, unit):
    from qwen3_rag.store import kinds

    monkeypatch.setattr(kinds, "FLAT_MAX", 1000)
    rng = np.random.default_rng(1)
    vecs = unit(rng, 2000, 16)
    store = FaissStore(16)
    store.add([str(i) for i in range(2000)], vecs, ids=[str(i) for i in range(2000)])
    assert store.index_kind == "flat"
    store.save(tmp_path / "s")
    loaded = FaissStore.load(tmp_path / "s")
    assert loaded.index_kind == "ivf" and loaded.spec.nlist == kinds.default_nlist(2000)
    assert loaded.search(vecs[5], k=1)[0][0].id == "5"
