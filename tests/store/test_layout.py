"""The versioned layout: a crash at any point of a save leaves the previous version loadable."""

from __future__ import annotations

import pytest

from qwen3_rag import FaissStore
from qwen3_rag.store import layout


def test_crash_inside_save_keeps_previous_version(tmp_path, data, monkeypatch, filled):
    vecs, *_ = data
    path = tmp_path / "s"
    store = filled(path=path)
    store.save()
    store.add(["new"], vecs[:1], ids=["new-doc"])
    store.delete(["doc-1"])

    real_write = layout.write_version

    def crash_midway(vdir, *parts):
        real_write(vdir, *parts)  # files written ...
        (vdir / "docs.sqlite").write_bytes(b"half")  # ... one of them half-way
        raise OSError("disk full")

    monkeypatch.setattr(layout, "write_version", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        store.save()
    old = FaissStore.load(path)
    assert len(old) == 300 and "doc-1" in old and "new-doc" not in old
    assert not [p for p in path.iterdir() if p.name.startswith(".tmp")]  # temp version removed

    # a crash after the new version is complete but before CURRENT moves: still the old one
    monkeypatch.setattr(layout, "write_version", real_write)

    def killed(root, version):
        raise KeyboardInterrupt

    monkeypatch.setattr(layout, "point_to", killed)
    with pytest.raises(KeyboardInterrupt):
        store.save()
    assert len(FaissStore.load(path)) == 300
    monkeypatch.undo()
    store.save()
    new = FaissStore.load(path)
    assert len(new) == 300 and "new-doc" in new and "doc-1" not in new
    current = (path / "CURRENT").read_text().strip()
    assert sorted(p.name for p in path.iterdir()) == ["CURRENT", current]  # old versions pruned
