"""One local Ray for the whole session (``ray.init`` takes 5-16 s here), and a counting proxy in front of the
real llama.cpp server: what the endpoint is asked, how many requests are in flight, and a hold to stop a job
part way at a known request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import httpx
import pytest


@pytest.fixture(scope="session")
def ray_address(isolated_cache) -> Iterator[str]:
    """The address of a local Ray with 2 CPUs, started once; tests in this process use it directly, CLI
    subprocesses join it with ``--ray-address``. Its workers inherit the session's isolated cache."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'syneg[ray]'")
    pytest.importorskip("ray.data.llm", reason="Ray Data's LLM processors need 'syneg[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


class CountingProxy:
    """A loopback HTTP proxy to an OpenAI-compatible server that records every body it forwards and the most
    requests in flight at once. With ``hold_after=n``, the requests after the n-th forwarded one are held
    (never forwarded) until :meth:`release`, then answered 503."""

    def __init__(self, upstream: str, hold_after: int | None = None) -> None:
        self.upstream = upstream.removesuffix("/v1")
        self.hold_after = hold_after
        self.forwarded: list[str] = []
        self.held = threading.Event()
        self.released = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with proxy.lock:
                    hold = proxy.hold_after is not None and len(proxy.forwarded) >= proxy.hold_after
                    if not hold:
                        proxy.forwarded.append(body.decode())
                        proxy.in_flight += 1
                        proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                if hold:
                    proxy.held.set()
                    proxy.released.wait(timeout=600)
                    self.reply(503, b'{"error": "held"}')
                    return
                try:
                    answer = httpx.post(f"{proxy.upstream}{self.path}", content=body,
                                        headers={"Content-Type": "application/json"}, timeout=600)
                finally:
                    with proxy.lock:
                        proxy.in_flight -= 1
                self.reply(answer.status_code, answer.content)

            def reply(self, status: int, data: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client was stopped

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def bodies(self) -> list[dict]:
        return [json.loads(body) for body in self.forwarded]

    def release(self) -> None:
        self.released.set()

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def counting_proxy() -> type[CountingProxy]:
    return CountingProxy
