"""Remote backend: a running ``vllm serve`` or ``qwen3-rag serve``, over HTTP.

Token ids are still built client-side by :mod:`qwen3_rag.formats` (the tokenizer is loaded
locally), and sent as token-id prompts, so results equal the local backends:

* embeddings: ``POST /v1/embeddings`` with ``input`` a list of token-id lists (OpenAI allows
  token arrays; vLLM and ``qwen3-rag serve`` accept them);
* reranking: ``POST /classify`` with ``input`` a list of token-id lists. Of vLLM 0.26's
  pooling endpoints only ``/classify`` (and ``/pooling``) accept token ids; ``/score`` and
  ``/rerank`` take text and apply the server's own template. With the converted reranker
  (``--hf-overrides`` below) each result's ``probs`` is ``[P(yes)]``.

Start vLLM with::

    vllm serve Qwen/Qwen3-Embedding-0.6B --runner pooling \\
        --pooler-config '{"seq_pooling_type": "LAST", "use_activation": true}'
    vllm serve Qwen/Qwen3-Reranker-0.6B --runner pooling --port 8001 \\
        --hf-overrides '{"architectures": ["Qwen3ForSequenceClassification"],
                         "classifier_from_token": ["no", "yes"], "is_original_qwen3_reranker": true}'

(the client's ``max_length`` must not exceed the server's ``--max-model-len``).

Options: :class:`~qwen3_rag.engine.options.RemoteOptions`: ``base_url`` (required, e.g.
``http://127.0.0.1:8000``), ``api_key`` (sent as a Bearer token), ``timeout`` (seconds per
request, default 60), ``max_retries`` (default 3: retries with exponential backoff on
connection errors, timeouts, 429 and 5xx; other 4xx fail at once with the server's message),
``server`` (``"auto"``, ``"vllm"`` or ``"qwen3-rag"``; auto asks ``GET /health``, which only
``qwen3-rag serve`` answers with JSON), ``batch_size`` (sequences per HTTP request, default
128) and ``tokenizer`` (where the client-side tokenizer comes from; default: ``model``).

Example (with a server running)::

    from qwen3_rag import Qwen3Embedder, Qwen3Reranker
    emb = Qwen3Embedder("Qwen/Qwen3-Embedding-0.6B", backend="remote", base_url="http://127.0.0.1:8000")
    emb.embed_query("What is BM25?").shape      # (1024,)
    rr = Qwen3Reranker("Qwen/Qwen3-Reranker-0.6B", backend="remote", base_url="http://127.0.0.1:8001")
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from qwen3_rag.engine.base import EmbeddingEngine, EngineConfig, RerankEngine, l2_normalize
from qwen3_rag.engine.options import EngineOptions, RemoteOptions, check_base_url

logger = logging.getLogger("qwen3_rag")

#: what the engines' constructors take as options (a mapping is built into RemoteOptions)
Options = RemoteOptions | EngineOptions | Mapping[str, Any]
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0
PROBE_TEXT = "dimension probe"


class RemoteError(RuntimeError):
    """The server answered with an error (``status_code``) or could not be reached (``None``)."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the 'remote' backend needs httpx: pip install 'qwen3-rag[remote]'") from e
    return httpx


def error_message(response: Any) -> str:
    """The error text of a server response (FastAPI, OpenAI/vLLM or plain)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("detail", "message", "error"):
            if body.get(key):
                detail = body[key]
                if isinstance(detail, list):  # FastAPI validation errors
                    return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
                return str(detail)
    return str(body)[:500]


class RemoteClient:
    """A small JSON-over-HTTP client with timeouts and retries (exponential backoff, jitter).

    Example:
        >>> c = RemoteClient("http://127.0.0.1:9", max_retries=0, timeout=0.5)
        >>> try:
        ...     c.get("/health")
        ... except RemoteError as e:
        ...     print(e.status_code)
        None
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
    ):
        httpx = _httpx()
        check_base_url(base_url)
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.base_url = base_url.rstrip("/")
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers)

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff * (2**attempt) * (0.5 + random.random())
        if retry_after:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                pass
        time.sleep(min(delay, MAX_BACKOFF_S))

    def request(self, method: str, path: str, json: Any = None) -> Any:
        """Send a request; return the decoded JSON body (``None`` when empty)."""
        httpx = _httpx()
        url = self.base_url + path
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self._client.request(method, path, json=json)
            except httpx.TransportError as e:  # connection refused/reset, timeouts
                if last:
                    raise RemoteError(
                        f"{method} {url} failed after {attempt + 1} attempt(s): {type(e).__name__}: {e}"
                    ) from e
                logger.warning("qwen3_rag: %s %s: %s; retrying", method, url, type(e).__name__)
                self._sleep(attempt, None)
                continue
            if response.status_code < 400:
                return response.json() if response.content else None
            message = error_message(response)
            if response.status_code in RETRY_STATUS and not last:
                logger.warning("qwen3_rag: %s %s: HTTP %d %s; retrying", method, url,
                               response.status_code, message)
                self._sleep(attempt, response.headers.get("retry-after"))
                continue
            tried = f" after {attempt + 1} attempts" if attempt else ""
            raise RemoteError(f"{method} {url}: HTTP {response.status_code}{tried}: {message}",
                              response.status_code)
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, path: str) -> Any:
        """``GET path`` with retries."""
        return self.request("GET", path)

    def post(self, path: str, json: Any) -> Any:
        """``POST path`` with a JSON body, with retries."""
        return self.request("POST", path, json)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


