"""Every encoding path this machine offers against plain sentence-transformers fp32, and bf16 training
against fp32, on SciFact, in one run (issue 18).

Encoding arms, each in a fresh subprocess (its own CPU seconds and peak memory) with an empty cache:

- ``sentence-transformers``: ``SentenceTransformer.encode`` in fp32, the baseline of every ratio.
- one per syneg backend available here: ``torch`` (fp32), ``onnx``, ``onnx-int8`` (with onnxruntime),
  ``torch-bf16`` (where the CPU runs bf16 natively, or on a GPU), ``torch-fp16`` (GPU). ``--backends``
  names others (``torch-bf16`` on a CPU without native bf16 shows what emulation costs).

Each arm loads its model (and exports it, for ONNX: the ``prepare`` columns), encodes the corpus
(timed: CPU and wall seconds), then the test queries, and scores nDCG@10 on SciFact test by exact
search; its vectors' cosine to sentence-transformers' says how far the path strays. The row of the
backend ``auto`` picks here is marked.

Training arms (where bf16 or a GPU is there, or ``--precisions``): the same BM25-mined training set
(``--train-queries`` SciFact train queries, 3 negatives each) trained in fp32 and in bf16 (fp16 on a
GPU without bf16) with the same seed; step time, loss, and nDCG@10 on SciFact test of the trained
model, every trained model encoded the same way (``--eval-backend``), so the difference is training's.

Usage (the full run; about an hour on 2 quiet cores)::

    python bench/encoding_bench.py --data ../shared/datasets/scifact --out bench/results/encoding.json

A quick run on part of the data (any nDCG@10 is then that of the smaller corpus)::

    python bench/encoding_bench.py --docs 256 --train-queries 64 --train-steps 4 --threads 1 \\
        --out /tmp/encoding-small.json

Prints markdown tables and writes every figure as JSON, saved after each arm: an interrupted run
resumes with the same command (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

# Forward-pass cost of all-MiniLM-L6-v2 per token, for the effective rate: 2 FLOP per weight of its six
# layers (~21.3 M) and attention over up to 256 tokens (the issue's ~44 MFLOP/token).
MFLOP_PER_TOKEN = 44
MINED_NEGATIVES = 3


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scifact_test(data: Path, docs: int | None):
    """SciFact test, or with ``docs``: the positives of as many whole queries as fill half of ``docs``, the
    rest a seeded sample of other abstracts, and those queries."""
    from syneg.data import BeirDataset, load_beir

    test = load_beir(data, "test")
    if docs is None or docs >= len(test.corpus):
        return test
    keep: list[str] = []
    queries = []
    for query_id in test.queries:
        relevant = [d for d, grade in test.qrels.get(query_id, {}).items() if grade > 0 and d in test.corpus]
        if not relevant or len(keep) + len(relevant) > docs // 2:
            continue
        queries.append(query_id)
        keep += [d for d in relevant if d not in keep]
    others = sorted(set(test.corpus) - set(keep))
    keep_set = set(keep) | set(random.Random(0).sample(others, docs - len(keep)))
    return BeirDataset(path=test.path, corpus={d: doc for d, doc in test.corpus.items() if d in keep_set},
                       queries={q: test.queries[q] for q in queries}, qrels={q: test.qrels[q] for q in queries},
                       split="test")  # fmt: skip


def score(test, query_vectors: np.ndarray, doc_vectors: np.ndarray) -> dict[str, float]:
    from syneg.evaluation import evaluate_run
    from syneg.retrieval.search import top_k

    doc_ids = list(test.corpus)
    indices, scores = top_k(query_vectors, doc_vectors, min(101, len(doc_ids)))
    run = {q: {doc_ids[i]: float(s) for i, s in zip(row, values, strict=True) if i >= 0}
           for q, row, values in zip(test.queries, indices, scores, strict=True)}  # fmt: skip
    return evaluate_run(test.qrels, run, ["ndcg@10", "recall@100", "mrr@10"]).metrics


def arm_encode(args: argparse.Namespace, backend: str, vectors_path: Path) -> dict:
    test = scifact_test(Path(args.data), args.docs)
    documents = [doc.full_text for doc in test.corpus.values()]
    queries = list(test.queries.values())
    prepare_cpu, prepare_wall = cpu_seconds(), time.perf_counter()
    if backend == "sentence-transformers":
        from sentence_transformers import SentenceTransformer

        from syneg.locations import resolve_model

        model = SentenceTransformer(resolve_model("default"))

        def encode(texts: list[str]) -> np.ndarray:
            return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)

        choice = {"backend": "sentence-transformers", "precision": "fp32", "device": str(model.device), "reason": "baseline"}
        tokenizer = model.tokenizer
        max_length = model.max_seq_length
    else:
        from syneg.retrieval import DenseEncoder

        encoder = DenseEncoder("default", backend=backend, batch_size=64, use_cache=False, show_progress=False)
        loaded = encoder.model  # load, and export for ONNX, before the clock starts
        encode = encoder.encode  # type: ignore[assignment]
        choice = asdict(encoder.choice)
        tokenizer = loaded.model.tokenizer if hasattr(loaded, "session") else loaded.tokenizer
        max_length = loaded.model.max_seq_length if hasattr(loaded, "session") else loaded.max_seq_length
    prepare = {"prepare_cpu_s": cpu_seconds() - prepare_cpu, "prepare_wall_s": time.perf_counter() - prepare_wall}
    started_cpu, started_wall = cpu_seconds(), time.perf_counter()
    doc_vectors = encode(documents)
    encode_cpu, encode_wall = cpu_seconds() - started_cpu, time.perf_counter() - started_wall
    query_vectors = encode(queries)
    np.save(vectors_path, doc_vectors.astype(np.float32))
    tokens = sum(min(len(ids), max_length) for ids in tokenizer(documents, add_special_tokens=True)["input_ids"])
    return {"choice": choice, "docs": len(documents), "queries": len(queries), "tokens": tokens, **prepare,
            "encode_cpu_s": encode_cpu, "encode_wall_s": encode_wall,
            "gflop_per_cpu_s": tokens * MFLOP_PER_TOKEN / 1e3 / encode_cpu,
            **score(test, query_vectors, doc_vectors)}  # fmt: skip


def training_set(args: argparse.Namespace, scratch: Path) -> Path:
    """BM25 negatives for the first ``--train-queries`` SciFact train queries (cheap, and no dense model)."""
    from syneg.data import load_beir, write_training_set
    from syneg.retrieval import mine

    path = scratch / f"train-{args.train_queries or 'all'}.jsonl"
    if not path.is_file():
        train = load_beir(Path(args.data), "train")
        if args.train_queries:
            train = train.with_queries(list(train.queries)[: args.train_queries])
        result = mine(train, retriever="bm25", num_negatives=MINED_NEGATIVES, relative_margin=None, show_progress=False, verbose=False)
        write_training_set(path, result.instances)
    return path


def arm_train(args: argparse.Namespace, precision: str, scratch: Path) -> dict:
    from syneg.retrieval import DenseEncoder
    from syneg.training import train

    from sentence_transformers import SentenceTransformerTrainer

    data = training_set(args, scratch)
    model_dir = scratch / f"model-{precision}"
    shutil.rmtree(model_dir, ignore_errors=True)
    # The training loop alone is timed (not loading the model, building the dataset or saving it).
    loop: dict[str, float] = {}
    original = SentenceTransformerTrainer.train

    def timed(self, *positional, **keywords):
        started_cpu, started_wall = cpu_seconds(), time.perf_counter()
        try:
            return original(self, *positional, **keywords)
        finally:
            loop.update(cpu=cpu_seconds() - started_cpu, wall=time.perf_counter() - started_wall)

    SentenceTransformerTrainer.train = timed
    result = train(data, model_dir, precision=precision, max_steps=args.train_steps, batch_size=args.batch_size,
                   seed=42, save_steps=10**9, show_progress=False)  # fmt: skip
    train_cpu, train_wall = loop["cpu"], loop["wall"]
    test = scifact_test(Path(args.data), args.docs)
    encoder = DenseEncoder(str(model_dir), backend=args.eval_backend, batch_size=64, use_cache=False, show_progress=False)
    metrics = score(test, encoder.encode(list(test.queries.values())), encoder.encode([d.full_text for d in test.corpus.values()]))
    return {"precision": asdict(result.precision), "steps": result.global_step, "rows": result.data.rows,
            "training_loss": result.training_loss, "train_cpu_s": train_cpu, "train_wall_s": train_wall,
            "step_cpu_s": train_cpu / result.global_step, "step_wall_s": train_wall / result.global_step,
            "eval_encoding": asdict(encoder.choice), **metrics}  # fmt: skip


def machine() -> dict:
    from syneg import system

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""

    def field(name: str) -> str | None:
        match = re.search(rf"^{name}\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        return match.group(1).strip() if match else None

    import torch

    return {"cpu": system.cpu_model(), "family": field("cpu family"), "model": field("model"), "cores": system.usable_cores(),
            "flags": sorted(f for f in system.cpu_flags() if re.match(r"avx|amx", f)),
            "usable": sorted(system.usable_instruction_sets()), "gpu": system.gpu()["devices"],
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "auto_encoding": asdict(system.encoding_backend("auto")),
            "auto_training": asdict(system.training_precision("auto"))}  # fmt: skip


def default_arms() -> tuple[list[str], list[str]]:
    """The backends and training precisions worth measuring on this machine."""
    import importlib.util

    from syneg import system

    usable, cuda = system.usable_instruction_sets(), system.gpu()["cuda"]
    backends = ["torch"]
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        backends += ["onnx", "onnx-int8"]
    if cuda or any(key in usable for key in system.NATIVE_BF16):
        backends.append("torch-bf16")
    if cuda:
        backends.append("torch-fp16")
    half = system.training_precision("auto").precision
    return backends, (["fp32", half] if half != "fp32" else [])


def run_child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    kind, name = args.child.split(":", 1)
    scratch = Path(args.scratch)
    figures = (arm_encode(args, name, scratch / f"vectors-{name}.npy") if kind == "encode"
               else arm_train(args, name, scratch) if kind == "train" else machine())  # fmt: skip
    figures["peak_rss_mb"] = peak_memory_mb()
    figures["process_cpu_s"] = cpu_seconds()
    print("RESULT " + json.dumps(figures))


def run_arm(args: argparse.Namespace, child: str, scratch: Path) -> dict:
    threads = str(args.threads)
    # An empty syneg cache per arm: nothing served from an earlier arm, every export paid where it is measured.
    cache = scratch / f"cache-{child.replace(':', '-')}"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "SYNEG_CACHE_DIR": str(cache), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    command = [sys.executable, __file__, "--child", child, "--scratch", str(scratch), "--data", args.data,
               "--threads", threads, "--batch-size", str(args.batch_size), "--eval-backend", args.eval_backend]  # fmt: skip
    for option in ("docs", "train_queries", "train_steps"):
        if getattr(args, option) is not None:
            command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    print(f"[{time.strftime('%H:%M:%S')}] {child} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"arm {child} failed:\n{completed.stderr[-3000:]}")
    figures = json.loads(lines[-1].removeprefix("RESULT "))
    figures["process_wall_s"] = time.perf_counter() - started
    shutil.rmtree(cache, ignore_errors=True)
    print(f"[{time.strftime('%H:%M:%S')}] {child}: done in {figures['process_wall_s']:.0f} s", file=sys.stderr, flush=True)
    return figures


def main() -> None:
    from syneg import system

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/datasets/scifact", help="SciFact's BEIR folder (read in place).")
    parser.add_argument("--out", default="bench/results/encoding.json")
    parser.add_argument("--docs", type=int, help="Encode this many abstracts (test positives and others) instead of all.")
    parser.add_argument("--train-queries", type=int, help="Train on this many SciFact train queries (default: all).")
    parser.add_argument("--train-steps", type=int, help="Stop training after this many steps (default: one epoch).")
    parser.add_argument("--batch-size", type=int, default=32, help="Training rows per batch.")
    parser.add_argument("--threads", type=int, default=system.usable_cores(), help="Threads of every arm.")
    parser.add_argument("--backends", help="Encoding backends, comma-separated (default: those available here).")
    parser.add_argument("--precisions", help="Training precisions, comma-separated (default: fp32 and auto's, if not fp32; none: no training).")
    parser.add_argument("--eval-backend", default="auto", help="How the trained models are encoded for nDCG@10.")
    parser.add_argument("--fresh", action="store_true", help="Forget saved figures; measure every arm again.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return

    out = Path(args.out)
    scratch = out.parent / f".{out.stem}-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    settings = {key: getattr(args, key) for key in ("docs", "train_queries", "train_steps", "batch_size", "threads", "eval_backend")}
    saved = json.loads(out.read_text()) if out.is_file() and not args.fresh else {}
    results = saved if saved.get("settings") == settings else {"settings": settings}
    backends, precisions = default_arms()
    backends = args.backends.split(",") if args.backends else backends
    precisions = ([] if args.precisions == "none" else args.precisions.split(",")) if args.precisions else precisions
    if "machine" not in results:
        results["machine"] = run_arm(args, "machine:", scratch)
    for arm in ["encode:sentence-transformers", *(f"encode:{b}" for b in backends), *(f"train:{p}" for p in precisions)]:
        kind, name = arm.split(":")
        section = results.setdefault(kind, {})
        if name not in section:
            section[name] = run_arm(args, arm, scratch)
            out.write_text(json.dumps(results, indent=2))
    add_cosines(results, scratch)
    out.write_text(json.dumps(results, indent=2))
    print(report(results))


def add_cosines(results: dict, scratch: Path) -> None:
    """Each encoding arm's per-document cosine to sentence-transformers' fp32 vectors (mean and min)."""
    base_path = scratch / "vectors-sentence-transformers.npy"
    if not base_path.is_file():
        return
    base = np.load(base_path)
    for name, figures in results.get("encode", {}).items():
        path = scratch / f"vectors-{name}.npy"
        if path.is_file():
            cosines = (np.load(path) * base).sum(axis=1)
            figures["cosine_mean"], figures["cosine_min"] = float(cosines.mean()), float(cosines.min())


def report(results: dict) -> str:
    m, s = results["machine"], results["settings"]
    encode, trained = results.get("encode", {}), results.get("train", {})
    lines = [f"CPU: {m['cpu']} (family {m['family']}, model {m['model']}), {m['cores']} cores, {s['threads']} threads; "
             f"flags: {' '.join(m['flags']) or 'none'}; usable: {', '.join(m['usable']) or 'none'}; GPU: {', '.join(m['gpu']) or 'none'}; "
             f"torch {m['torch']}",
             f"auto encodes with {m['auto_encoding']['backend']} ({m['auto_encoding']['reason']}); "
             f"auto trains in {m['auto_training']['precision']} ({m['auto_training']['reason']})", ""]  # fmt: skip
    base = encode.get("sentence-transformers")
    if base:
        lines += [f"Encoding {base['docs']} SciFact abstracts ({base['tokens']} tokens), nDCG@10 on {base['queries']} test queries:", "",
                  "| path | prepare CPU s | encode CPU s | encode wall s | CPU x | wall x | GFLOP per CPU s | peak MB "
                  "| cosine to fp32 (mean / min) | nDCG@10 | dnDCG@10 |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for name, f in encode.items():
            mark = " **(auto)**" if name == m["auto_encoding"]["backend"] else ""
            cosine = f"{f['cosine_mean']:.4f} / {f['cosine_min']:.4f}" if "cosine_mean" in f else "-"
            lines.append(f"| `{name}`{mark} | {f['prepare_cpu_s']:.1f} | {f['encode_cpu_s']:.1f} | {f['encode_wall_s']:.1f} "
                         f"| {base['encode_cpu_s'] / f['encode_cpu_s']:.2f}x | {base['encode_wall_s'] / f['encode_wall_s']:.2f}x "
                         f"| {f['gflop_per_cpu_s']:.0f} | {f['peak_rss_mb']:.0f} | {cosine} | {100 * f['ndcg@10']:.2f} "
                         f"| {100 * (f['ndcg@10'] - base['ndcg@10']):+.2f} |")  # fmt: skip
    fp32 = trained.get("fp32")
    if fp32:
        lines += ["", f"Training {fp32['steps']} steps of {s['batch_size']} rows ({fp32['rows']} rows, {MINED_NEGATIVES} BM25 negatives "
                      f"each); nDCG@10 of the trained model encoded with {fp32['eval_encoding']['backend']}:", "",
                  "| precision | steps | s/step (wall) | CPU s/step | step CPU x | step wall x | loss | peak MB | nDCG@10 | dnDCG@10 |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for name, f in trained.items():
            mark = " **(auto)**" if name == m["auto_training"]["precision"] else ""
            lines.append(f"| {name}{mark} | {f['steps']} | {f['step_wall_s']:.2f} | {f['step_cpu_s']:.2f} "
                         f"| {fp32['step_cpu_s'] / f['step_cpu_s']:.2f}x | {fp32['step_wall_s'] / f['step_wall_s']:.2f}x "
                         f"| {f['training_loss']:.4f} | {f['peak_rss_mb']:.0f} | {100 * f['ndcg@10']:.2f} "
                         f"| {100 * (f['ndcg@10'] - fp32['ndcg@10']):+.2f} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
