"""Fixtures for the LLM tests: a real llama.cpp server on loopback and a fault-injecting HTTP server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import httpx
import pytest

from syneg.llm.models import smollm2_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """``python -m llama_cpp.server`` serving SmolLM2-135M on a free loopback port; yields the API root."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "syneg.llm.llama_server", "--model", str(smollm2_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--model_alias", "smollm2-135m"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with code {process.returncode}")
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not start within 90 s")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


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
