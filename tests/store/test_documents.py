"""Metadata filters that SQLite cannot answer are refused with a message, not an SQL error."""

from __future__ import annotations

import numpy as np
import pytest

from qwen3_rag import FaissStore


@pytest.mark.parametrize("flt, error, message", [
    ({"k": {}}, TypeError, "empty dict"),
    ({"k": float("nan")}, ValueError, "must be finite"),
    ({"k": {"$in": [float("inf")]}}, ValueError, "must be finite"),
    ({"k": {"$gt": 10**30}}, ValueError, "64-bit integer range"),
])
def test_unanswerable_filters_are_refused(flt, error, message):
    store = FaissStore(2)
    store.add(["a", "b"], np.eye(2, dtype=np.float32), ids=["1", "2"], metadatas=[{"k": 1}, {}])
    with pytest.raises(error, match=message):
        store.search(np.array([1, 0], dtype=np.float32), k=2, filter=flt)
    assert [h.id for h in store.search(np.array([1, 0], dtype=np.float32), k=2, filter={"k": 1})[0]] == ["1"]
