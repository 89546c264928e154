"""A deterministic OpenAI-compatible chat endpoint on loopback, for the secrets and disk tests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REFLECTION = {"topic": "Vaccine storage", "aspect": "cold chain logistics in rural clinics",
              "reasoning": "shares the vocabulary of the query", "title": "Cold chain logistics for vaccines"}
PASSAGE = ("Vaccine cold chains in rural clinics depend on solar refrigerators whose temperature logs are read weekly; "
           "studies of three districts report that power cuts, not transport, cause most excursions above eight degrees, "
           "and that staff training reduced spoilage by a third over two years of monitoring.")


class EchoingChatServer:
    """Chat completions on loopback; the requests numbered in ``failing`` (from 1) fail with their HTTP status
    (by default 401, then 500) echoing the Authorization header; ``reject_all`` answers every request with 401."""

    def __init__(self, failing: dict[int, int] | None = None, reject_all: bool = False) -> None:
        self.failing = {1: 401, 2: 500} if failing is None else failing
        self.reject_all = reject_all
        self.requests = 0
        self.authorizations: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests += 1
                authorization = self.headers.get("Authorization", "")
                server.authorizations.append(authorization)
                if server.requests in server.failing or server.reject_all:
                    status = 401 if server.reject_all else server.failing[server.requests]
                    self.reply(status, {"error": {"message": f"invalid key; headers were Authorization: {authorization}"}})
                    return
                content = json.dumps(REFLECTION) if "response_format" in body else PASSAGE
                self.reply(200, {"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 10, "completion_tokens": 20}})

            def reply(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
