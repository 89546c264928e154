"""The OpenAI-compatible client under load, against a real HTTP server on loopback that injects faults.

Issue 21, part 6. A fault server runs in its own process (``ThreadingHTTPServer``, HTTP/1.1 keep-alive)
and answers chat completions; per request it draws, from a seeded hash of the request, one of:

- ``429``: the first attempt gets HTTP 429 with ``Retry-After: 0.05``;
- ``5xx``: the first two attempts get HTTP 500, then 503;
- ``drop``: the first attempt's connection is closed without an answer;
- ``slow``: the answer comes 0.3-0.6 s later than the others (which take 50-150 ms, as a model would);
- ``timeout``: the first attempt answers after the client's timeout (the client gives up and retries);
- ``dead-5xx``, ``dead-drop``, ``dead-429``: every attempt fails that way, so the request ends as a failure;
- otherwise an answer at once.

The client is syneg's own: :class:`~syneg.llm.LLMClient` over :class:`~syneg.llm.OpenAICompatibleBackend`
with a request cache. Every request is distinct and its answer names it, so a crossed answer is caught.
The run is then repeated with the same cache against a server without faults (the outage is over): it
must ask the server for exactly the requests that failed. A last phase has the server reject the key
(HTTP 401) from its ``--reject-after``-th request on: the run must end at once with that error, with no
retry of it and no request started after it.

Printed (and with ``--json``, written as one JSON document): requests, answered, failures by kind, requests
lost (neither answered nor recorded as failed: must be 0), attempts and faults the server saw, the most
requests in flight at the server (never above ``--in-flight``), the client's peak RSS and its RSS after
the first tenth of the requests (the memory a run holds must not grow with its length), the resume, and
the rejected key.

Usage::

    python bench/load_bench.py --requests 2000 --in-flight 64            # the CI size (tests/llm/test_llm_load.py)
    python bench/load_bench.py --requests 20000 --in-flight 64 --json bench/out/load.json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import resource
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# Shares of each fault among the requests, in the order they are drawn.
FAULTS = (("429", 0.06), ("5xx", 0.06), ("drop", 0.04), ("slow", 0.06), ("timeout", 0.01),
          ("dead-5xx", 0.02), ("dead-drop", 0.01), ("dead-429", 0.01))
SCHEMA = {"type": "object", "properties": {"negative": {"type": "string"}}, "required": ["negative"]}
TIMEOUT = 1.0  # the client's, in seconds; "timeout" faults answer after it


def fault_of(request_id: str, seed: int, faults: bool) -> str:
    if not faults:
        return "ok"
    draw = random.Random(hashlib.sha1(f"{seed}/{request_id}".encode()).digest()).random()
    for name, share in FAULTS:
        if draw < share:
            return name
        draw -= share
    return "ok"


class LoadServer:
    """Chat completions on loopback with the faults above; counts attempts, faults and requests in flight.

    A request is in flight from when it is read until its answer is written, its connection dropped, or the
    client is seen to have given up on it (a "timeout" answer waits in short steps, watching the socket).
    """

    def __init__(self, seed: int, faults: bool, reject_after: int | None) -> None:
        self.seed, self.faults, self.reject_after = seed, faults, reject_after
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.in_flight = self.max_in_flight = self.received = 0
        self.rejected_ids: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                self.reply(200, server.stats())

            def do_POST(self) -> None:  # noqa: N802
                data = self.rfile.read(int(self.headers["Content-Length"]))
                if len(data) < int(self.headers["Content-Length"]):  # the client gave up while sending
                    self.close_connection = True
                    return
                body = json.loads(data)
                request_id = body["messages"][-1]["content"].split()[1].rstrip(":")
                with server.lock:
                    server.received += 1
                    attempt = server.attempts[request_id]
                    server.attempts[request_id] += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    rejected = server.reject_after is not None and server.received > server.reject_after
                try:
                    self.answer(request_id, attempt, rejected)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def answer(self, request_id: str, attempt: int, rejected: bool) -> None:
                fault = "rejected" if rejected else fault_of(request_id, server.seed, server.faults)
                action = {"429": "429" if attempt == 0 else "ok", "5xx": ("500", "503")[attempt] if attempt < 2 else "ok",
                          "drop": "drop" if attempt == 0 else "ok", "timeout": "late" if attempt == 0 else "ok",
                          "dead-5xx": "503", "dead-drop": "drop", "dead-429": "429", "rejected": "401"}.get(fault, fault)
                if action != "ok":
                    with server.lock:
                        server.injected[action] += 1
                if action == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if action in ("429", "500", "503", "401"):
                    headers = {"Retry-After": "0.05"} if action == "429" else {}
                    self.reply(int(action), {"error": {"message": f"injected {action}"}}, headers)
                    if action == "401":
                        with server.lock:
                            server.rejected_ids[request_id] += 1
                    return
                # Every answer takes a model's time to write (50-150 ms), a slow one 0.3-0.6 s more.
                draw = random.Random(f"{request_id}/{attempt}")
                time.sleep(draw.uniform(0.05, 0.15) + (draw.uniform(0.3, 0.6) if action == "slow" else 0.0))
                if action == "late" and not self.wait_unless_abandoned(TIMEOUT + 1.0):
                    self.close_connection = True
                    return
                content = json.dumps({"negative": f"answer to {request_id}"})
                self.reply(200, {"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 12, "completion_tokens": 6}})

            def wait_unless_abandoned(self, seconds: float) -> bool:
                """Sleep ``seconds`` unless the client closes the connection first (then False)."""
                deadline = time.monotonic() + seconds
                while (left := deadline - time.monotonic()) > 0:
                    readable, _, _ = select.select([self.connection], [], [], min(left, 0.002))
                    if readable and not self.connection.recv(1, socket.MSG_PEEK):
                        return False
                return True

            def reply(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # the listen backlog: 64 clients connecting at once overflow the default 5

            def handle_error(self, request: Any, client_address: Any) -> None:
                if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that closed its keep-alive connection
                    super().handle_error(request, client_address)

        self.httpd = Server(("127.0.0.1", 0), Handler)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"received": self.received, "distinct": len(self.attempts), "max_in_flight": self.max_in_flight,
                    "injected": dict(self.injected), "rejected_twice": sum(count > 1 for count in self.rejected_ids.values()),
                    "asked": sorted(self.attempts)}


def serve(seed: int, faults: bool, reject_after: int | None) -> None:
    """The server process: prints its port, serves until its stdin closes."""
    server = LoadServer(seed, faults, reject_after)
    threading.Thread(target=server.httpd.serve_forever, daemon=True).start()
    print(server.httpd.server_address[1], flush=True)
    sys.stdin.read()
    server.httpd.shutdown()


class ServerProcess:
    def __init__(self, seed: int, faults: bool, reject_after: int | None = None) -> None:
        command = [sys.executable, __file__, "--serve", "--seed", str(seed)] + ([] if faults else ["--no-faults"])
        command += ["--serve-reject-after", str(reject_after)] if reject_after is not None else []
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.base_url = f"http://127.0.0.1:{int(self.process.stdout.readline())}/v1"

    def stats(self) -> dict[str, Any]:
        import httpx

        return httpx.get(f"{self.base_url}/stats", timeout=10).json()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM belongs to the address space, which exec replaces:
    ``getrusage``'s ``ru_maxrss`` survives exec, so a bench started by a large process (the test suite with
    torch loaded) reported that parent's 2.6 GB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def load(base_url: str, requests: int, in_flight: int, cache: Path) -> dict[str, Any]:
    """Ask ``requests`` distinct requests at most ``in_flight`` at a time; every one ends answered or failed."""
    from pydantic import BaseModel

    from syneg.llm import ChatRequest, LLMClient, LLMError, OpenAICompatibleBackend, RequestCache

    class Answer(BaseModel):
        negative: str

    posted_at: list[float] = []

    class TimedBackend(OpenAICompatibleBackend):
        async def _post(self, request: ChatRequest) -> Any:
            posted_at.append(time.monotonic())  # when each attempt leaves the backend for the connection pool
            return await super()._post(request)

    backend = TimedBackend(base_url, "load-model", api_key_env="SYNEG_LOAD_KEY", concurrency=in_flight,
                                      timeout=TIMEOUT, max_retries=3, backoff=0.05)
    client = LLMClient(backend, RequestCache(cache))
    answered: set[str] = set()
    failed: dict[str, str] = {}
    crossed: list[str] = []
    early_rss: list[float] = []
    fatal_seen: list[float] = []

    async def one(request_id: str) -> None:
        request = ChatRequest.chat(None, f"request {request_id}: write a negative.", schema=SCHEMA, max_tokens=20)
        try:
            answer, _ = await client.generate(request, Answer)
        except LLMError as error:
            failed[request_id] = error.kind
            if error.fatal:
                fatal_seen.append(time.monotonic())
                raise
            return
        if answer.negative != f"answer to {request_id}":
            crossed.append(request_id)
        answered.add(request_id)
        if len(answered) == requests // 10:
            early_rss.append(peak_rss_mb())

    async def worker(ids: Iterator[str]) -> None:
        for request_id in ids:  # the workers share one iterator: each takes the next request
            await one(request_id)

    ids = (f"r{index:06d}" for index in range(requests))
    start = time.perf_counter()
    fatal = None
    try:
        # Twice as many workers as requests allowed in flight, as the synthesis stage has workers taking pairs:
        # the backend, not the workers, must hold what is in flight to its limit.
        await asyncio.gather(*(worker(ids) for _ in range(2 * in_flight)))
    except LLMError as error:
        fatal = str(error)
    finally:
        await client.aclose()
    seconds = time.perf_counter() - start
    return {"requests": requests, "answered": len(answered), "failed": len(failed),
            "failures_by_kind": dict(Counter(failed.values())), "lost": requests - len(answered) - len(failed),
            "crossed_answers": len(crossed), "failed_ids": sorted(failed), "cache_hits": client.stats.cache_hits,
            "backend_calls": client.stats.requests, "seconds": round(seconds, 2),
            "requests_per_second": round(requests / seconds, 1), "rss_after_tenth_mb": round(early_rss[0], 1) if early_rss else None,
            "fatal": fatal,
            "attempts_after_fatal": sum(at > min(fatal_seen) for at in posted_at) if fatal_seen else None}


def bench(requests: int, in_flight: int, seed: int, reject_after: int, folder: Path) -> dict[str, Any]:
    cache = folder / "llm-cache.sqlite"
    with ServerProcess(seed, faults=True) as server:
        first = asyncio.run(load(server.base_url, requests, in_flight, cache))
        first["server"] = server.stats()
    first["peak_rss_mb"] = round(peak_rss_mb(), 1)
    with ServerProcess(seed, faults=False) as server:
        resume = asyncio.run(load(server.base_url, requests, in_flight, cache))
        resume["server"] = server.stats()
    resume["asked_only_the_failed"] = resume["server"]["asked"] == first["failed_ids"]
    with ServerProcess(seed, faults=False, reject_after=reject_after) as server:
        rejected = asyncio.run(load(server.base_url, requests, in_flight, folder / "rejected-cache.sqlite"))
        rejected["server"] = server.stats()
    # Neither answered nor failed when the run stopped: in flight then (abandoned), or never asked.
    rejected["not_finished"] = rejected.pop("lost")
    for phase in (first, resume, rejected):
        del phase["server"]["asked"]
    rejected.pop("failed_ids")
    return {"requests": requests, "in_flight_limit": in_flight, "seed": seed, "first": first,
            "resume": resume | {"failed_ids": len(resume["failed_ids"])}, "rejected_key": rejected,
            "peak_rss_mb": round(peak_rss_mb(), 1), "cpu": _cpu()}


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--reject-after", type=int, default=300, help="The server rejects the key from this request on.")
    parser.add_argument("--json", type=Path, help="Write the figures here as JSON.")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-faults", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-reject-after", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.seed, not args.no_faults, args.serve_reject_after)
        return
    with tempfile.TemporaryDirectory() as folder:
        figures = bench(args.requests, args.in_flight, args.seed, args.reject_after, Path(folder))
    first, resume, rejected = figures["first"], figures["resume"], figures["rejected_key"]
    print(f"requests {first['requests']:,} with at most {args.in_flight} in flight, {first['seconds']} s "
          f"({first['requests_per_second']} requests/s); attempts at the server {first['server']['received']:,}, "
          f"faults injected {first['server']['injected']}")
    print(f"answered {first['answered']:,}, failed {first['failed']} {first['failures_by_kind']}, lost {first['lost']}, "
          f"crossed answers {first['crossed_answers']}; most in flight at the server {first['server']['max_in_flight']}")
    print(f"peak RSS {figures['peak_rss_mb']} MB (after a tenth of the requests: {first['rss_after_tenth_mb']} MB)")
    print(f"resume: {resume['cache_hits']:,} from the cache, the server asked for {resume['server']['distinct']} "
          f"(only the {first['failed']} that failed: {resume['asked_only_the_failed']}), answered {resume['answered']:,}, "
          f"lost {resume['lost']}")
    print(f"rejected key after {args.reject_after} requests: {rejected['fatal']!r}; attempts at the server "
          f"{rejected['server']['received']} (none retried: {rejected['server']['rejected_twice'] == 0}), attempts started after the client "
          f"had the 401: {rejected['attempts_after_fatal']}, in flight or never asked when it stopped: {rejected['not_finished']:,}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
