"""The uvicorn server of the service: connection limit, keep-alive and header/body read timeouts.

uvicorn bounds idle keep-alive connections and, with ``limit_concurrency``, the connections and
requests it serves at once (503 beyond), but it waits for a request's headers for ever. The
protocol here closes a connection whose headers have not all arrived ``header_timeout_s`` after
its first byte (or after the connection opened); the body read timeout is
:class:`~qwen3_rag.service.middleware.BodyLimitMiddleware`'s.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from qwen3_rag.service.schemas import ServiceLimits


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections that do not send their headers in time."""

    header_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.header_timer: asyncio.TimerHandle | None = None
        self.start_header_timer()

    def waiting_for_headers(self) -> bool:
        """Whether the connection is between requests (no request in progress)."""
        return self.cycle is None or self.cycle.response_complete

    def start_header_timer(self) -> None:
        if self.header_timer is None:
            self.header_timer = self.loop.call_later(self.header_timeout_s, self.on_header_timeout)

    def stop_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def data_received(self, data: bytes) -> None:
        if self.waiting_for_headers():
            self.start_header_timer()
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if not self.waiting_for_headers():
            self.stop_header_timer()

    def on_response_complete(self) -> None:
        self.stop_header_timer()  # until the next request's first byte: the keep-alive timeout
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_header_timer()
        super().connection_lost(exc)

    def on_header_timeout(self) -> None:
        self.header_timer = None
        if self.waiting_for_headers() and not self.transport.is_closing():
            if self.conn.our_state in (h11.IDLE, h11.DONE):
                self.conn.send(h11.ConnectionClosed())
            self.transport.close()


def server_options(limits: ServiceLimits) -> dict[str, Any]:
    """The ``uvicorn.Config`` options that apply ``limits``' connection bounds."""
    protocol = type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,),
                    {"header_timeout_s": limits.header_timeout_s})
    return {"http": protocol, "timeout_keep_alive": limits.keep_alive_timeout_s,
            "limit_concurrency": limits.max_connections}
