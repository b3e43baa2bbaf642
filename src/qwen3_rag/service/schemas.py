"""Request and response models of the service, with bounds from :class:`ServiceLimits`.

Bounds that say "too large" (too many documents or inputs, too many characters or tokens
per input, a too large body) answer 413; every other invalid input answers 422.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

TOO_LARGE = "too_large"
"""Error type of the custom size checks (answered with 413, like pydantic's ``*too_long``)."""
SIZE_ERRORS = frozenset({TOO_LARGE, "too_long", "string_too_long"})


@dataclass(frozen=True)
class ServiceLimits:
    """Bounds on what one request may ask.

    Attributes:
        max_top_k: most hits ``/search`` returns (``top_k`` is 1..max_top_k).
        max_documents: most documents per ``/rerank`` request.
        max_inputs: most inputs per ``/v1/embeddings`` or ``/classify`` request.
        max_chars: most characters per query, document, instruction or input text.
        max_body_bytes: largest request body in bytes.
        max_batch_items: most sequences per micro-batched engine call.
        batch_wait_ms: how long a request waits for others before its engine call (default 0:
            requests that arrive while the engine runs share the next call anyway).
    """

    max_top_k: int = 1000
    max_documents: int = 1000
    max_inputs: int = 2048
    max_chars: int = 100_000
    max_body_bytes: int = 32 * 1024 * 1024
    max_batch_items: int = 256
    batch_wait_ms: float = 0.0

    def __post_init__(self) -> None:
        for name in ("max_top_k", "max_documents", "max_inputs", "max_chars", "max_body_bytes",
                     "max_batch_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            raise ValueError(f"batch_wait_ms must be >= 0, got {self.batch_wait_ms}")


def check_utf8(s: str) -> str:
    """Reject strings that cannot be UTF-8 encoded (lone surrogates from JSON escapes)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("invalid_text", "text must be valid Unicode (no lone surrogates)") from None
    return s


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


def inputs_schema(limits: ServiceLimits, max_tokens: int, vocab_size: int, texts: bool) -> dict[str, Any]:
    """JSON schema of an ``input`` field (validated by :func:`parse_inputs`, documented here)."""
    token = {"type": "integer", "minimum": 0, "maximum": vocab_size - 1}
    tokens = {"type": "array", "items": token, "minItems": 1, "maxItems": max_tokens}
    text = {"type": "string", "maxLength": limits.max_chars}
    many = {"minItems": 1, "maxItems": limits.max_inputs}
    options = [tokens, {"type": "array", "items": tokens, **many}]
    if texts:
        options = [text, {"type": "array", "items": text, **many}, *options]
    return {"anyOf": options}


def build_models(
    limits: ServiceLimits,
    dimension: int,
    min_dimensions: int,
    *,
    embed_tokens: int,
    embed_vocab: int,
    rerank_tokens: int = 1,
    rerank_vocab: int = 1,
) -> SimpleNamespace:
    """The request/response models for one app (bounds depend on its limits and models)."""
    EmbedInput = Annotated[Any, WithJsonSchema(inputs_schema(limits, embed_tokens, embed_vocab, True))]
    ClassifyInput = Annotated[Any, WithJsonSchema(inputs_schema(limits, rerank_tokens, rerank_vocab, False))]
    Text = Annotated[str, StringConstraints(max_length=limits.max_chars), AfterValidator(check_utf8)]
    Query = Annotated[str, StringConstraints(min_length=1, max_length=limits.max_chars),
                      AfterValidator(check_utf8)]
    Score = Annotated[float, Field(allow_inf_nan=False)]
    Confidence = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]

    class RerankRequest(_Request):
        """Cohere/Jina/vLLM-style rerank request."""

        model: str | None = Field(None, description="accepted for client compatibility")
        query: Query
        documents: list[Text] = Field(min_length=1, max_length=limits.max_documents)
        top_n: int | None = Field(None, ge=1, description="return at most this many results")
        instruction: Text | None = Field(None, description="task instruction (default: the service's)")
        return_documents: bool = False
        min_confidence: Confidence | None = Field(None, description="drop results with |2p-1| below this")
        score_threshold: Confidence | None = Field(None, description="drop results with P(yes) below this "
                                                   "(0..1)")

    class RerankDocument(BaseModel):
        text: str

    class RerankItem(BaseModel):
        index: int
        relevance_score: float
        confidence: float
        document: RerankDocument | None = None

    class RerankResponse(BaseModel):
        id: str
        model: str
        results: list[RerankItem]
        total_found: int = Field(description="results passing the thresholds, before top_n")
        processing_time_ms: float
        usage: dict[str, int]

    class SearchRequest(_Request):
        """Vector search over the loaded store, optionally reranked."""

        query: Query
        top_k: int = Field(10, ge=1, le=limits.max_top_k, description="results to return")
        # strict bool: 0 is a bad candidate count (422), not false
        rerank: Annotated[bool, Strict()] | Annotated[int, Field(ge=1, le=limits.max_documents)] = Field(
            False, description="rerank the best vector hits and return the top_k best by P(yes): "
            "true reranks 4 × top_k candidates, an integer that many")
        instruction: Text | None = Field(None, description="task instruction for the query embedding "
                                         "and the reranker (default: the models' own)")
        filter: dict[str, Any] | None = Field(None, description="metadata conditions, e.g. "
                                              '{"lang": {"$in": ["en", "fr"]}}')
        score_threshold: Score | None = Field(None, description="drop hits with a cosine score below this")
        min_confidence: Confidence | None = Field(None, description="with rerank: drop results whose "
                                                  "confidence |2p-1| is below this")
        preview_chars: int | None = Field(None, ge=0, le=limits.max_chars,
                                          description="cut each result's text to this many characters")

    class SearchHit(BaseModel):
        rank: int = Field(description="1-based")
        id: str
        score: float = Field(description="cosine similarity of the query and document vectors")
        text: str = Field(description="the text, or its first preview_chars characters")
        text_length: int = Field(description="characters of the full text")
        truncated: bool
        metadata: dict[str, Any]
        relevance_score: float | None = Field(None, description="P(yes), when reranked")
        confidence: float | None = Field(None, description="|2p-1|, when reranked")

    class SearchResponse(BaseModel):
        query: str
        results: list[SearchHit]
        total_found: int = Field(description="candidates passing every threshold, before the top_k cut")
        reranked: bool
        timings_ms: dict[str, float] = Field(description="embed, search, rerank and total")
        processing_time_ms: float

    class EmbeddingRequest(_Request):
        """OpenAI embeddings request, plus ``instruction``/``input_type`` for queries."""

        input: EmbedInput = Field(description="a string, a list of strings, a token-id list or a list of "
                           "token-id lists (token ids are embedded as given)")
        model: str | None = Field(None, description="accepted for client compatibility")
        dimensions: int | None = Field(None, ge=min_dimensions, le=dimension)
        encoding_format: Literal["float", "base64"] = "float"
        user: str | None = None
        instruction: Text | None = Field(None, description="embed the inputs as queries with this "
                                         "instruction (extension)")
        input_type: Literal["query", "document"] = Field(
            "document", description="'query' applies the service's query instruction (extension)")

    class EmbeddingItem(BaseModel):
        object: Literal["embedding"] = "embedding"
        index: int
        embedding: list[float] | str

    class EmbeddingResponse(BaseModel):
        object: Literal["list"] = "list"
        data: list[EmbeddingItem]
        model: str
        usage: dict[str, int]

    class ClassifyRequest(_Request):
        """vLLM ``/classify`` request with token-id inputs (what the remote backend sends)."""

        input: ClassifyInput = Field(description="a token-id list or a list of token-id lists "
                           "(complete reranker prompts)")
        model: str | None = None

    class ClassifyItem(BaseModel):
        index: int
        label: str | None
        probs: list[float]
        num_classes: int

    class ClassifyResponse(BaseModel):
        id: str
        object: Literal["list"] = "list"
        model: str
        data: list[ClassifyItem]
        usage: dict[str, int]

    return SimpleNamespace(**{k: v for k, v in locals().items() if isinstance(v, type)})


def too_large(message: str) -> PydanticCustomError:
    """A validation error answered with 413."""
    return PydanticCustomError(TOO_LARGE, message)


def parse_inputs(
    value: Any, *, max_inputs: int, max_chars: int, max_tokens: int, vocab_size: int
) -> tuple[list[str] | None, list[list[int]] | None]:
    """Split an embeddings/classify ``input`` into texts or token-id lists, validated.

    Returns ``(texts, None)`` or ``(None, token_ids)``; raises ``PydanticCustomError``
    (type ``too_large`` for size limits).

    Example:
        >>> parse_inputs("hi", max_inputs=4, max_chars=10, max_tokens=8, vocab_size=100)
        (['hi'], None)
        >>> parse_inputs([1, 2], max_inputs=4, max_chars=10, max_tokens=8, vocab_size=100)
        (None, [[1, 2]])
    """
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise PydanticCustomError("invalid_input", "input must be a non-empty string, list of strings, "
                                  "list of token ids or list of token-id lists")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        value = [value]
    if len(value) > max_inputs:
        raise too_large(f"input has {len(value)} items, at most {max_inputs} are allowed")
    if all(isinstance(v, str) for v in value):
        for i, s in enumerate(value):
            if len(s) > max_chars:
                raise too_large(f"input[{i}] has {len(s)} characters, at most {max_chars} are allowed")
            check_utf8(s)
        return value, None
    seqs: list[list[int]] = []
    for i, seq in enumerate(value):
        if not isinstance(seq, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in seq):
            raise PydanticCustomError("invalid_input", "input items must all be strings or all be "
                                      "token-id lists (input[{i}] is neither)", {"i": i})
        if not seq:
            raise PydanticCustomError("invalid_input", "input[{i}] is an empty token-id list", {"i": i})
        if len(seq) > max_tokens:
            raise too_large(f"input[{i}] has {len(seq)} tokens, at most {max_tokens} are allowed")
        bad = next((t for t in seq if not 0 <= t < vocab_size), None)
        if bad is not None:
            raise PydanticCustomError("invalid_input", "input[{i}] holds token id {t}, outside "
                                      "0..{v}", {"i": i, "t": bad, "v": vocab_size - 1})
        seqs.append(seq)
    return None, seqs
