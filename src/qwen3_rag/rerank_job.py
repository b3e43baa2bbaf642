"""Pair reranking as a job: JSONL of (query, document) pairs in, JSONL with scores out; resumable.

This module owns :class:`PairRerankJob` (reading, scoring, selecting, writing and committing a
pairs file), its checkpoint file and :func:`rerank_pairs`, the one-call form the CLI's
``qwen3-rag rerank`` uses.

Input lines are ``{"query_id", "doc_id", "query", "document", ...}``. Pairs are scored in
batches made of whole query groups (consecutive lines with the same ``query_id``), so the
prompts sharing a query prefix sit together and vLLM's prefix cache is reused. Each output
line is the input record plus ``relevance_score`` (P(yes)) and ``confidence`` (``|2p − 1|``);
with ``top_k`` each query keeps its best ``k`` pairs, best first, with a 1-based ``rank``
(selected by :func:`qwen3_rag.ranking.select_results`, like every other reranking).

Progress is committed every ``commit_every`` input lines: the output is flushed and fsynced,
then ``OUT.progress.json`` (input position and output size) is replaced atomically. A job
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
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from qwen3_rag.indexing.sources import BadInputError, EmptyCorpusError, Item, JsonlSource
from qwen3_rag.ranking import confidence, select_results

PAIR_FIELDS = ("query_id", "doc_id", "query", "document")


@dataclass
class RerankJobReport:
    """What a pair-rerank job did."""

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
class JobCounters:
    """Where a job stands; saved with every commit, so a resumed job starts from them."""

    consumed: int = 0
    """Input lines done (scored, or skipped as bad)."""
    output_bytes: int = 0
    """Size of the output at the last commit."""
    scored: int = 0
    written: int = 0
    queries: int = 0
    skipped: int = 0


@dataclass
class QueryGroup:
    """Consecutive input records of one ``query_id``: scored and selected together."""

    query_id: str
    records: list[dict[str, Any]] = field(default_factory=list)


def pair_problem(rec: dict[str, Any] | None) -> str | None:
    """Why a record is not a usable pair (``None`` when it is).

    Example:
        >>> pair_problem({"query_id": 1, "doc_id": "d", "query": "q", "document": "x"}) is None
        True
        >>> pair_problem({"query_id": 1, "doc_id": "d", "query": "q"})
        "missing field 'document' (a pair needs query_id, doc_id, query, document)"
    """
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


class Checkpoint:
    """``OUTPUT.progress.json``: the job's settings and its counters at the last commit.

    Replaced atomically (written beside, fsynced, renamed), so it always describes a committed
    state; it exists only while a job is unfinished.
    """

    def __init__(self, output: Path, settings: dict[str, Any]):
        self.path = output.with_name(output.name + ".progress.json")
        self.settings = settings

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> JobCounters:
        """The counters saved by an interrupted job with the same settings."""
        saved = json.loads(self.path.read_text(encoding="utf-8"))
        if saved.get("settings") != self.settings:
            raise ValueError(
                f"{self.path} belongs to a job with other settings; re-run it with the same "
                "settings to resume, or pass resume=False to start over"
            )
        return JobCounters(**saved["state"])

    def save(self, counters: JobCounters) -> None:
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"settings": self.settings, "state": asdict(counters)}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class PairRerankJob:
    """Score every (query, document) pair of a JSONL file into an output JSONL file.

    :meth:`run` does it all; the steps are :meth:`resume` (open the output where the job
    stands), :meth:`stream` (batches of whole query groups), :meth:`write` (score, select,
    write, commit when due) and :meth:`report`. The arguments are those of :func:`rerank_pairs`.

    Example:
        >>> import json, tempfile
        >>> from qwen3_rag import Qwen3Reranker
        >>> from qwen3_rag.testing import make_tiny_qwen3
        >>> rr = Qwen3Reranker(make_tiny_qwen3("/tmp/qwen3-rag-doctest-rr", kind="reranker"), backend="hf")
        >>> d = tempfile.mkdtemp()
        >>> _ = open(f"{d}/p.jsonl", "w").write("".join(json.dumps(
        ...     {"query_id": q, "doc_id": i, "query": q, "document": f"doc {i}"}) + "\\n"
        ...     for q in ("a", "b") for i in range(3)))
        >>> job = PairRerankJob(f"{d}/p.jsonl", f"{d}/o.jsonl", rr, top_k=1, show_progress=False)
        >>> r = job.run()
        >>> r.pairs_scored, r.pairs_written, r.queries
        (6, 2, 2)
    """

    def __init__(
        self,
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
    ):
        check_job_options(batch_size, commit_every, top_k, min_confidence)
        self.started = time.perf_counter()
        src_path = Path(input_path)
        if not src_path.is_file():
            raise FileNotFoundError(f"pairs file not found: {src_path}")
        self.source = JsonlSource(src_path)
        self.output = Path(output_path)
        self.reranker = reranker
        self.batch_size, self.commit_every = batch_size, commit_every
        self.top_k, self.min_confidence, self.instruction = top_k, min_confidence, instruction
        self.allow_resume, self.overwrite, self.skip_bad_lines = resume, overwrite, skip_bad_lines
        self.show_progress = show_progress if show_progress is not None else sys.stderr.isatty()
        self.checkpoint = Checkpoint(self.output, {
            "input": str(src_path.resolve()), "top_k": top_k, "min_confidence": min_confidence,
            "instruction": instruction, "model": getattr(reranker, "model", None), "batch_size": batch_size,
        })
        self.counters = JobCounters()
        self.resumed_from = 0
        self.committed = 0
        self.seen_queries: set[str] = set()
        self.out: IO[bytes] | None = None
        self.bar: Any = None

    def resume(self) -> int:
        """Open the output where the job stands; return the input line it starts from.

        An interrupted job (its checkpoint exists and ``resume`` is on) has its output cut back
        to the last commit; otherwise the output starts empty, which needs ``overwrite`` when a
        finished output is there.
        """
        from tqdm.auto import tqdm

        if self.allow_resume and self.checkpoint.exists():
            self.counters = self.checkpoint.load()
            out = open(self.output, "r+b")
            out.truncate(self.counters.output_bytes)
            out.seek(self.counters.output_bytes)
        else:
            if self.output.exists() and not self.overwrite and not self.checkpoint.exists():
                raise FileExistsError(f"output exists: {self.output} (a finished job?); remove it or "
                                      "pass overwrite=True (--overwrite)")
            self.output.parent.mkdir(parents=True, exist_ok=True)
            out = open(self.output, "wb")
            self.checkpoint.save(self.counters)
        self.out = out
        self.resumed_from = self.committed = self.counters.consumed
        self.bar = tqdm(total=self.source.count() if self.show_progress else None, initial=self.resumed_from,
                        unit="pair", desc="reranking", disable=not self.show_progress, dynamic_ncols=True)
        return self.resumed_from

    def stream(self) -> Iterator[tuple[list[QueryGroup], int]]:
        """Batches of whole query groups (about ``batch_size`` pairs), each with the input
        position up to which it completes the job; the last batch (possibly empty) ends the input."""
        batch: list[QueryGroup] = []
        group: QueryGroup | None = None
        n_pairs = 0
        position = self.resumed_from  # input position of the next item
        for item in self.source.items(self.resumed_from):
            position += 1
            rec = self.pair(item)
            if rec is None:
                continue
            qid = str(rec["query_id"])
            if group is None or qid != group.query_id:
                self.check_new_query(qid, item)
                if group is not None:
                    batch.append(group)
                    if n_pairs >= self.batch_size:
                        yield batch, position - 1  # everything before this line is done
                        batch, n_pairs = [], 0
                group = QueryGroup(qid)
            group.records.append(rec)
            n_pairs += 1
        if group is not None:
            batch.append(group)
        yield batch, position

    def pair(self, item: Item) -> dict[str, Any] | None:
        """The item's record when it is a usable pair; a bad one raises or (skipping) is counted."""
        reason = item.reason or pair_problem(item.record)
        if not reason:
            return item.record
        if not self.skip_bad_lines:
            raise BadInputError(f"{item.where}: {reason}")
        self.counters.skipped += 1
        return None

    def check_new_query(self, qid: str, item: Item) -> None:
        """With ``top_k`` a query's pairs must be consecutive: its group is selected at once."""
        if self.top_k is not None and qid in self.seen_queries:
            raise BadInputError(
                f"{item.where}: query_id {qid!r} appears again after other queries; with "
                "top_k a query's pairs must be on consecutive lines (sort the file by query_id)"
            )
        self.seen_queries.add(qid)

    def write(self, groups: list[QueryGroup], frontier: int) -> None:
        """Score ``groups``, write their selected rows, advance to ``frontier``; commit when due."""
        assert self.out is not None, "resume() opens the output first"
        pairs = [(r["query"], r["document"]) for g in groups for r in g.records]
        scores = self.reranker.score_pairs(pairs, self.instruction) if pairs else []
        start = 0
        for g in groups:
            rows = self.select(g.records, scores[start : start + len(g.records)])
            start += len(g.records)
            self.out.write(b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows))
            self.counters.written += len(rows)
        self.counters.scored += len(pairs)
        self.counters.queries += len(groups)
        self.bar.update(frontier - self.counters.consumed)
        self.counters.consumed = frontier
        if self.counters.consumed - self.committed >= self.commit_every:
            self.commit()

    def select(self, records: list[dict[str, Any]], scores: Sequence[float]) -> list[dict[str, Any]]:
        """One query's output rows: the records with their scores, without those below
        ``min_confidence``; with ``top_k`` its best ``k``, best first and ranked, else in input order."""
        ranking = select_results(scores, self.top_k, min_confidence=self.min_confidence)
        chosen = ranking.results if self.top_k is not None else sorted(ranking.results, key=lambda r: r.index)
        rows = [{**records[r.index], "relevance_score": r.score, "confidence": r.confidence} for r in chosen]
        if self.top_k is not None:
            for rank, row in enumerate(rows, start=1):
                row["rank"] = rank
        return rows

    def commit(self) -> None:
        """Make everything written so far durable: fsync the output, then save the checkpoint."""
        assert self.out is not None
        self.out.flush()
        os.fsync(self.out.fileno())
        self.counters.output_bytes = self.out.tell()
        self.checkpoint.save(self.counters)
        self.committed = self.counters.consumed

    def run(self) -> RerankJobReport:
        """Resume, score everything, commit, remove the checkpoint; return the report.

        On any error (or interrupt) the output keeps its last commit for a later resume; a job
        that committed nothing leaves no file behind.
        """
        self.resume()
        try:
            for groups, frontier in self.stream():
                self.write(groups, frontier)
            if self.counters.scored == 0 and self.resumed_from == 0:
                skipped = self.counters.skipped
                raise EmptyCorpusError(f"no pairs in {self.source.path}" + (
                    f" ({skipped} bad lines skipped)" if skipped else ""))
            self.commit()
        except BaseException:
            self.close()
            if self.committed == 0:  # nothing durable yet: leave nothing behind
                self.output.unlink(missing_ok=True)
                self.checkpoint.remove()
            raise
        self.close()
        self.checkpoint.remove()
        return self.report()

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
        if self.bar is not None:
            self.bar.close()

    def report(self) -> RerankJobReport:
        """What the job has done so far (all of it after :meth:`run`)."""
        c = self.counters
        return RerankJobReport(
            output=str(self.output), pairs_scored=c.scored, pairs_written=c.written, queries=c.queries,
            skipped=c.skipped, resumed_from=self.resumed_from, elapsed_s=time.perf_counter() - self.started,
        )


def check_job_options(
    batch_size: int, commit_every: int, top_k: int | None, min_confidence: float | None
) -> None:
    """``ValueError`` for options a pair-rerank job cannot run with."""
    if batch_size < 1 or commit_every < 1:
        raise ValueError(f"batch_size and commit_every must be positive, got {batch_size}, {commit_every}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be positive, got {top_k}")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")


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

    Runs a :class:`PairRerankJob`.

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
            :class:`~qwen3_rag.indexing.sources.BadInputError` (which names the line).
        show_progress: tqdm bar with pairs/s (default: when stderr is a terminal).
    """
    return PairRerankJob(
        input_path, output_path, reranker, batch_size=batch_size, commit_every=commit_every, top_k=top_k,
        min_confidence=min_confidence, instruction=instruction, resume=resume, overwrite=overwrite,
        skip_bad_lines=skip_bad_lines, show_progress=show_progress,
    ).run()


__all__ = [
    "PAIR_FIELDS", "Checkpoint", "JobCounters", "PairRerankJob", "QueryGroup", "RerankJobReport",
    "confidence", "pair_problem", "rerank_pairs",
]
