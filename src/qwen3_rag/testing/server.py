"""Run an ASGI app on a real uvicorn server on 127.0.0.1 in a background thread (tests, demos).

Example:
    >>> from fastapi import FastAPI
    >>> import httpx
    >>> app = FastAPI()
    >>> @app.get("/ping")
    ... def ping():
    ...     return {"ok": True}
    >>> with serve_in_thread(app) as url:
    ...     httpx.get(url + "/ping").json()
    {'ok': True}
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def serve_in_thread(app: Any, *, startup_timeout: float = 30.0, log_level: str = "warning") -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yield its base URL; stop the server on exit."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn exited during startup")
            if time.monotonic() > deadline:
                raise TimeoutError(f"uvicorn did not start within {startup_timeout}s")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
