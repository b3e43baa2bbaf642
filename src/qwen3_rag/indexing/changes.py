"""Which source records changed since a store was built: content hashes, and what each record is.

Every record an indexing job stages carries its content hash: a digest of its id, text and
metadata, the embedder's fingerprint and the chunking settings (so another model or other
chunks change every hash). The store keeps it with each of the record's documents
(:data:`~qwen3_rag.store.documents.SOURCE_COLUMNS`). Running the job again, a record is

- ``added``: no document of the store came from its id;
- ``unchanged``: the store's documents of its id all have its hash (and no record of that id
  was staged earlier in this run): it is not embedded, and the store keeps them;
- ``updated``: otherwise (other content; or a document of that id from before hashes were
  kept; or the id repeats a record staged earlier in this run, which the later one replaces).

Records are classified a block at a time, with one SQL lookup into the saved store's documents
and one into the staging database per block (never a dict of the whole store).

Example:
    >>> digest = settings_digest({"model": "m", "dimension": 4}, None, None)
    >>> record_hash(digest, "a", "Hi.", {"x": 1}) == record_hash(digest, "a", "Hi.", {"x": 1})
    True
    >>> record_hash(digest, "a", "Hi.", {"x": 1}) == record_hash(digest, "a", "Hi!", {"x": 1})
    False
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from qwen3_rag.indexing.records import Document
from qwen3_rag.indexing.staging import Staging
from qwen3_rag.store import CURRENT, read_manifest
from qwen3_rag.store.documents import Documents
from qwen3_rag.store.layout import DOCS_FILE

KINDS = ("added", "updated", "unchanged")
"""What a record can be (see the module docstring)."""


def settings_digest(fingerprint: dict[str, Any], chunk_tokens: int | None,
                    chunk_overlap: int | None) -> bytes:
    """The part of every record's hash that the job's settings make: the embedder and the chunking."""
    settings = {"embedder": fingerprint, "chunk_tokens": chunk_tokens,
                "chunk_overlap": chunk_overlap if chunk_tokens else None}
    return hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(), digest_size=16).digest()


def record_hash(digest: bytes, doc_id: str, text: str, metadata: dict[str, Any]) -> str:
    """A record's content hash (hex): its id, text and metadata under the settings ``digest``."""
    content = json.dumps([doc_id, text, metadata], sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(digest + content.encode(), digest_size=16).hexdigest()


class Changes:
    """Classifies the records of a job into ``store`` against its saved version.

    Args:
        store: the store directory (``None``, or no saved version: every record is ``added``).
        staging: the job's staging files (what this run staged so far).
        digest: :func:`settings_digest` of the job.
    """

    def __init__(self, store: Path | None, staging: Staging, digest: bytes):
        self.st = staging
        self.digest = digest
        self.docs: Documents | None = None
        if store is not None and (store / CURRENT).is_file():
            vdir, _ = read_manifest(store)
            self.docs = Documents.open(vdir / DOCS_FILE, next_key=0)

    def hash(self, doc: Document) -> str:
        """The content hash of a document read from the source."""
        return record_hash(self.digest, *doc)

    def classify(self, docs: list[tuple[Document, str]], staged: set[str], unchanged: set[str]
                 ) -> list[tuple[str, bool]]:
        """What each of ``docs`` ((document, hash) in source order) is, and whether its id repeats
        an earlier record of this run. ``staged`` and ``unchanged``: ids of records of this run
        not in the staging database yet (in a batch not staged yet), added to as records are
        classified."""
        ids = list(dict.fromkeys(doc[0] for doc, _ in docs))
        stored: dict[str, set[str | None]] = {}
        if self.docs is not None:
            for source, h in self.docs.source_hashes(ids):
                stored.setdefault(source, set()).add(h)
        staged_before = self.st.staged_sources(ids)
        unchanged_before = self.st.unchanged_sources(ids)
        out = []
        for (doc_id, _, _), h in docs:
            was_staged = doc_id in staged or doc_id in staged_before
            repeated = was_staged or doc_id in unchanged or doc_id in unchanged_before
            if not was_staged and stored.get(doc_id) == {h}:
                kind = "unchanged"
                unchanged.add(doc_id)
            else:
                kind = "added" if doc_id not in stored and not repeated else "updated"
                staged.add(doc_id)
            out.append((kind, repeated))
        return out

    def close(self) -> None:
        """Close the saved store's documents."""
        if self.docs is not None:
            self.docs.close()
            self.docs = None


__all__ = ["KINDS", "Changes", "record_hash", "settings_digest"]
