"""Side-by-side benchmark of syneg's retrieval foundation on SciFact.

Arms, each in a fresh subprocess so wall time and peak memory (ru_maxrss) are its own:

- ``st-mine``: sentence-transformers' ``mine_hard_negatives`` on SciFact train (corpus: every
  SciFact document), all-MiniLM-L6-v2, the given options.
- ``syneg-mine-cold``: ``syneg.mine`` with the same model and options and an empty embedding cache.
- ``syneg-mine-warm``: the same again, the cache now filled by the cold run.
- ``eval-<backend>[-<len>]``: encode the SciFact corpus with a backend (torch fp32, onnx fp32,
  onnx-int8; optionally another max_seq_length) into an empty cache, timing the encoding, then
  ``syneg.evaluate`` on the test split (nDCG@10 etc.).
- ``eval-bm25``: BM25 on the test split.

Usage::

    python bench/foundation_bench.py --data ../shared/datasets/scifact --out bench/results/foundation.json

Prints a table and writes every arm's figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

MINING = {"num_negatives": 3, "relative_margin": 0.05, "sampling_strategy": "top"}


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def arm_st_mine(data: Path) -> dict:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    from syneg.data import load_beir
    from syneg.retrieval.encoder import resolve_model

    started = time.perf_counter()
    train = load_beir(data, "train")
    pairs = list(train.pairs())
    dataset = Dataset.from_dict(
        {"query": [train.queries[q] for q, _ in pairs], "positive": [train.corpus[d].full_text for _, d in pairs]}
    )
    model = SentenceTransformer(resolve_model("default"))
    mined = mine_hard_negatives(
        dataset, model, corpus=[d.full_text for d in train.corpus.values()], batch_size=64, verbose=False, **MINING
    )
    return {"wall_s": time.perf_counter() - started, "rows": len(mined)}


def encode_corpus_timed(encoder, corpus) -> dict:
    """Encode every document, timing wall and CPU seconds (CPU time is steadier on a shared machine)."""
    started, cpu_before = time.perf_counter(), time.process_time()
    encoder.encode_documents([d.full_text for d in corpus.values()])
    encode_s = time.perf_counter() - started
    return {"encode_s": encode_s, "encode_cpu_s": time.process_time() - cpu_before, "docs": len(corpus), "docs_per_s": len(corpus) / encode_s}


def arm_syneg_mine(data: Path) -> dict:
    from syneg.data import load_beir
    from syneg.retrieval import DenseEncoder, mine

    started = time.perf_counter()
    train = load_beir(data, "train")
    encoder = DenseEncoder("default", backend="torch", batch_size=64, show_progress=False)
    # The corpus first, timed on its own (mine() then finds it cached): the torch row of the encoding table.
    encoding = encode_corpus_timed(encoder, train.corpus) if encoder.cache.get([next(iter(train.corpus.values())).full_text])[1] else {}
    result = mine(train, retriever="dense", encoder=encoder, show_progress=False, verbose=False, **MINING)
    return {
        "wall_s": time.perf_counter() - started,
        "rows": sum(len(i.negatives) for i in result.instances),
        "encoded_texts": encoder.encoded_count,
        **encoding,
    }


def arm_eval(data: Path, backend: str, max_seq_length: int | None) -> dict:
    from syneg.data import load_beir
    from syneg.evaluation import evaluate
    from syneg.retrieval import DenseEncoder

    test = load_beir(data, "test")
    encoder = DenseEncoder("default", backend=backend, max_seq_length=max_seq_length, batch_size=64, show_progress=False)
    _ = encoder.model  # load (and export, for onnx) before the clock starts
    encoding = encode_corpus_timed(encoder, test.corpus)
    result = evaluate(test, model="default", encoder=encoder, show_progress=False)
    return {**encoding, **result.metrics}


def arm_bm25(data: Path) -> dict:
    from syneg.data import load_beir
    from syneg.evaluation import evaluate

    test = load_beir(data, "test")
    result = evaluate(test, model="bm25", show_progress=False)
    return {"wall_s": result.seconds, **result.metrics}


def run_child(args: argparse.Namespace) -> None:
    name = args.child
    data = Path(args.data)
    if name == "st-mine":
        figures = arm_st_mine(data)
    elif name.startswith("syneg-mine"):
        figures = arm_syneg_mine(data)
    elif name == "eval-bm25":
        figures = arm_bm25(data)
    else:
        _, backend, *length = name.split(":")
        figures = arm_eval(data, backend, int(length[0]) if length else None)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures["peak_rss_mb"] = peak_memory_mb()
    # CPU seconds are far less sensitive than wall time to other work on a shared machine.
    figures["cpu_s"] = usage.ru_utime + usage.ru_stime
    print("RESULT " + json.dumps(figures))


def run_arm(name: str, data: str, cache_dir: Path) -> dict:
    env = {**os.environ, "SYNEG_CACHE_DIR": str(cache_dir), "TOKENIZERS_PARALLELISM": "false"}
    print(f"[{time.strftime('%H:%M:%S')}] running {name} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, __file__, "--child", name, "--data", data], env=env, capture_output=True, text=True, check=False
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"arm {name} failed:\n{completed.stderr[-3000:]}")
    figures = json.loads(lines[-1].removeprefix("RESULT "))
    figures["process_wall_s"] = time.perf_counter() - started
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {figures}", file=sys.stderr, flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/datasets/scifact")
    parser.add_argument("--out", default="bench/results/foundation.json")
    parser.add_argument(
        "--eval-arms",
        default="torch,onnx-int8,onnx,torch:128",
        help="Encoding arms: backend[:max_seq_length], comma-separated.",
    )
    parser.add_argument("--skip-mining", action="store_true")
    parser.add_argument("--fresh", action="store_true", help="Forget saved figures and caches; measure every arm again.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return

    # Figures are saved after every arm and arms already measured are skipped, so an interrupted run
    # resumes; --fresh starts over. Caches live beside the results so the warm arm finds the cold one's.
    out = Path(args.out)
    results: dict[str, dict] = json.loads(out.read_text()) if out.exists() and not args.fresh else {}
    scratch = out.parent / ".foundation-cache"
    if args.fresh and scratch.exists():
        shutil.rmtree(scratch)
    arms: list[tuple[str, str, Path]] = []
    if not args.skip_mining:
        arms += [
            ("st-mine", "st-mine", scratch / "unused"),
            ("syneg-mine-cold", "syneg-mine-cold", scratch / "mine-cache"),
            ("syneg-mine-warm", "syneg-mine-warm", scratch / "mine-cache"),
        ]
    arms.append(("eval-bm25", "eval-bm25", scratch / "unused"))
    for arm in args.eval_arms.split(","):
        # torch fp32 at the model's own length is what the cold mining run encoded: its encoding time is
        # that run's, and its evaluation reuses that cache instead of encoding the corpus once more.
        reuse = arm == "torch" and not args.skip_mining
        arms.append((f"eval-{arm}", f"eval:{arm}", scratch / ("mine-cache" if reuse else f"cache-{arm.replace(':', '-')}")))
    for key, child, cache in arms:
        if key in results:
            continue
        results[key] = run_arm(child, args.data, cache)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
    if "eval-torch" in results and results.get("syneg-mine-cold", {}).get("encode_s"):
        cold = results["syneg-mine-cold"]
        results["eval-torch"].update({k: cold[k] for k in ("encode_s", "encode_cpu_s", "docs_per_s")})

    print_report(results)


def print_report(results: dict[str, dict]) -> None:
    if "st-mine" in results:
        st, cold, warm = results["st-mine"], results["syneg-mine-cold"], results["syneg-mine-warm"]
        print("\nMining, SciFact train, all-MiniLM-L6-v2, " + ", ".join(f"{k}={v}" for k, v in MINING.items()))
        print(f"{'arm':<18}{'wall s':>9}{'CPU s':>9}{'peak MB':>9}{'negatives':>11}{'wall vs ST':>12}{'CPU vs ST':>11}")
        for name, figures in (("st-mine", st), ("syneg-mine-cold", cold), ("syneg-mine-warm", warm)):
            wall_speedup = st["process_wall_s"] / figures["process_wall_s"]
            cpu_speedup = st["cpu_s"] / figures["cpu_s"]
            print(
                f"{name:<18}{figures['process_wall_s']:>9.1f}{figures['cpu_s']:>9.1f}{figures['peak_rss_mb']:>9.0f}"
                f"{figures['rows']:>11}{wall_speedup:>11.2f}x{cpu_speedup:>10.2f}x"
            )
    print("\nEncoding the SciFact corpus and evaluating on SciFact test")
    print(
        f"{'arm':<18}{'encode s':>10}{'CPU s':>8}{'docs/s':>9}{'wall x':>8}{'CPU x':>7}"
        f"{'nDCG@10':>9}{'dNDCG':>8}{'R@100':>8}{'MRR@10':>8}"
    )
    base = results.get("eval-torch")
    for name, figures in results.items():
        if not name.startswith("eval-"):
            continue
        encode = figures.get("encode_s")
        speedup = f"{base['encode_s'] / encode:.2f}x" if base and encode else "-"
        cpu = figures.get("encode_cpu_s")
        cpu_text = f"{cpu:.1f}" if cpu else "-"
        cpu_speedup = f"{base['encode_cpu_s'] / cpu:.2f}x" if base and cpu else "-"
        delta = f"{100 * (figures['ndcg@10'] - base['ndcg@10']):+.2f}" if base else "-"
        encode_text = f"{encode:.1f}" if encode else "-"
        rate_text = f"{figures['docs_per_s']:.1f}" if encode else "-"
        print(
            f"{name:<18}{encode_text:>10}{cpu_text:>8}{rate_text:>9}"
            f"{speedup:>8}{cpu_speedup:>7}{100 * figures['ndcg@10']:>9.2f}{delta:>8}{100 * figures['recall@100']:>8.2f}{100 * figures['mrr@10']:>8.2f}"
        )


if __name__ == "__main__":
    main()
