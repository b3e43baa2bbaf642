"""Prometheus metrics of the service (one registry per app, so apps never share counters)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServiceMetrics:
    """Request counts, latency per endpoint and per stage, engine batch sizes.

    Example:
        >>> m = ServiceMetrics()
        >>> with m.stage("embed"):
        ...     pass
        >>> b"qwen3_rag_stage_duration_seconds_count" in m.render()
        True
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "qwen3_rag_requests", "HTTP requests by endpoint, method and status code",
            ["endpoint", "method", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "qwen3_rag_request_duration_seconds", "HTTP request latency by endpoint",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.stages = Histogram(
            "qwen3_rag_stage_duration_seconds",
            "Latency of request stages (tokenize, embed, search, rerank) as seen by one request",
            ["stage"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.engine_calls = Counter(
            "qwen3_rag_engine_calls", "Engine calls (one per micro-batch)", ["engine"],
            registry=self.registry,
        )
        self.engine_requests = Counter(
            "qwen3_rag_engine_batched_requests", "Requests served by engine calls", ["engine"],
            registry=self.registry,
        )
        self.batch_items = Histogram(
            "qwen3_rag_engine_batch_items", "Sequences per engine call", ["engine"],
            buckets=BATCH_BUCKETS, registry=self.registry,
        )
        self.engine_latency = Histogram(
            "qwen3_rag_engine_call_duration_seconds", "Duration of one engine call", ["engine"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )

    def on_batch(self, engine: str, requests: int, items: int, seconds: float) -> None:
        """Record one micro-batched engine call."""
        self.engine_calls.labels(engine).inc()
        self.engine_requests.labels(engine).inc(requests)
        self.batch_items.labels(engine).observe(items)
        self.engine_latency.labels(engine).observe(seconds)

    @contextmanager
    def stage(self, name: str, timings: dict[str, float] | None = None) -> Iterator[None]:
        """Time a block as stage ``name``; also store milliseconds in ``timings[name]``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.stages.labels(name).observe(elapsed)
            if timings is not None:
                timings[name] = round(timings.get(name, 0.0) + elapsed * 1000.0, 3)

    def render(self) -> bytes:
        """The Prometheus text exposition of all metrics."""
        return generate_latest(self.registry)
