"""Retrieval quality on BEIR-format data: loading, and nDCG@k, Recall@k, MRR@k (pure functions).

A BEIR dataset is a folder with ``corpus.jsonl`` (``{"_id", "title", "text"}``),
``queries.jsonl`` (``{"_id", "text"}``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``,
``score``, tab-separated, with a header line).

The metrics follow BEIR (which uses ``pytrec_eval``): graded relevance with linear gain,
``DCG@k = Σ_{i≤k} rel_i / log2(i + 1)``, the ideal DCG from the judged documents sorted by
relevance; a document is relevant when its judgement is above 0 (Recall, MRR). Queries with no
relevant document are left out (their metrics are undefined); a repeated document in a ranking
counts once, at its first rank.

Example:
    >>> from qwen3_rag.evaluation import evaluate_query
    >>> m = evaluate_query(["d3", "d1", "d9"], {"d1": 1, "d2": 1}, ks=(1, 3))
    >>> {k: round(v, 4) for k, v in m.items()}
    {'ndcg@1': 0.0, 'recall@1': 0.0, 'mrr@1': 0.0, 'ndcg@3': 0.3869, 'recall@3': 0.5, 'mrr@3': 0.5}
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from qwen3_rag.indexing.sources import BadInputError

Qrels = dict[str, dict[str, int]]
"""query id → {document id → graded relevance}."""
Run = Mapping[str, Sequence[str]]
"""query id → document ids, best first."""

DEFAULT_KS = (10, 100)
REPORTED = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
"""The metrics ``qwen3-rag eval`` reports."""


def _unique(ranking: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for d in ranking:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def _check_k(k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")


def dcg_at_k(gains: Sequence[float], k: int) -> float:
    """``Σ_{i=1..k} gains[i-1] / log2(i + 1)``."""
    _check_k(k)
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))


def ndcg_at_k(ranking: Sequence[str], relevance: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with linear gains (BEIR / trec_eval ``ndcg_cut``); 0 when nothing is relevant."""
    _check_k(k)
    ideal = dcg_at_k(sorted((max(0, r) for r in relevance.values()), reverse=True), k)
    if ideal <= 0:
        return 0.0
    gains = [max(0, relevance.get(d, 0)) for d in _unique(ranking)]
    return dcg_at_k(gains, k) / ideal


def recall_at_k(ranking: Sequence[str], relevance: Mapping[str, int], k: int = 100) -> float:
    """The share of the relevant documents (judgement > 0) found in the first ``k``."""
    _check_k(k)
    relevant = {d for d, r in relevance.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_unique(ranking)[:k])) / len(relevant)


def mrr_at_k(ranking: Sequence[str], relevance: Mapping[str, int], k: int = 10) -> float:
    """``1 / rank`` of the first relevant document within the first ``k``, else 0."""
    _check_k(k)
    for i, d in enumerate(_unique(ranking)[:k], start=1):
        if relevance.get(d, 0) > 0:
            return 1.0 / i
    return 0.0


