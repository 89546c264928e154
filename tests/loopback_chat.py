"""A deterministic OpenAI-compatible chat endpoint on loopback, for the secrets, disk and kill tests."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REFLECTION = {"topic": "Vaccine storage", "aspect": "cold chain logistics in rural clinics",
              "reasoning": "shares the vocabulary of the query", "title": "Cold chain logistics for vaccines"}
PASSAGE = ("Vaccine cold chains in rural clinics depend on solar refrigerators whose temperature logs are read weekly; "
           "studies of three districts report that power cuts, not transport, cause most excursions above eight degrees, "
           "and that staff training reduced spoilage by a third over two years of monitoring.")


def request_tag(body_hash: str) -> int:
    """A number that names a request body (from its sha1), returned as the answer's token count."""
    return int(body_hash[:8], 16)


class EchoingChatServer:
    """Chat completions on loopback; requests 1 and 2 fail (401, then 500) echoing the Authorization header.

    ``passage``: the answer to a request for free text. ``delay``: seconds before each answer, as a remote model takes. ``answered`` counts the requests
    answered by their body (a sha1), as the answer is sent (a paid API bills it whether or not the client
    lives to read it): a body counted twice is a request asked twice. ``busy``: requests being answered.
    Each answer's ``prompt_tokens`` is :func:`request_tag` of its body, so that what a client cached
    tells which requests it holds.
    """

    def __init__(self, failing: tuple[int, ...] = (1, 2), delay: float = 0.0, passage: str = PASSAGE) -> None:
        self.failing = failing
        self.passage = passage
        self.delay = delay
        self.requests = 0
        self.answered: Counter[str] = Counter()
        self.busy = 0
        self.authorizations: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(raw)
                server.requests += 1
                authorization = self.headers.get("Authorization", "")
                server.authorizations.append(authorization)
                if server.requests in server.failing:
                    status = 401 if server.requests == 1 else 500
                    self.reply(status, {"error": {"message": f"invalid key; headers were Authorization: {authorization}"}})
                    return
                server.busy += 1
                try:
                    time.sleep(server.delay)
                    content = json.dumps(REFLECTION) if "response_format" in body else server.passage
                    body_hash = hashlib.sha1(raw).hexdigest()
                    server.answered[body_hash] += 1
                    self.reply(200, {"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                                     "usage": {"prompt_tokens": request_tag(body_hash), "completion_tokens": 20}})
                finally:
                    server.busy -= 1

            def reply(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client was killed while its request was in flight

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
