"""Benchmark of LLM synthesis of hard negatives on SciFact train pairs with the embedded model.

Reports, for ``--pairs`` (query, positive) pairs of the train split:

- accepted negatives per minute, acceptance rate, revision rounds, failures by check;
- for accepted negatives, the mean dense similarity (all-MiniLM-L6-v2) to the query, beside BM25- and
  dense-mined negatives for the same queries (a hard negative should be close to the query);
- the answer-leak rate of all candidates as judged by the checks;
- the cost of a rerun served from the request cache;
- single-stream against aggregate tokens/s with several requests in flight on ``llama_cpp.server``
  (llama-cpp-python's, one sequence at a time) and on llama.cpp's C++ ``llama-server`` (continuous
  batching over ``--parallel`` slots; build it with ``bench/build_llama_server.sh``);
- five example negatives beside their query and positive.

Usage::

    python bench/synthesis_bench.py --data /work/shared/datasets/scifact --pairs 50 --out bench/out/synthesis

Everything goes to ``--out`` (a fresh LLM cache included, so the first pass really asks the model);
the synthesis output is written as it goes and the script resumes if rerun with the same ``--out``.
``--max-minutes`` stops starting new pairs after that long and reports on the pairs done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from syneg.data import BeirDataset, load_beir, read_training_set
from syneg.llm import ChatRequest, LlamaCppBackend, OpenAICompatibleBackend, make_client
from syneg.llm.models import resolve_gguf
from syneg.retrieval.encoder import DenseEncoder
from syneg.synth import AttributeSet, Synthesizer, pairs_from_beir


def synthesize(args: argparse.Namespace, pairs: list, output: Path, cache: Path) -> dict:
    client = make_client("llama.cpp", args.model, cache=cache, n_threads=args.threads)
    synthesizer = Synthesizer(
        client,
        attributes=AttributeSet.from_spec(args.attributes),
        negatives_per_pair=args.negatives_per_pair,
        max_rounds=args.max_rounds,
        seed=args.seed,
    )
    start = time.perf_counter()
    for begin in range(0, len(pairs), 2):
        if args.max_minutes and time.perf_counter() - start > 60 * args.max_minutes:
            break
        synthesizer.run(pairs[begin : begin + 2], output, show_progress=False)
        report = synthesizer.report()
        print(f"  {begin + 2} pairs: {report['accepted']} accepted of {report['candidates']}, {report['seconds']:.0f} s",
              file=sys.stderr, flush=True)
    asyncio.run(client.aclose())
    return synthesizer.report()


def mined_similarity(dataset: BeirDataset, query_ids: set[str], encoder: DenseEncoder) -> dict[str, float]:
    """Mean query similarity of BM25- and dense-mined negatives (3 per query, top, 95% rule)."""
    from syneg.retrieval.mining import mine

    subset = dataset.with_queries(query_ids)
    means = {}
    for retriever in ("bm25", "dense"):
        result = mine(subset, retriever=retriever, num_negatives=3, relative_margin=0.05, encoder=encoder,
                      show_progress=False, verbose=False)
        similarities = []
        for instance in result.instances:
            if instance.negatives:
                query_vector = encoder.encode_queries([instance.query])[0]
                similarities.extend(encoder.encode_documents([n.text for n in instance.negatives]) @ query_vector)
        means[retriever] = float(np.mean(similarities))
    return means


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure_server(command: list[str], port: int, model: str, in_flight: int) -> dict:
    """Start a server, then tokens/s of one request alone against ``in_flight`` requests at once."""
    # A llama-server built with shared libraries finds them beside the binary.
    env = os.environ | {"LD_LIBRARY_PATH": str(Path(command[0]).parent)}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(480):
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        backend = OpenAICompatibleBackend(base, model, concurrency=in_flight, timeout=900, structured_output="none")
        prompt = "Write a short encyclopedia paragraph about protein folding."

        async def batch(count: int) -> tuple[float, int]:
            start = time.perf_counter()
            completions = await asyncio.gather(*(
                backend.complete(ChatRequest.chat(None, prompt, max_tokens=64, temperature=0.7, seed=i)) for i in range(count)
            ))
            return time.perf_counter() - start, sum(c.completion_tokens for c in completions)

        asyncio.run(batch(1))  # warm-up: the first request pays for loading and caches
        single_time, single_tokens = asyncio.run(batch(1))
        many_time, many_tokens = asyncio.run(batch(in_flight))
        return {
            "single_stream_tokens_per_s": round(single_tokens / single_time, 2),
            "in_flight": in_flight,
            "aggregate_tokens_per_s": round(many_tokens / many_time, 2),
            "speedup": round((many_tokens / many_time) / (single_tokens / single_time), 2),
        }
    finally:
        process.terminate()
        process.wait(timeout=30)


def server_throughput(args: argparse.Namespace, in_flight: int) -> dict:
    """llama-cpp-python's server (``python -m llama_cpp.server``): one sequence decoded at a time."""
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(resolve_gguf(args.model)), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", "2048", "--n_threads", str(args.threads or 1)]
    return measure_server(command, port, args.model, in_flight)


