"""Every Qwen3 prompt format and default, in one place.

Nothing else in the package spells these strings. Both models' formats are the ones of
their model cards:

* Qwen3-Embedding: documents are embedded as they are; queries as
  ``Instruct: {instruction}\\nQuery:{query}`` (no space after ``Query:``). Every sequence ends
  with exactly one ``<|endoftext|>`` (id 151643), whose hidden state is the embedding
  (last-token pooling).
* Qwen3-Reranker: a chat prompt whose assistant turn is about to answer ``yes`` or ``no``;
  the relevance score is P(yes) from the logits of those two tokens at the last position.

The functions here turn texts into token ids, so that every backend (transformers, vLLM, a
remote server) sees exactly the same sequences.

Example:
    >>> from qwen3_rag.formats import format_query
    >>> format_query("What is BM25?", "Find passages")
    'Instruct: Find passages\\nQuery:What is BM25?'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DEFAULT_EMBEDDING_MODEL = "Qwen/Qwen3-Embedding-0.6B"
DEFAULT_RERANKER_MODEL = "Qwen/Qwen3-Reranker-0.6B"

DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
"""Default task instruction for both query embedding and reranking (model cards)."""

QUERY_TEMPLATE = "Instruct: {instruction}\nQuery:{query}"

EOS_TOKEN = "<|endoftext|>"
"""The token whose hidden state Qwen3-Embedding pools (id 151643)."""

RERANK_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
    'and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
RERANK_BODY = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
RERANK_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
RERANK_YES = "yes"
RERANK_NO = "no"

DEFAULT_MAX_LENGTH = 8192

VLLM_RERANKER_OVERRIDES: dict[str, Any] = {
    "architectures": ["Qwen3ForSequenceClassification"],
    "classifier_from_token": [RERANK_NO, RERANK_YES],
    "is_original_qwen3_reranker": True,
}
"""``hf_overrides`` that make vLLM load the original Qwen3-Reranker as a yes/no classifier."""


def format_query(query: str, instruction: str | None = None) -> str:
    """Return the query text that Qwen3-Embedding expects (instruction prepended)."""
    return QUERY_TEMPLATE.format(
        instruction=DEFAULT_INSTRUCTION if instruction is None else instruction, query=query
    )


def format_rerank_body(query: str, document: str, instruction: str | None = None) -> str:
    """Return the user-turn body of a reranker prompt (without prefix and suffix)."""
    return RERANK_BODY.format(
        instruction=DEFAULT_INSTRUCTION if instruction is None else instruction,
        query=query,
        document=document,
    )


def check_texts(texts: Any, what: str = "texts") -> list[str]:
    """Validate a list of strings; raise ``TypeError`` naming the first bad item."""
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a list of strings, not a single string")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{what}[{i}] must be a str, got {type(t).__name__}")
    return out


def token_id(tokenizer: Any, token: str) -> int:
    """Return the id of a token that must be a single token of ``tokenizer``."""
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{token!r} is not a single token of this tokenizer: {ids}")
    return int(ids[0])


class EmbeddingFormatter:
    """Turns documents and queries into Qwen3-Embedding token ids.

    Each sequence is the text's tokens (cut to ``max_length - 1``) followed by exactly one
    ``<|endoftext|>``, whether or not the tokenizer's own post-processor appends it.
    """

    def __init__(self, tokenizer: Any, max_length: int = DEFAULT_MAX_LENGTH):
        self.check_max_length(max_length)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.eos_id = token_id(tokenizer, EOS_TOKEN)

    @staticmethod
    def check_max_length(max_length: int) -> None:
        """Raise ``ValueError`` unless sequences of ``max_length`` tokens fit a token and the EOS."""
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")

    def documents(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids for documents (no instruction)."""
        if not texts:
            return []
        enc = self.tokenizer(
            list(texts),
            add_special_tokens=False,
            truncation=True,
            max_length=self.max_length - 1,
            return_attention_mask=False,
        )["input_ids"]
        return [[*ids, self.eos_id] for ids in enc]

    def queries(self, queries: Sequence[str], instruction: str | None = None) -> list[list[int]]:
        """Token ids for queries, each formatted with ``instruction``.

        A query is cut like a document when it is too long, but an instruction that leaves no
        room for the query is a ``ValueError`` (every query would get the same vector).
        """
        if queries:
            head = len(self.tokenizer.encode(format_query("", instruction), add_special_tokens=False))
            if head >= self.max_length - 1:
                raise ValueError(
                    f"the query instruction takes {head} tokens, leaving no room for the query within "
                    f"max_length={self.max_length} (the last token is <|endoftext|>); shorten the "
                    f"instruction or raise max_length"
                )
        return self.documents([format_query(q, instruction) for q in queries])


class RerankFormatter:
    """Turns (query, document) pairs into Qwen3-Reranker token ids.

    The result is ``prefix + body + suffix`` where the body is tokenized as one string, as in
    the model card. When the whole is longer than ``max_length`` only the document is cut;
    if prefix, instruction, query and suffix alone do not fit, ``ValueError`` is raised.
    """

    def __init__(self, tokenizer: Any, max_length: int = DEFAULT_MAX_LENGTH):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.prefix_ids = tokenizer.encode(RERANK_PREFIX, add_special_tokens=False)
        self.suffix_ids = tokenizer.encode(RERANK_SUFFIX, add_special_tokens=False)
        self.yes_id = token_id(tokenizer, RERANK_YES)
        self.no_id = token_id(tokenizer, RERANK_NO)
        self.body_budget = max_length - len(self.prefix_ids) - len(self.suffix_ids)
        if self.body_budget <= 0:
            raise ValueError(
                f"max_length={max_length} is shorter than the reranker prompt's fixed prefix "
                f"and suffix ({len(self.prefix_ids) + len(self.suffix_ids)} tokens)"
            )

    def _head_length(self, query: str, instruction: str | None) -> int:
        head = format_rerank_body(query, "", instruction).rstrip(" ")
        return len(self.tokenizer.encode(head, add_special_tokens=False))

    def pairs(self, pairs: Sequence[tuple[str, str]], instruction: str | None = None) -> list[list[int]]:
        """Token ids for (query, document) pairs."""
        if not pairs:
            return []
        checked: dict[str, None] = {}
        for q, _ in pairs:
            if q not in checked:
                head = self._head_length(q, instruction)
                if head > self.body_budget:
                    raise ValueError(
                        f"the reranker instruction and query take {head} tokens, more than the "
                        f"{self.body_budget} that max_length={self.max_length} leaves beside the "
                        f"prompt's prefix and suffix; shorten the query or raise max_length"
                    )
                checked[q] = None
        bodies = [format_rerank_body(q, d, instruction) for q, d in pairs]
        enc = self.tokenizer(
            bodies,
            add_special_tokens=False,
            truncation=True,
            max_length=self.body_budget,
            return_attention_mask=False,
        )["input_ids"]
        return [self.prefix_ids + ids + self.suffix_ids for ids in enc]


def make_formatter(kind: str, tokenizer: Any, max_length: int = DEFAULT_MAX_LENGTH) -> Any:
    """The formatter of a model kind: ``"embedding"`` or ``"reranker"``."""
    if kind == "embedding":
        return EmbeddingFormatter(tokenizer, max_length)
    if kind == "reranker":
        return RerankFormatter(tokenizer, max_length)
    raise ValueError(f"kind must be 'embedding' or 'reranker', got {kind!r}")

