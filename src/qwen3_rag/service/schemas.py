"""Request and response models of the HTTP service, importable and documented in its OpenAPI.

This module owns the models, :class:`ServiceLimits` (what one request may ask),
:class:`RequestBounds` and the :class:`Limit` marker. Bounds fixed by the API (a non-empty
query, ``top_n >= 1``, a confidence in 0..1) are validated by the models themselves. Bounds
that one service sets — its :class:`ServiceLimits` and what its models accept (embedding
dimension, max_length, vocabulary) — are marked on the fields with :class:`Limit`: the limits
dependency (:mod:`qwen3_rag.service.limits`) checks them, and each app writes their values
into its OpenAPI schema.

Bounds that say "too large" (too many documents or inputs, too many characters or tokens per
input, a too large body) answer 413; every other invalid input answers 422.

Example:
    >>> from qwen3_rag.service.schemas import RerankRequest
    >>> req = RerankRequest(query="capital of France?", documents=["Paris.", "Bananas."], top_n=1)
    >>> req.top_n, req.return_documents
    (1, False)
    >>> RerankRequest.model_json_schema()["properties"]["top_n"]["description"]
    'return at most this many results'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    Strict,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

TOO_LARGE = "too_large"
"""Error type of the custom size checks (answered with 413, like pydantic's ``*too_long``)."""
SIZE_ERRORS = frozenset({TOO_LARGE, "too_long", "string_too_long"})
"""Error types answered with 413."""
LIMITS_KEY = "x-qwen3-rag-limits"
"""Key of the JSON-schema placeholders a service replaces with its own bounds."""


@dataclass(frozen=True)
class ServiceLimits:
    """Bounds on what one request may ask.

    Attributes:
        max_top_k: most hits ``/search`` returns (``top_k`` is 1..max_top_k).
        max_documents: most documents per ``/rerank`` request.
        max_inputs: most inputs per ``/v1/embeddings`` or ``/classify`` request.
        max_chars: most characters per query, document, instruction or input text.
        max_body_bytes: largest request body in bytes.
        max_request_tokens: most tokens one request may have a model process (the sum of its
            sequences' lengths after formatting: inputs, reranker prompts; for ``/search``, its
            query and its reranking prompts each); 413 beyond.
        max_batch_items: most sequences per micro-batched engine call.
        max_batch_tokens: most tokens per engine call: a larger request is cut into several
            calls, which take turns with other requests' (a small request behind a large one
            waits for one call, not for the whole large request).
        batch_wait_ms: how long a request waits for others before its engine call (default 0:
            requests that arrive while the engine runs share the next call anyway).
        header_timeout_s: a connection whose request headers are not complete this long after
            their first byte is closed (``serve``'s server).
        body_timeout_s: a request whose body stalls this long between two reads gets 408.
        keep_alive_timeout_s: an idle keep-alive connection is closed after this long.
        max_connections: most connections and requests served at once (503 beyond; ``serve``).

    Example:
        >>> ServiceLimits(max_documents=100).max_documents
        100
    """

    max_top_k: int = 1000
    max_documents: int = 1000
    max_inputs: int = 2048
    max_chars: int = 100_000
    max_body_bytes: int = 32 * 1024 * 1024
    max_request_tokens: int = 1_048_576
    max_batch_items: int = 256
    max_batch_tokens: int = 65_536
    batch_wait_ms: float = 0.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_timeout_s: float = 5.0
    max_connections: int = 1024

    def __post_init__(self) -> None:
        for name in ("max_top_k", "max_documents", "max_inputs", "max_chars", "max_body_bytes",
                     "max_request_tokens", "max_batch_items", "max_batch_tokens", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            raise ValueError(f"batch_wait_ms must be >= 0, got {self.batch_wait_ms}")
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class RequestBounds:
    """Every bound a :class:`Limit` can name: one service's limits and what its models accept.

    Example:
        >>> b = RequestBounds.of(ServiceLimits(max_chars=64), dimension=64, min_dimensions=32,
        ...                      embed_tokens=512, embed_vocab=1000)
        >>> b.max_chars, b.embed_max_token_id, b.rerank_tokens
        (64, 999, 1)
    """

    max_top_k: int
    max_documents: int
    max_inputs: int
    max_chars: int
    dimension: int
    min_dimensions: int
    embed_tokens: int
    embed_max_token_id: int
    rerank_tokens: int = 1
    rerank_max_token_id: int = 0
    max_request_tokens: int = ServiceLimits.max_request_tokens

    @classmethod
    def of(
        cls,
        limits: ServiceLimits,
        *,
        dimension: int,
        min_dimensions: int,
        embed_tokens: int,
        embed_vocab: int,
        rerank_tokens: int = 1,
        rerank_vocab: int = 1,
    ) -> RequestBounds:
        """The bounds of a service with ``limits`` and models of these sizes."""
        return cls(limits.max_top_k, limits.max_documents, limits.max_inputs, limits.max_chars, dimension,
                   min_dimensions, embed_tokens, embed_vocab - 1, rerank_tokens, rerank_vocab - 1,
                   limits.max_request_tokens)


@dataclass(frozen=True)
class Limit:
    """Marks a field (or a list's items) with a bound one service sets.

    ``keyword`` is the JSON-schema keyword it stands for and ``bound`` the
    :class:`RequestBounds` attribute holding its value. In a model's own JSON schema it shows
    as a placeholder under :data:`LIMITS_KEY`.
    """

    keyword: Literal["maxLength", "maxItems", "maximum", "minimum"]
    bound: str

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema: dict[str, Any] = handler(core_schema)
        schema.setdefault(LIMITS_KEY, {})[self.keyword] = self.bound
        return schema


@dataclass(frozen=True)
class InputsLimit:
    """Marks an ``input`` field: counts and characters from :class:`ServiceLimits`, tokens per
    sequence and the largest token id from the model named by ``model`` (embed or rerank)."""

    model: Literal["embed", "rerank"]

    @property
    def tokens(self) -> str:
        return f"{self.model}_tokens"

    @property
    def max_token_id(self) -> str:
        return f"{self.model}_max_token_id"


def check_utf8(s: str) -> str:
    """Reject strings that cannot be UTF-8 encoded (lone surrogates from JSON escapes)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("invalid_text", "text must be valid Unicode (no lone surrogates)") from None
    return s


@dataclass(frozen=True)
class Inputs:
    """The ``input`` of an embeddings or classify request: texts, or token-id sequences."""

    texts: list[str] | None = None
    ids: list[list[int]] | None = None

    def to_json(self) -> list[str] | list[list[int]]:
        return self.texts if self.texts is not None else (self.ids or [])


def split_inputs(value: Any) -> Inputs:
    """Read an ``input`` value: a string, strings, a token-id list or token-id lists.

    Raises ``PydanticCustomError`` (422); sizes and token ids are checked against the
    service's bounds by :mod:`qwen3_rag.service.limits`.

    Example:
        >>> split_inputs("hi")
        Inputs(texts=['hi'], ids=None)
        >>> split_inputs([1, 2])
        Inputs(texts=None, ids=[[1, 2]])
    """
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise PydanticCustomError("invalid_input", "input must be a non-empty string, list of strings, "
                                  "list of token ids or list of token-id lists")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        value = [value]
    if all(isinstance(v, str) for v in value):
        for s in value:
            check_utf8(s)
        return Inputs(texts=value)
    for i, seq in enumerate(value):
        if not isinstance(seq, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in seq):
            raise PydanticCustomError("invalid_input", "input items must all be strings or all be "
                                      "token-id lists (input[{i}] is neither)", {"i": i})
        if not seq:
            raise PydanticCustomError("invalid_input", "input[{i}] is an empty token-id list", {"i": i})
    return Inputs(ids=value)


def split_token_inputs(value: Any) -> Inputs:
    """:func:`split_inputs` for ``/classify``, which takes token ids only."""
    inputs = split_inputs(value)
    if inputs.ids is None:
        raise PydanticCustomError("invalid_input", "/classify takes token ids (complete reranker prompts); "
                                  "use /rerank for text")
    return inputs


def _inputs_schema(texts: bool, model: str) -> dict[str, Any]:
    """JSON schema of an ``input`` field, with placeholders for the service's bounds."""
    token = {"type": "integer", "minimum": 0, LIMITS_KEY: {"maximum": f"{model}_max_token_id"}}
    tokens = {"type": "array", "items": token, "minItems": 1, LIMITS_KEY: {"maxItems": f"{model}_tokens"}}
    many = {"type": "array", "minItems": 1, LIMITS_KEY: {"maxItems": "max_inputs"}}
    options: list[dict[str, Any]] = [tokens, {**many, "items": tokens}]
    if texts:
        text = {"type": "string", LIMITS_KEY: {"maxLength": "max_chars"}}
        options = [text, {**many, "items": text}, *options]
    return {"anyOf": options}


_inputs_json = PlainSerializer(Inputs.to_json)
EmbedInput = Annotated[Inputs, PlainValidator(split_inputs), _inputs_json,
                       WithJsonSchema(_inputs_schema(True, "embed")), InputsLimit("embed")]
ClassifyInput = Annotated[Inputs, PlainValidator(split_token_inputs), _inputs_json,
                          WithJsonSchema(_inputs_schema(False, "rerank")), InputsLimit("rerank")]
MaxChars = Limit("maxLength", "max_chars")
Text = Annotated[str, MaxChars, AfterValidator(check_utf8)]
Query = Annotated[str, StringConstraints(min_length=1), MaxChars, AfterValidator(check_utf8)]
Score = Annotated[float, Field(allow_inf_nan=False)]
Confidence = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Candidates = Annotated[int, Field(ge=1), Limit("maximum", "max_documents")]


REQUEST_TOKENS = "x-max-request-tokens"
"""OpenAPI key of a request model: the most tokens one request may have a model process (413
beyond), the service's ``max_request_tokens``."""


class ServiceRequest(BaseModel):
    """Base of the request models: unknown fields are ignored (clients send extras); the
    schema shows the service's token budget per request under :data:`REQUEST_TOKENS`."""

    model_config = ConfigDict(extra="ignore",
                              json_schema_extra={LIMITS_KEY: {REQUEST_TOKENS: "max_request_tokens"}})


class RerankRequest(ServiceRequest):
    """Cohere/Jina/vLLM-style rerank request."""

    model: str | None = Field(None, description="accepted for client compatibility")
    query: Query = Field(description="the query the documents are judged against")
    documents: Annotated[list[Text], Limit("maxItems", "max_documents")] = Field(
        min_length=1, description="the texts to score")
    top_n: int | None = Field(None, ge=1, description="return at most this many results")
    instruction: Text | None = Field(None, description="task instruction (default: the service's)")
    return_documents: bool = Field(False, description="include each result's text")
    min_confidence: Confidence | None = Field(None, description="drop results with |2p-1| below this")
    score_threshold: Confidence | None = Field(None, description="drop results with P(yes) below this "
                                               "(0..1)")


class RerankDocument(BaseModel):
    """A reranked document's text (with ``return_documents``)."""

    text: str = Field(description="the document as sent")


class RerankItem(BaseModel):
    """One rerank result."""

    index: int = Field(description="position of the document in the request")
    relevance_score: float = Field(description="P(yes): the document meets the query's requirements")
    confidence: float = Field(description="|2p-1|: how far the model is from undecided")
    document: RerankDocument | None = Field(None, description="the text, with return_documents")


class RerankResponse(BaseModel):
    """Rerank results, best first."""

    id: str = Field(description="a unique id of this answer")
    model: str = Field(description="the reranker model id")
    results: list[RerankItem] = Field(description="best first (stable on ties), at most top_n")
    total_found: int = Field(description="results passing the thresholds, before top_n")
    processing_time_ms: float = Field(description="time spent answering")
    usage: dict[str, int] = Field(description="total_tokens of the prompts scored")


class SearchRequest(ServiceRequest):
    """Dense, lexical or hybrid search over the loaded store, optionally reranked."""

    query: Query = Field(description="the text searched for")
    top_k: Annotated[int, Limit("maximum", "max_top_k")] = Field(10, ge=1, description="results to return")
    # strict bool: 0 is a bad candidate count (422), not false
    rerank: Annotated[bool, Strict()] | Candidates = Field(
        False, description="rerank the best vector hits and return the top_k best by P(yes): "
        "true reranks 4 × top_k candidates, an integer that many")
    instruction: Text | None = Field(None, description="task instruction for the query embedding "
                                     "and the reranker (default: the models' own)")
    filter: dict[str, Any] | None = Field(None, description="metadata conditions, e.g. "
                                          '{"lang": {"$in": ["en", "fr"]}}')
    mode: Literal["dense", "lexical", "hybrid"] = Field(
        "dense", description="dense: vector search; lexical: BM25 over the texts; hybrid: both, fused "
        "(reciprocal rank fusion, or alpha)")
    alpha: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = Field(
        None, description="with mode hybrid: fuse alpha × dense + (1 − alpha) × lexical min-max "
        "normalised scores instead of reciprocal rank fusion")
    score_threshold: Score | None = Field(None, description="drop hits scoring below this (cosine; BM25 in "
                                          "lexical mode, the fused score in hybrid mode)")
    min_confidence: Confidence | None = Field(None, description="with rerank: drop results whose "
                                              "confidence |2p-1| is below this")
    preview_chars: Annotated[int, Limit("maximum", "max_chars")] | None = Field(
        None, ge=0, description="cut each result's text to this many characters")


class SearchHit(BaseModel):
    """One search result."""

    rank: int = Field(description="1-based")
    id: str = Field(description="the document id in the store")
    score: float = Field(description="cosine similarity of the query and document vectors; in lexical "
                         "mode the BM25 score, in hybrid mode the fused score")
    text: str = Field(description="the text, or its first preview_chars characters")
    text_length: int = Field(description="characters of the full text")
    truncated: bool = Field(description="whether text was cut to preview_chars")
    metadata: dict[str, Any] = Field(description="the document's metadata")
    sources: dict[str, int] = Field(default_factory=dict, description="each retriever that found the "
                                    "document (dense, lexical) and its 1-based rank there")
    relevance_score: float | None = Field(None, description="P(yes), when reranked")
    confidence: float | None = Field(None, description="|2p-1|, when reranked")


class SearchResponse(BaseModel):
    """Search results, best first."""

    query: str = Field(description="the query searched for")
    mode: str = Field(description="the search mode: dense, lexical or hybrid")
    results: list[SearchHit] = Field(description="best first, at most top_k")
    total_found: int = Field(description="candidates passing every threshold, before the top_k cut")
    reranked: bool = Field(description="whether the results were reranked")
    timings_ms: dict[str, float] = Field(description="embed, search, rerank and total")
    processing_time_ms: float = Field(description="time spent answering")


class EmbeddingRequest(ServiceRequest):
    """OpenAI embeddings request, plus ``instruction``/``input_type`` for queries."""

    input: EmbedInput = Field(description="a string, a list of strings, a token-id list or a list of "
                              "token-id lists (token ids are embedded as given)")
    model: str | None = Field(None, description="accepted for client compatibility")
    dimensions: Annotated[int, Limit("minimum", "min_dimensions"), Limit("maximum", "dimension")] | None = (
        Field(None, description="cut the vectors to this many dimensions (re-normalized)"))
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="'base64': each vector as little-endian float32 bytes")
    user: str | None = Field(None, description="accepted for client compatibility")
    instruction: Text | None = Field(None, description="embed the inputs as queries with this "
                                     "instruction (extension)")
    input_type: Literal["query", "document"] = Field(
        "document", description="'query' applies the service's query instruction (extension)")


class EmbeddingItem(BaseModel):
    """One embedding."""

    object: Literal["embedding"] = "embedding"
    index: int = Field(description="position of the input")
    embedding: list[float] | str = Field(description="the vector (base64 with encoding_format='base64')")


class EmbeddingResponse(BaseModel):
    """OpenAI embeddings response."""

    object: Literal["list"] = "list"
    data: list[EmbeddingItem] = Field(description="one embedding per input, in input order")
    model: str = Field(description="the embedding model id")
    usage: dict[str, int] = Field(description="prompt_tokens and total_tokens")


class ClassifyRequest(ServiceRequest):
    """vLLM ``/classify`` request with token-id inputs (what the remote backend sends)."""

    input: ClassifyInput = Field(description="a token-id list or a list of token-id lists "
                                 "(complete reranker prompts)")
    model: str | None = Field(None, description="accepted for client compatibility")


class ClassifyItem(BaseModel):
    """One classified prompt."""

    index: int = Field(description="position of the input")
    label: str | None = Field(description="always 'yes'")
    probs: list[float] = Field(description="[P(yes)]")
    num_classes: int = Field(description="always 1")


class ClassifyResponse(BaseModel):
    """vLLM ``/classify`` response."""

    id: str = Field(description="a unique id of this answer")
    object: Literal["list"] = "list"
    model: str = Field(description="the reranker model id")
    data: list[ClassifyItem] = Field(description="one item per input, in input order")
    usage: dict[str, int] = Field(description="prompt_tokens and total_tokens")


__all__ = [
    "LIMITS_KEY", "REQUEST_TOKENS", "SIZE_ERRORS", "TOO_LARGE", "ClassifyItem", "ClassifyRequest",
    "ClassifyResponse",
    "EmbeddingItem", "EmbeddingRequest", "EmbeddingResponse", "Inputs", "InputsLimit", "Limit",
    "RequestBounds", "RerankDocument", "RerankItem", "RerankRequest", "RerankResponse", "SearchHit",
    "SearchRequest", "SearchResponse", "ServiceLimits", "ServiceRequest", "check_utf8", "split_inputs",
    "split_token_inputs",
]