def evaluate_query(
    ranking: Sequence[str], relevance: Mapping[str, int], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """``ndcg@k``, ``recall@k`` and ``mrr@k`` of one ranking for every ``k`` in ``ks``."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"ndcg@{k}"] = ndcg_at_k(ranking, relevance, k)
        out[f"recall@{k}"] = recall_at_k(ranking, relevance, k)
        out[f"mrr@{k}"] = mrr_at_k(ranking, relevance, k)
    return out


def has_relevant(relevance: Mapping[str, int]) -> bool:
    """Whether any document is judged relevant (judgement > 0)."""
    return any(r > 0 for r in relevance.values())


def evaluate_run(
    run: Run, qrels: Mapping[str, Mapping[str, int]], ks: Sequence[int] = DEFAULT_KS
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean metrics over the judged queries with a relevant document, and each query's metrics.

    A judged query missing from ``run`` counts as an empty ranking (all metrics 0).
    """
    per_query = {q: evaluate_query(run.get(q, ()), rel, ks) for q, rel in qrels.items() if has_relevant(rel)}
    if not per_query:
        raise ValueError("no query with a relevant document (judgement > 0) to evaluate")
    names = next(iter(per_query.values())).keys()
    mean = {m: sum(v[m] for v in per_query.values()) / len(per_query) for m in names}
    return mean, per_query


def drop_identical_ids(run: Run) -> dict[str, list[str]]:
    """Remove a query's own id from its ranking (BEIR does so for e.g. ArguAna and Quora)."""
    return {q: [d for d in ranking if d != q] for q, ranking in run.items()}


@dataclass
class BeirDataset:
    """A BEIR-format dataset in memory."""

    corpus: dict[str, tuple[str, str]]
    """document id → (title, text)."""
    queries: dict[str, str]
    qrels: Qrels

    def document_text(self, doc_id: str) -> str:
        """What is embedded for a document: ``title + " " + text`` (as BEIR's dense models do)."""
        title, text = self.corpus[doc_id]
        return f"{title} {text}".strip() if title else text


def _jsonl(path: Path, fields: Sequence[str]) -> Iterable[tuple[str, dict]]:
    if not path.is_file():
        raise FileNotFoundError(f"BEIR dataset file not found: {path}")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInputError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(rec, dict):
                raise BadInputError(f"{where}: expected a JSON object, got {type(rec).__name__}")
            for name in fields:
                if name not in rec:
                    raise BadInputError(f"{where}: no {name!r} field")
            if not isinstance(rec["_id"], str | int) or isinstance(rec["_id"], bool) or rec["_id"] == "":
                raise BadInputError(f"{where}: '_id' must be a non-empty string or an integer")
            yield where, rec


def load_beir(path: str | Path, split: str = "test") -> BeirDataset:
    """Read a BEIR-format folder; errors name the file and line.

    Raises:
        FileNotFoundError: the folder or one of its three files is missing.
        BadInputError: a malformed line, a repeated id, or a non-integer judgement.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"BEIR dataset folder not found: {root}")
    corpus: dict[str, tuple[str, str]] = {}
    for where, rec in _jsonl(root / "corpus.jsonl", ("_id", "text")):
        doc_id = str(rec["_id"])
        title, text = rec.get("title") or "", rec["text"]
        if not isinstance(text, str) or not isinstance(title, str) or not (title + text).strip():
            raise BadInputError(f"{where}: 'title' and 'text' must be strings, not both empty")
        if doc_id in corpus:
            raise BadInputError(f"{where}: document id {doc_id!r} repeated")
        corpus[doc_id] = (title, text)
    queries: dict[str, str] = {}
    for where, rec in _jsonl(root / "queries.jsonl", ("_id", "text")):
        if not isinstance(rec["text"], str) or not rec["text"].strip():
            raise BadInputError(f"{where}: 'text' must be a non-empty string")
        queries[str(rec["_id"])] = rec["text"]
    qpath = root / "qrels" / f"{split}.tsv"
    if not qpath.is_file():
        have = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        hint = f" (splits here: {', '.join(have)}; choose with --split)" if have else ""
        raise FileNotFoundError(f"BEIR qrels file not found: {qpath}{hint}")
    qrels: Qrels = {}
    with open(qpath, encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.reader(f, delimiter="\t"), start=1):
            if not row or not "".join(row).strip():
                continue
            if lineno == 1 and row[-1].strip().lower() in ("score", "relevance", "rel"):
                continue  # the header: query-id, corpus-id, score
            if len(row) != 3:
                raise BadInputError(f"{qpath}:{lineno}: expected query-id, corpus-id, score; got {row!r}")
            try:
                score = int(row[2])
            except ValueError:
                raise BadInputError(f"{qpath}:{lineno}: score must be an integer, got {row[2]!r}") from None
            qrels.setdefault(row[0], {})[row[1]] = score
    return BeirDataset(corpus, queries, qrels)


__all__ = [
    "REPORTED",
    "BeirDataset",
    "dcg_at_k",
    "drop_identical_ids",
    "evaluate_query",
    "evaluate_run",
    "load_beir",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
]
