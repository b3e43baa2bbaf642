"""Small fake HTTP servers on loopback (stdlib), standing in for vLLM's OpenAI-style server."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handler = Callable[[str, str, Any, int], Any]


@contextlib.contextmanager
def fake_server(handle: Handler) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A stdlib HTTP server on loopback; ``handle(method, path, body, n)`` returns
    ``(status, json_or_None)``, ``"drop"`` (close without answering) or ``("sleep", s, status, json)``.
    ``n`` counts earlier requests to the same path."""
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()  # requests arrive on several threads: each gets its own n

    class H(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _do(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            with lock:
                n = sum(1 for m, p in seen if p == self.path)
                seen.append((method, self.path))
            action = handle(method, self.path, body, n)
            if action == "drop":
                self.close_connection = True
                return
            if action[0] == "sleep":
                time.sleep(action[1])
                action = action[2:]
            status, payload = action
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._do("GET")

        def do_POST(self) -> None:
            self._do("POST")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def fake_vector(item: Any) -> list[float]:
    ids = item if isinstance(item, list) else [len(item)]
    return [float(len(ids)), float(sum(ids) % 7), 1.0, 2.0]


def embeddings_body(body: Any) -> dict[str, Any]:
    data = [{"object": "embedding", "index": i, "embedding": fake_vector(x)}
            for i, x in enumerate(body["input"])]
    return {"object": "list", "data": data[::-1], "model": body["model"]}  # out of order on purpose


def vllm_like(method: str, path: str, body: Any, n: int) -> Any:
    if path == "/health":
        return 200, None
    if path == "/v1/embeddings":
        return 200, embeddings_body(body)
    return 404, {"error": {"message": f"no route {path}"}}
