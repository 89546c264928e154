"""Loopback HTTP helpers: a deterministic OpenAI-compatible chat endpoint (the secrets, disk, load and kill
tests), and a counting proxy in front of a real one (the Ray tests and bench/ray_bench.py)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import httpx

REFLECTION = {"topic": "Vaccine storage", "aspect": "cold chain logistics in rural clinics",
              "reasoning": "shares the vocabulary of the query", "title": "Cold chain logistics for vaccines"}
PASSAGE = ("Vaccine cold chains in rural clinics depend on solar refrigerators whose temperature logs are read weekly; "
           "studies of three districts report that power cuts, not transport, cause most excursions above eight degrees, "
           "and that staff training reduced spoilage by a third over two years of monitoring.")


def reflection(response_format: dict) -> str:
    """The answer to a reflection request: one aspect, or as many as a ``reflect_many`` schema asks for."""
    schema = response_format.get("json_schema", {}).get("schema") or response_format.get("schema") or {}
    properties = schema.get("properties", {})
    if "aspects" not in properties:
        return json.dumps(REFLECTION)
    aspect = {key: REFLECTION[key] for key in ("aspect", "reasoning", "title")}
    return json.dumps({"topic": REFLECTION["topic"], "aspects": [aspect] * properties["aspects"]["minItems"]})


class QuietJSONHandler(BaseHTTPRequestHandler):
    """A loopback handler that logs nothing and answers JSON, quietly when its client is gone."""

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, status: int, data: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client was stopped (killed while its request was in flight)


def request_tag(body_hash: str) -> int:
    """A number that names a request body (from its sha1), returned as the answer's token count."""
    return int(body_hash[:8], 16)


class EchoingChatServer:
    """Chat completions on loopback; the requests numbered in ``failing`` (from 1) fail with their HTTP status
    (by default 401, then 500) echoing the Authorization header; ``reject_all`` answers every request with 401.

    ``passage``: the answer to a request for free text. ``delay``: seconds before each answer, as a remote
    model takes. ``answered`` counts the requests answered by their body (a sha1), as the answer is sent (a
    paid API bills it whether or not the client lives to read it): a body counted twice is a request asked
    twice. ``busy``: requests being answered. Each answer's ``prompt_tokens`` is :func:`request_tag` of its
    body, so that what a client cached tells which requests it holds.
    """

    def __init__(self, failing: dict[int, int] | None = None, reject_all: bool = False, delay: float = 0.0,
                 passage: str = PASSAGE) -> None:
        self.failing = {1: 401, 2: 500} if failing is None else failing
        self.reject_all = reject_all
        self.passage = passage
        self.delay = delay
        self.requests = 0
        self.answered: Counter[str] = Counter()
        self.busy = 0
        self.authorizations: list[str] = []
        server = self

        class Handler(QuietJSONHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(raw)
                server.requests += 1
                authorization = self.headers.get("Authorization", "")
                server.authorizations.append(authorization)
                if server.requests in server.failing or server.reject_all:
                    status = 401 if server.reject_all else server.failing[server.requests]
                    self.reply(status, json.dumps({"error": {"message": f"invalid key; headers were Authorization: {authorization}"}}).encode())
                    return
                server.busy += 1
                try:
                    time.sleep(server.delay)
                    content = reflection(body["response_format"]) if "response_format" in body else server.passage
                    body_hash = hashlib.sha1(raw).hexdigest()
                    server.answered[body_hash] += 1
                    self.reply(200, json.dumps({
                        "choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": request_tag(body_hash), "completion_tokens": 20},
                    }).encode())
                finally:
                    server.busy -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


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
        self.busy_seconds = 0.0  # summed over requests: divided by the wall time, the mean in flight
        self.lock = threading.Lock()
        proxy = self

        class Handler(QuietJSONHandler):
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
                started = time.perf_counter()
                try:
                    answer = httpx.post(f"{proxy.upstream}{self.path}", content=body,
                                        headers={"Content-Type": "application/json"}, timeout=600)
                finally:
                    with proxy.lock:
                        proxy.in_flight -= 1
                        proxy.busy_seconds += time.perf_counter() - started
                self.reply(answer.status_code, answer.content)

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
