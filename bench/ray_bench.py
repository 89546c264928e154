"""Local against Ray, side by side in one run: encoding throughput and synthesis throughput.

Encoding: the first ``--docs`` passages of a BEIR corpus encoded by :class:`syneg.retrieval.DenseEncoder` here,
then by two Ray actors (``--engine ray``), each from a cold embedding cache; and 16 passages on Ray, whose
time is the fixed cost of a Ray encoding job (actors started, the model loaded in each, the dataset run).

Synthesis: ``--pairs`` demo pairs synthesized against one loopback ``llama_cpp.server`` (SmolLM2-135M, one
thread), through a proxy that counts the requests and the time they spend in flight: on the local path
(syneg's async client, ``--concurrency`` pairs in flight) and on Ray (the same loop, its requests sent in
batches through ``ray.data.llm``'s HTTP processor with two actors), each from a fresh request cache.

Usage::

    python bench/ray_bench.py --data ../shared/datasets/scifact --docs 600 --pairs 4 --out bench/results/ray.json

Prints a markdown table and writes the figures as JSON. Ray runs on a local Ray of ``--num-cpus`` CPUs.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from loopback_chat import CountingProxy  # noqa: E402

from syneg.data import demo_path, load_beir  # noqa: E402
from syneg.engine import RayEngine  # noqa: E402
from syneg.engine.synthesis import ray_client  # noqa: E402
from syneg.llm.models import smollm2_path  # noqa: E402
from syneg.retrieval.encoder import DenseEncoder  # noqa: E402
from syneg.synth import SynthesizeOptions, synthesize  # noqa: E402

# The settings of tests/engine: greedy decoding, similarity checks loose enough for SmolLM2-135M's passages.
SYNTHESIS = {"backend": "openai", "model": "smollm2-135m", "structured_output": "json_object", "attributes": "demo",
             "negatives_per_pair": 1, "max_rounds": 1, "max_tokens": 48, "temperature": 0.0, "timeout": 600,
             "checks": {"positive_ratio": 1.5, "min_query_similarity": 0.0}}


def encoding(texts: list[str], actors: int) -> dict[str, dict[str, float]]:
    rows = {}
    for name, engine, sample in (("local", None, texts), ("ray-fixed-cost", RayEngine(actors=actors), texts[:16]),
                                 (f"ray-{actors}-actors", RayEngine(actors=actors), texts)):
        with tempfile.TemporaryDirectory() as cache:
            encoder = DenseEncoder(cache_dir=cache, show_progress=False, engine=engine)
            if engine is None:
                encoder.model  # noqa: B018 - loaded before the clock starts, as each Ray actor loads it inside its job
            started = time.perf_counter()
            encoder.encode(sample)
            seconds = time.perf_counter() - started
        rows[name] = {"texts": len(sample), "seconds": round(seconds, 2), "texts_per_second": round(len(sample) / seconds, 1),
                      "backend": encoder.backend}
    ray_row, fixed = rows[f"ray-{actors}-actors"], rows["ray-fixed-cost"]
    ray_row["texts_per_second_after_fixed_cost"] = round((len(texts) - 16) / max(1e-9, ray_row["seconds"] - fixed["seconds"]), 1)
    return rows


def llama_server(port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "syneg.llm.llama_server", "--model", str(smollm2_path()), "--host", "127.0.0.1",
                                "--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--model_alias", "smollm2-135m"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(180):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError("llama_cpp.server did not start")


def synthesis(pairs: int, actors: int, concurrency: int, port: int) -> dict[str, dict[str, float]]:
    rows = {}
    for name in ("local", f"ray-{actors}-actors"):
        with tempfile.TemporaryDirectory() as folder, CountingProxy(f"http://127.0.0.1:{port}/v1") as proxy:
            on_ray = name != "local"
            options = SynthesizeOptions(**SYNTHESIS, base_url=proxy.base_url, cache=Path(folder) / "cache.sqlite",
                                        concurrency=concurrency, engine="ray" if on_ray else "local", ray_actors=actors)
            client = ray_client(options, options.ray_engine()) if on_ray else None
            started = time.perf_counter()
            stats = synthesize(demo_path(), Path(folder) / "out.jsonl", options, limit=pairs, client=client, show_progress=False)
            seconds = time.perf_counter() - started
            requests = len(proxy.forwarded)
            rows[name] = {"pairs": pairs, "requests": requests, "seconds": round(seconds, 1),
                          "requests_per_second": round(requests / seconds, 3),
                          "server_busy_seconds": round(proxy.busy_seconds, 1),
                          "mean_in_flight": round(proxy.busy_seconds / seconds, 2), "max_in_flight": proxy.max_in_flight,
                          "accepted": stats["accepted"]}
            if client is not None:
                batches = client.backend.batches
                rows[name] |= {"batches": len(batches), "mean_batch": round(sum(batches) / max(1, len(batches)), 1)}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="A BEIR folder whose corpus is encoded.")
    parser.add_argument("--docs", type=int, default=600)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="Pairs in flight, on both paths.")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--port", type=int, default=18477)
    parser.add_argument("--out", type=Path, default=Path("bench/results/ray.json"))
    args = parser.parse_args()

    import ray

    started = time.perf_counter()
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    ray_init = time.perf_counter() - started
    texts = [document.full_text for document in list(load_beir(args.data, split=None).corpus.values())[: args.docs]]
    results = {"machine": platform.processor() or platform.machine(), "ray": ray.__version__, "ray_init_seconds": round(ray_init, 1),
               "encoding": encoding(texts, args.actors)}
    server = llama_server(args.port)
    try:
        results["synthesis"] = synthesis(args.pairs, args.actors, args.concurrency, args.port)
    finally:
        server.terminate()
        server.wait(timeout=30)
        ray.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    for stage in ("encoding", "synthesis"):
        rows = results[stage]
        columns = list(dict.fromkeys(key for row in rows.values() for key in row))
        print(f"\n{stage}\n\n| path | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
        for name, row in rows.items():
            print(f"| {name} | " + " | ".join(str(row.get(column, "")) for column in columns) + " |")


if __name__ == "__main__":
    main()
