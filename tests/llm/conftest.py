"""Fixtures for the LLM tests: a fault-injecting HTTP server (the real llama.cpp server is in tests/conftest.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import pytest



class FaultServer:
    """A real HTTP server on loopback answering chat completions from a script of faults.

    Each request pops the next action: ``ok`` (a valid answer, ``{"negative": ...}``), ``slow``
    (sleeps past the client's timeout, then answers), an HTTP status (``429``, ``500``, ``403``...), ``garbage`` (a body that is not
    JSON), ``not_json`` (a completion whose content is not JSON), ``empty`` (empty content). When the
    script is exhausted it answers ``ok``. It records requests, headers and the most in flight at once.
    """

    def __init__(self) -> None:
        self.script: list[str] = []
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    action = server.script.pop(0) if server.script else "ok"
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay)
                    if action == "slow":
                        time.sleep(1.5)
                    if action.isdigit():  # an HTTP status: 429, 500, 403...
                        self.send_response(int(action))
                        if action == "429":
                            self.send_header("Retry-After", "0")
                        self.end_headers()
                        return
                    content = {
                        "ok": json.dumps({"negative": f"seed {body.get('seed')}"}),
                        "slow": json.dumps({"negative": "late"}),
                        "not_json": "Sure, here is a passage about vaccines.",
                        "empty": "",
                    }.get(action)
                    payload = (
                        b"<html>oops"
                        if action == "garbage"
                        else json.dumps({
                            "choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
                        }).encode()
                    )
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server
