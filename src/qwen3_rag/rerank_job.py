"""Large pair-reranking jobs: JSONL in, JSONL out with scores; resumable exactly.

Input lines are ``{"query_id", "doc_id", "query", "document", ...}``. Pairs are scored in
batches made of whole query groups (consecutive lines with the same ``query_id``), so the
prompts sharing a query prefix sit together and vLLM's prefix cache is reused. Each output
line is the input record plus ``relevance_score`` (P(yes)) and ``confidence`` (``|2p − 1|``);
with ``top_k`` each query keeps its best ``k`` pairs, best first, with a 1-based ``rank``.

Progress is committed every ``commit_every`` input lines: the output is flushed and fsynced,
then ``OUT.progress.json`` (input position and output size) is replaced atomically. A run
killed at any moment resumes from the last commit: the output is cut back to the committed
size and the input skips the committed lines, so no pair is lost or written twice.

Example:
    >>> import json, os, tempfile
    >>> from qwen3_rag import Qwen3Reranker
    >>> from qwen3_rag.rerank_job import rerank_pairs
    >>> from qwen3_rag.testing import make_tiny_qwen3
    >>> rr = Qwen3Reranker(make_tiny_qwen3("/tmp/qwen3-rag-doctest-rr", kind="reranker"), backend="hf")
    >>> d = tempfile.mkdtemp()
    >>> with open(f"{d}/pairs.jsonl", "w") as f:
    ...     for i, doc in enumerate(["Paris is in France.", "Bananas.", "Lyon is a city."]):
    ...         _ = f.write(json.dumps({"query_id": "q1", "doc_id": f"d{i}",
    ...                                 "query": "French cities?", "document": doc}) + "\\n")
    >>> report = rerank_pairs(f"{d}/pairs.jsonl", f"{d}/out.jsonl", rr, top_k=2, show_progress=False)
    >>> rows = [json.loads(line) for line in open(f"{d}/out.jsonl")]
    >>> report.pairs_scored, [r["rank"] for r in rows], sorted(rows[0]) [:4]
    (3, [1, 2], ['confidence', 'doc_id', 'document', 'query'])
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qwen3_rag.sources import BadInputError, EmptyCorpusError, JsonlSource

PAIR_FIELDS = ("query_id", "doc_id", "query", "document")


def confidence(p: float) -> float:
    """How far a P(yes) is from undecided: ``|p − (1 − p)| = |2p − 1|``."""
    return abs(2.0 * p - 1.0)


@dataclass
class RerankJobReport:
    """What :func:`rerank_pairs` did."""

    output: str
    pairs_scored: int
    pairs_written: int
    queries: int
    skipped: int
    resumed_from: int
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Group:
    query_id: str
    query: str
    records: list[dict[str, Any]] = field(default_factory=list)


def _pair(rec: dict[str, Any] | None) -> str | None:
    """Why a record is not a usable pair (``None`` when it is)."""
    if rec is None:
        return "not a JSON object"
    missing = [f for f in PAIR_FIELDS if f not in rec]
    if missing:
        return f"missing field {missing[0]!r} (a pair needs {', '.join(PAIR_FIELDS)})"
    for f in ("query", "document"):
        if not isinstance(rec[f], str):
            return f"{f!r} must be a string, got {type(rec[f]).__name__}"
    for f in ("query_id", "doc_id"):
        if not isinstance(rec[f], str | int) or isinstance(rec[f], bool):
            return f"{f!r} must be a string or an integer, got {rec[f]!r:.40}"
    return None


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def rerank_pairs(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    reranker: Any,
    *,
    batch_size: int = 64,
    commit_every: int = 1024,
    top_k: int | None = None,
    min_confidence: float | None = None,
    instruction: str | None = None,
    resume: bool = True,
    overwrite: bool = False,
    skip_bad_lines: bool = False,
    show_progress: bool | None = None,
) -> RerankJobReport:
    """Score every (query, document) pair of a JSONL file into an output JSONL file.

    Args:
        input_path: JSONL of ``{"query_id", "doc_id", "query", "document", ...}``.
        output_path: JSONL written with the input fields plus ``relevance_score`` and
            ``confidence`` (and ``rank`` with ``top_k``).
        reranker: a ``Qwen3Reranker`` (anything with ``score_pairs`` and ``model``).
        batch_size: pairs per scoring call (whole query groups; a large group is one call).
        commit_every: input lines per durable commit.
        top_k: keep each query's ``k`` best pairs, best first; a query's pairs must then be
            on consecutive lines.
        min_confidence: drop pairs whose confidence ``|2p − 1|`` is below this.
        instruction: reranker instruction (default: the reranker's).
        resume: continue an interrupted job (found through ``OUTPUT.progress.json``).
        overwrite: replace an existing output that has no progress file (a finished job).
        skip_bad_lines: skip and count malformed lines instead of raising
            :class:`~qwen3_rag.sources.BadInputError` (which names the line).
        show_progress: tqdm bar with pairs/s (default: when stderr is a terminal).
    """
    from tqdm.auto import tqdm

    if batch_size < 1 or commit_every < 1:
        raise ValueError(f"batch_size and commit_every must be positive, got {batch_size}, {commit_every}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be positive, got {top_k}")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
    started = time.perf_counter()
    src_path = Path(input_path)
    if not src_path.is_file():
        raise FileNotFoundError(f"pairs file not found: {src_path}")
    source = JsonlSource(src_path)
    out_path = Path(output_path)
    progress_path = out_path.with_name(out_path.name + ".progress.json")
    settings = {"input": str(src_path.resolve()), "top_k": top_k, "min_confidence": min_confidence,
                "instruction": instruction, "model": getattr(reranker, "model", None),
                "batch_size": batch_size}
    state = {"consumed": 0, "output_bytes": 0, "scored": 0, "written": 0, "queries": 0, "skipped": 0}
    if resume and progress_path.is_file():
        saved = json.loads(progress_path.read_text(encoding="utf-8"))
        if saved.get("settings") != settings:
            raise ValueError(
                f"{progress_path} belongs to a job with other settings; re-run it with the same "
                "settings to resume, or pass resume=False to start over"
            )
        state.update(saved["state"])
        out = open(out_path, "r+b")
        out.truncate(state["output_bytes"])
        out.seek(state["output_bytes"])
    else:
        if out_path.exists() and not overwrite and not progress_path.is_file():
            raise FileExistsError(f"output exists: {out_path} (a finished job?); remove it or pass "
                                  "overwrite=True (--overwrite)")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(out_path, "wb")
        _write_json_atomic(progress_path, {"settings": settings, "state": state})
    resumed_from = state["consumed"]
    committed = resumed_from
    seen: set[str] = set()
    visible = show_progress if show_progress is not None else sys.stderr.isatty()
    bar = tqdm(total=source.count() if visible else None, initial=resumed_from, unit="pair",
               desc="reranking", disable=not visible, dynamic_ncols=True)

    def commit() -> None:
        nonlocal committed
        out.flush()
        os.fsync(out.fileno())
        state["output_bytes"] = out.tell()
        _write_json_atomic(progress_path, {"settings": settings, "state": state})
        committed = state["consumed"]

    def process(groups: list[_Group], frontier: int) -> None:
        pairs = [(r["query"], r["document"]) for g in groups for r in g.records]
        scores = reranker.score_pairs(pairs, instruction) if pairs else []
        pos = 0
        for g in groups:
            scored = []
            for r in g.records:
                p = float(scores[pos])
                pos += 1
                scored.append({**r, "relevance_score": p, "confidence": confidence(p)})
            if min_confidence is not None:
                scored = [r for r in scored if r["confidence"] >= min_confidence]
            if top_k is not None:
                scored = sorted(scored, key=lambda r: -r["relevance_score"])[:top_k]
                for rank, r in enumerate(scored, start=1):
                    r["rank"] = rank
            out.write(b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in scored))
            state["written"] += len(scored)
        state["scored"] += len(pairs)
        state["queries"] += len(groups)
        bar.update(frontier - state["consumed"])
        state["consumed"] = frontier
        if state["consumed"] - committed >= commit_every:
            commit()

    try:
        batch: list[_Group] = []
        open_group: _Group | None = None
        n_batch = 0
        position = resumed_from  # source position of the next item
        for item in source.items(resumed_from):
            position += 1
            reason = item.reason or _pair(item.record)
            if reason:
                if not skip_bad_lines:
                    raise BadInputError(f"{item.where}: {reason}")
                state["skipped"] += 1
                continue
            rec = item.record
            assert rec is not None
            qid = str(rec["query_id"])
            if open_group is None or qid != open_group.query_id:
                if top_k is not None and qid in seen:
                    raise BadInputError(
                        f"{item.where}: query_id {qid!r} appears again after other queries; with "
                        "top_k a query's pairs must be on consecutive lines (sort the file by query_id)"
                    )
                seen.add(qid)
                if open_group is not None:
                    batch.append(open_group)
                    if n_batch >= batch_size:
                        process(batch, position - 1)  # everything before this line is done
                        batch, n_batch = [], 0
                open_group = _Group(qid, rec["query"])
            open_group.records.append(rec)
            n_batch += 1
        if open_group is not None:
            batch.append(open_group)
        process(batch, position)
        if state["scored"] == 0 and resumed_from == 0:
            raise EmptyCorpusError(f"no pairs in {src_path}" + (
                f" ({state['skipped']} bad lines skipped)" if state["skipped"] else ""))
        commit()
    except BaseException:
        out.close()
        bar.close()
        if committed == 0:  # nothing durable yet: leave nothing behind
            for p in (out_path, progress_path):
                p.unlink(missing_ok=True)
        raise
    out.close()
    bar.close()
    progress_path.unlink()
    return RerankJobReport(
        output=str(out_path), pairs_scored=state["scored"], pairs_written=state["written"],
        queries=state["queries"], skipped=state["skipped"], resumed_from=resumed_from,
        elapsed_s=time.perf_counter() - started,
    )


__all__ = ["PAIR_FIELDS", "RerankJobReport", "confidence", "rerank_pairs"]