def cpp_server_throughput(args: argparse.Namespace, in_flight: int) -> dict:
    """llama.cpp's C++ ``llama-server`` with ``in_flight`` slots: continuous batching of the sequences."""
    port = free_port()
    command = [str(args.llama_server), "-m", str(resolve_gguf(args.model)), "--host", "127.0.0.1", "--port", str(port),
               "-c", str(2048 * in_flight), "--parallel", str(in_flight), "--cont-batching", "-t", str(args.threads or 1)]
    return measure_server(command, port, args.model, in_flight)


def in_process_throughput(args: argparse.Namespace) -> float:
    backend = LlamaCppBackend(args.model, n_threads=args.threads)
    request = ChatRequest.chat(None, "Write a short encyclopedia paragraph about protein folding.", max_tokens=64, seed=0)
    backend.complete_sync(request)  # warm-up, as for the servers
    completion = backend.complete_sync(request)
    backend.llama.close()
    return round(completion.completion_tokens / completion.latency, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/work/shared/datasets/scifact")
    parser.add_argument("--split", default="train")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--model", default="qwen2.5-0.5b")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--attributes", default="scifact")
    parser.add_argument("--negatives-per-pair", type=int, default=1)
    parser.add_argument("--max-rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument("--llama-server", type=Path, default=None,
                        help="llama.cpp's C++ llama-server (bench/build_llama_server.sh) for the continuous-batching figures")
    parser.add_argument("--throughput-only", action="store_true", help="Measure tokens/s, then stop")
    parser.add_argument("--out", type=Path, default=Path("bench/out/synthesis"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"command": " ".join(sys.argv), "model": args.model}

    if not args.skip_server:
        print("Throughput: in-process and llama_cpp.server ...", file=sys.stderr, flush=True)
        results["in_process_tokens_per_s"] = in_process_throughput(args)
        results["server"] = server_throughput(args, args.in_flight)
        if args.llama_server:
            results["cpp_server"] = cpp_server_throughput(args, args.in_flight)
        print(json.dumps(results), file=sys.stderr, flush=True)
        if args.throughput_only:
            (args.out / "throughput.json").write_text(json.dumps(results, indent=2))
            return

    dataset = load_beir(args.data, split=args.split)
    pairs = pairs_from_beir(dataset, limit=args.pairs)
    output, cache = args.out / "negatives.jsonl", args.out / "llm-cache.sqlite"
    print(f"Synthesizing for {len(pairs)} pairs ...", file=sys.stderr, flush=True)
    first = synthesize(args, pairs, output, cache)
    results["synthesis"] = first

    done = {(i.query_id, i.pos_ids[0]) for i in read_training_set(output)}
    done_pairs = [p for p in pairs if (p.query_id, p.pos_id) in done]
    rerun_output = args.out / "rerun.jsonl"
    rerun_output.unlink(missing_ok=True)
    rerun_args = argparse.Namespace(**(vars(args) | {"max_minutes": None}))
    rerun = synthesize(rerun_args, done_pairs, rerun_output, cache)
    results["rerun_from_cache"] = {k: rerun[k] for k in ("pairs", "requests", "cache_hits", "accepted", "seconds")}
    # The replay walks every done pair, including those a resumed first pass skipped, through the same
    # checks: its counts are the acceptance figures of the whole run (its timing is the cache's, not the LLM's).
    results["all_pairs"] = {k: rerun[k] for k in ("pairs", "candidates", "accepted", "rejected", "failed_slots",
                                                   "acceptance_rate", "check_failures", "rounds_of_accepted")}

    encoder = DenseEncoder("default", show_progress=False)
    instances = list(read_training_set(output))
    negatives = [(i, n) for i in instances for n in i.negatives]
    synthetic_similarity = float(np.mean([n.score for _, n in negatives])) if negatives else float("nan")
    candidates = rerun["candidates"] or 1
    results["quality"] = {
        "pairs_done": len(instances),
        "accepted": len(negatives),
        "mean_query_similarity": {"synthetic": round(synthetic_similarity, 4)}
        | {k: round(v, 4) for k, v in mined_similarity(dataset, {i.query_id for i in instances}, encoder).items()},
        "mean_positive_query_similarity": round(float(np.mean([i.pos_scores[0] for i in instances])), 4),
        "answer_leak_rate_of_candidates": round(rerun["check_failures"].get("no_answer_leak", 0) / candidates, 4),
        "mean_answer_leak_of_accepted": round(float(np.mean([n.scores["answer_leak"] for _, n in negatives])), 4) if negatives else None,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print("\nExamples:")
    for instance, negative in negatives[:5]:
        print(f"\n- query: {instance.query}\n  positive: {instance.pos[0][:300]}...\n  negative: {negative.text}\n"
              f"  aspect: {negative.details.get('aspect')}; reasoning: {negative.details.get('reasoning')}\n"
              f"  attributes: {negative.details['attributes']}; rounds: {negative.details['rounds']}; "
              f"query similarity {negative.score}, positive similarity {negative.scores['positive_similarity']}")


if __name__ == "__main__":
    main()