class _RemoteMixin:
    config: EngineConfig
    options: RemoteOptions
    preferred_batch_size: int

    def _setup(self) -> None:
        opts = self.options
        self.client = RemoteClient(opts.base_url or "", api_key=opts.api_key, timeout=opts.timeout,
                                   max_retries=opts.max_retries, backoff=opts.backoff)
        self.preferred_batch_size = opts.batch_size
        self.health: dict[str, Any] | None = None
        server = opts.server
        if server != "vllm":
            health = self.client.get("/health")
            if isinstance(health, dict) and health.get("service") == "qwen3-rag":
                # a keyed service shows its models only to a caller with its key: without them
                # nothing is checked here, and the first request reports the wrong key
                self.health = health if "embedding" in health else None
                server = "qwen3-rag"
            elif server == "qwen3-rag":
                raise RemoteError(f"{opts.base_url} is not a qwen3-rag service (GET /health: {health!r})")
            else:
                server = "vllm"
        self.server = server

    def _post_token_ids(self, path: str, token_ids: Sequence[Sequence[int]], **extra: Any) -> list[Any]:
        """POST token-id prompts in batches; return the ``data`` items sorted by index."""
        out: list[Any] = []
        for start in range(0, len(token_ids), self.preferred_batch_size):
            part = [[int(t) for t in ids] for ids in token_ids[start : start + self.preferred_batch_size]]
            for i, ids in enumerate(part):
                if not ids:
                    raise ValueError(f"token sequence {start + i} is empty")
            body = self.client.post(path, {"model": self.config.model, "input": part, **extra})
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list) or len(data) != len(part):
                raise RemoteError(f"{path}: expected {len(part)} results, got {str(body)[:200]}")
            out.extend(sorted(data, key=lambda d: d.get("index", 0)))
        return out

    def close(self) -> None:
        self.client.close()
        self.closed = True


class RemoteEmbeddingEngine(_RemoteMixin, EmbeddingEngine):
    """Embeddings from ``POST /v1/embeddings`` with token-id inputs."""

    def __init__(self, config: EngineConfig, options: Options):
        super().__init__(config, RemoteOptions.coerce(options))
        self._setup()
        info = (self.health or {}).get("embedding") or {}
        if self.health is not None and not info:
            raise RemoteError(f"{self.client.base_url} serves no embedding model")
        if info.get("dimension"):
            self.dimension = int(info["dimension"])
            if info.get("model") not in (None, config.model):
                logger.warning("qwen3_rag: asked for %r, the service embeds with %r", config.model,
                               info.get("model"))
        else:
            body = self.client.post("/v1/embeddings", {"model": config.model, "input": [PROBE_TEXT]})
            self.dimension = len(body["data"][0]["embedding"])

    def embed(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        if len(token_ids) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        data = self._post_token_ids("/v1/embeddings", token_ids, encoding_format="float")
        arr = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        if arr.shape != (len(token_ids), self.dimension):
            raise RemoteError(f"/v1/embeddings returned shape {arr.shape}, expected "
                              f"({len(token_ids)}, {self.dimension})")
        return l2_normalize(arr)


class RemoteRerankEngine(_RemoteMixin, RerankEngine):
    """P(yes) from ``POST /classify`` with token-id inputs (the converted Qwen3-Reranker)."""

    def __init__(self, config: EngineConfig, options: Options):
        super().__init__(config, RemoteOptions.coerce(options))
        self._setup()
        if self.health is not None and not self.health.get("reranker"):
            raise RemoteError(f"{self.client.base_url} serves no reranker")

    def score(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        if len(token_ids) == 0:
            return np.zeros(0, dtype=np.float32)
        data = self._post_token_ids("/classify", token_ids)
        out = np.empty(len(data), dtype=np.float32)
        for i, d in enumerate(data):
            probs = d.get("probs") or []
            if len(probs) == 1:
                out[i] = probs[0]
            elif len(probs) == 2:
                out[i] = probs[1]
            else:
                raise RemoteError(
                    f"/classify returned {len(probs)} classes; start vLLM with the reranker "
                    "--hf-overrides (see qwen3_rag.engine.remote)"
                )
        return out
