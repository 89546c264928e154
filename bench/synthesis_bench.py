"""Synthesis cost and quality of two versions of syneg, side by side in one run, on the same SciFact pairs.

The question it answers: what does an accepted, length-matched negative cost in CPU seconds with the
current defaults, against an accepted negative with the defaults of an earlier revision (``--baseline``,
by default the last commit before the length-matched negatives)? Both versions run at the same time,
each in its own process with one llama.cpp thread, the embedded model, the SciFact attributes, K = 1,
up to 2 revision rounds and a fresh LLM cache, so the machine's load falls on both alike. CPU seconds
(user + system, from ``resource.getrusage``) are what is compared: on a shared machine wall time
measures the neighbours.

For each version it reports: pairs, candidates, accepted, acceptance, accepted negatives whose word
count is within 0.7-1.3 times their positive's ("length-matched"), CPU seconds per accepted and per
length-matched negative, mean words and mean length ratio of the accepted, completion tokens per CPU
second, the llama.cpp build in use (``llama_print_system_info``: the instruction sets it runs), and how well
the words they use tell the accepted negatives from their own positives (a bag-of-words probe: the
register that gives LLM text away).

Usage::

    python bench/synthesis_bench.py --data ../shared/datasets/scifact --pairs 50 --out bench/out/synthesis-compare
    # two generators on the current tree instead of two revisions
    python bench/synthesis_bench.py --models qwen2.5-0.5b qwen2.5-1.5b --pairs 20 --out bench/out/model-compare
    # the reflection's JSON under a grammar against the same JSON parsed from free text
    python bench/synthesis_bench.py --grammar-compare --pairs 20 --out bench/out/grammar-compare
    # the default sampling temperature (0.7) against another
    python bench/synthesis_bench.py --compare-temperature 0.3 --pairs 20 --out bench/out/temperature-compare
    # one aspect per reflection (the default) against three, the rounds after a rejected passage writing the spares;
    # --with-baseline runs the earlier revision beside them (the issue's cost goal, three workers at once)
    python bench/synthesis_bench.py --compare-aspects 3 --pairs 50 --out bench/out/aspects-compare
    python bench/synthesis_bench.py --compare-aspects 3 --with-baseline --pairs 50 --out bench/out/aspects-compare
    # the default checks against overrides (here: every reflection written out, as before the title check)
    python bench/synthesis_bench.py --compare-checks max_title_ratio=100 --pairs 20 --out bench/out/title-compare
    # the shipped prompts against a folder of overrides (e.g. bench/prompts/register)
    python bench/synthesis_bench.py --prompts bench/prompts/register --pairs 20 --out bench/out/prompt-compare
    python bench/synthesis_bench.py --throughput-only --llama-server bench/out/llama-server/llama-server

Each version writes into ``--out/<name>/`` as it goes (negatives, cache, CPU seconds so far) and resumes
where it stopped when rerun with the same ``--out``; ``--max-minutes`` stops starting new pairs after
that long. ``--throughput-only`` measures tokens/s in-process for the best llama.cpp CPU level and each
of ``--levels`` (prompt and decoding, per CPU second, one process per level), on ``llama_cpp.server``
and on llama.cpp's C++ ``llama-server`` (continuous batching over ``--parallel`` slots;
``bench/build_llama_server.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import importlib.util

import httpx

from syneg.data import load_beir, read_training_set
from syneg.llm import ChatRequest, LlamaCppBackend, OpenAICompatibleBackend, make_client
from syneg.llm.models import resolve_gguf
from syneg.synth import AttributeSet, CheckConfig, Synthesizer, pairs_from_beir
from syneg.synth.prompts import PromptTemplates


BASELINE = "ab832ee"  # the last commit before length-matched negatives (issue 17)
LENGTH_BAND = (0.7, 1.3)
CURRENT_SRC = Path(__file__).resolve().parents[1] / "src"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_cpu_level() -> dict:
    """Load the llama.cpp CPU level with the current tree's loader, whichever syneg the worker imports: an
    earlier revision predates the loader, and the wheel's levels must be loaded before any model."""
    spec = importlib.util.spec_from_file_location("_syneg_cpu_backend", CURRENT_SRC / "syneg/llm/cpu_backend.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    backend = module.load_cpu_backend()
    return {"level": backend.level, "features": list(backend.features)}


def worker(args: argparse.Namespace) -> None:
    """Synthesize with whatever syneg is first on the path, two pairs at a time, adding up CPU seconds."""
    from syneg.synth.checks import words

    level = load_cpu_level()

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    progress_path = out / "progress.json"
    progress = json.loads(progress_path.read_text()) if progress_path.is_file() else {"cpu_seconds": 0.0, "wall_seconds": 0.0}
    dataset = load_beir(args.data, split=args.split)
    pairs = pairs_from_beir(dataset, limit=args.pairs)
    client = make_client("llama.cpp", args.model, cache=out / "llm-cache.sqlite", n_threads=1, grammar=not args.no_grammar)
    overrides = {key: float(value) for key, value in (item.split("=", 1) for item in args.checks)}
    templates = PromptTemplates(args.prompts) if args.prompts else None
    examples = {}
    if templates is not None:  # only the current tree is given prompts; a write template may quote $example
        from syneg.synth.pairs import style_examples_for

        examples = {"style_examples": style_examples_for(templates, dataset)}
    synthesizer = Synthesizer(client, attributes=AttributeSet.from_spec("scifact"), negatives_per_pair=1, max_rounds=2,
                              seed=0, templates=templates, checks=CheckConfig(**overrides), **examples,
                              **({"temperature": args.temperature} if args.temperature is not None else {}),
                              **({"aspects_per_reflection": args.aspects} if args.aspects is not None else {}))
    output = out / "negatives.jsonl"
    start = time.perf_counter()
    for begin in range(0, len(pairs), 2):
        if args.max_minutes and time.perf_counter() - start > 60 * args.max_minutes:
            break
        before, cpu, wall = synthesizer.report(), cpu_seconds(), time.perf_counter()
        after = synthesizer.run(pairs[begin : begin + 2], output, show_progress=False)  # counts since the process began
        if after["pairs"] > before["pairs"]:  # pairs done in an earlier sitting cost nothing now
            progress["cpu_seconds"] += cpu_seconds() - cpu
            progress["wall_seconds"] += time.perf_counter() - wall
            for key in ("candidates", "requests", "completion_tokens", "prompt_tokens"):
                progress[key] = progress.get(key, 0) + after[key] - before[key]
            progress_path.write_text(json.dumps(progress, indent=2))
        print(f"  {out.name}: {begin + 2} pairs, {progress['cpu_seconds']:.0f} CPU s", file=sys.stderr, flush=True)
    asyncio.run(client.aclose())
    positives = {(p.query_id, p.pos_id): len(words(p.positive)) for p in pairs}
    instances = list(read_training_set(output))
    ratios = [len(words(n.text)) / positives[(i.query_id, i.pos_ids[0])] for i in instances for n in i.negatives]
    accepted = len(ratios)
    matched = sum(LENGTH_BAND[0] <= r <= LENGTH_BAND[1] for r in ratios)
    lengths = [len(words(n.text)) for i in instances for n in i.negatives]
    cpu = progress["cpu_seconds"]
    register = register_probe([n.text for i in instances for n in i.negatives],
                              [i.pos[0] for i in instances for _ in i.negatives])
    summary = {
        "syneg": str(Path(sys.modules["syneg"].__file__).parent),
        "model": args.model,
        "grammar": not args.no_grammar,
        "checks": args.checks,
        "temperature": args.temperature,
        "aspects_per_reflection": args.aspects,
        "llama_cpp_level": level["level"],
        "llama_cpp_features": level["features"],
        "pairs": len(instances),
        "candidates": progress.get("candidates", 0),
        "accepted": accepted,
        "acceptance": round(accepted / progress["candidates"], 3) if progress.get("candidates") else None,
        "length_matched": matched,
        "cpu_seconds": round(cpu, 1),
        "wall_seconds": round(progress["wall_seconds"], 1),
        "cpu_seconds_per_accepted": round(cpu / accepted, 1) if accepted else None,
        "cpu_seconds_per_length_matched": round(cpu / matched, 1) if matched else None,
        "mean_words_accepted": round(sum(lengths) / accepted, 1) if accepted else None,
        "mean_length_ratio_accepted": round(sum(ratios) / accepted, 3) if accepted else None,
        "completion_tokens": progress.get("completion_tokens", 0),
        "completion_tokens_per_cpu_second": round(progress.get("completion_tokens", 0) / cpu, 2) if cpu else None,
        "words_auc_against_positives": register,
        "copies_a_corpus_text": copied_from_corpus([n.text for i in instances for n in i.negatives], dataset),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))


COPY_RUN_WORDS = 8


def copied_from_corpus(negatives: list[str], dataset) -> int | None:
    """Accepted negatives that share a run of ``COPY_RUN_WORDS`` words with a text of the style-example pool
    (``syneg.synth.pairs.style_examples``): what a ``$example`` prompt's model copied rather than imitated.
    For a version whose prompts show no example the count is the chance level of the same measure; None for
    a revision that predates the pool."""
    try:
        from syneg.synth.checks import ngrams, words
        from syneg.synth.pairs import style_examples
    except ImportError:
        return None

    pool = {gram for text in style_examples(dataset) for gram in ngrams(words(text), COPY_RUN_WORDS)}
    return sum(bool(pool.intersection(ngrams(words(text), COPY_RUN_WORDS))) for text in negatives)


def register_probe(negatives: list[str], positives: list[str]) -> float | None:
    """How well the words a text uses tell the accepted negatives from their own positives (real abstracts):
    a bag-of-words probe, cross-validated by pair (each negative's positive in the same fold). 0.5: the
    negatives read like the corpus; 1.0: their register gives them away."""
    if len(negatives) < 6:
        return None
    import numpy as np
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold, cross_val_predict

    try:
        from syneg.diagnostics import words_probe
    except ImportError:  # a revision that predates the probe
        return None

    texts = np.array(negatives + positives, dtype=object)
    labels = np.array([1] * len(negatives) + [0] * len(positives))
    groups = np.array(list(range(len(negatives))) * 2)
    scores = cross_val_predict(words_probe(), texts, labels, groups=groups, cv=GroupKFold(n_splits=5), method="predict_proba")[:, 1]
    return round(float(roc_auc_score(labels, scores)), 3)


def baseline_source(revision: str, folder: Path) -> Path:
    """The ``src`` tree of an earlier revision, extracted once (``git archive``)."""
    target = folder / f"src-{revision}"
    if not (target / "src" / "syneg").is_dir():
        archive = subprocess.run(["git", "archive", revision, "src"], check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
    return target / "src"


def compare(args: argparse.Namespace) -> dict:
    """Run the baseline revision and the current tree side by side, then put their summaries together."""
    # Each version: the syneg source its worker imports, and what its worker is told beyond the shared options.
    model = ["--model", args.model]
    if args.models:  # one tree, two generators
        versions = {f"current-{name}": (CURRENT_SRC, ["--model", name]) for name in args.models}
    elif args.grammar_compare:  # one tree, JSON answers under a grammar against the same parsed from free text
        versions = {"current": (CURRENT_SRC, model), "current-no-grammar": (CURRENT_SRC, [*model, "--no-grammar"])}
    elif args.compare_temperature is not None:  # one tree, the default sampling temperature against another
        versions = {"current": (CURRENT_SRC, model),
                    f"current-temperature{args.compare_temperature:g}": (
                        CURRENT_SRC, [*model, "--temperature", str(args.compare_temperature)])}
    elif args.compare_aspects is not None:  # one tree, one aspect per reflection against several
        versions = {"current": (CURRENT_SRC, model),
                    f"current-aspects{args.compare_aspects}": (CURRENT_SRC, [*model, "--aspects", str(args.compare_aspects)])}
    elif args.compare_checks:  # one tree, the default checks against threshold overrides
        name = "current-" + "-".join(item.replace("=", "") for item in args.compare_checks)
        versions = {"current": (CURRENT_SRC, model),
                    name: (CURRENT_SRC, model + [arg for item in args.compare_checks for arg in ("--checks", item)])}
    elif args.prompts:  # one tree, the shipped prompts against a folder of overrides
        versions = {"current": (CURRENT_SRC, model),
                    f"prompts-{args.prompts.name}": (CURRENT_SRC, [*model, "--prompts", str(args.prompts.resolve())])}
    else:
        versions = {"current": (CURRENT_SRC, model)}
    if args.with_baseline or len(versions) == 1:  # the earlier revision beside the current tree's versions
        versions = {f"baseline-{args.baseline}": (baseline_source(args.baseline, args.out), model)} | versions
    processes = {}
    for name, (source, worker_args) in versions.items():
        command = [sys.executable, __file__, "--worker", "--data", str(args.data), "--split", args.split,
                   "--pairs", str(args.pairs), "--out", str(args.out / name), *worker_args]
        if args.max_minutes:
            command += ["--max-minutes", str(args.max_minutes)]
        # The worker imports syneg from ``source``; one thread each, for torch as for llama.cpp.
        env = os.environ | {"PYTHONPATH": str(source), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        processes[name] = subprocess.Popen(command, env=env)
    failed = [name for name, process in processes.items() if process.wait() != 0]
    if failed:
        sys.exit(f"synthesis_bench: the {', '.join(failed)} worker failed")
    results = {"command": " ".join(sys.argv), "cpu": cpu_model(), "pairs": args.pairs,
               "versions": {name: json.loads((args.out / name / "summary.json").read_text()) for name in versions}}
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def print_table(results: dict) -> None:
    rows = [("pairs", "pairs"), ("candidates", "candidates"), ("accepted", "accepted"), ("acceptance", "acceptance"),
            ("length-matched (0.7-1.3x positive)", "length_matched"), ("CPU s", "cpu_seconds"),
            ("CPU s per accepted", "cpu_seconds_per_accepted"),
            ("CPU s per length-matched", "cpu_seconds_per_length_matched"), ("mean words, accepted", "mean_words_accepted"),
            ("mean length ratio, accepted", "mean_length_ratio_accepted"),
            ("completion tokens per CPU s", "completion_tokens_per_cpu_second"),
            ("words probe AUC, accepted against their positives", "words_auc_against_positives"),
            (f"accepted sharing a {COPY_RUN_WORDS}-word run with a corpus text of the example pool", "copies_a_corpus_text")]
    names = list(results["versions"])
    print(f"\nCPU: {results['cpu']}; {results['pairs']} SciFact train pairs\n")
    print("| measure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, key in rows:
        print(f"| {label} | " + " | ".join(str(results["versions"][n].get(key)) for n in names) + " |")
    for name in names:
        version = results["versions"][name]
        print(f"\n{name}: llama.cpp CPU level {version['llama_cpp_level']} ({', '.join(version['llama_cpp_features'])})")


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
    command = [sys.executable, "-m", "syneg.llm.llama_server", "--model", str(resolve_gguf(args.model)), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", "2048", "--n_threads", str(args.threads or 1)]
    return measure_server(command, port, args.model, in_flight)


def cpp_server_throughput(args: argparse.Namespace, in_flight: int) -> dict:
    """llama.cpp's C++ ``llama-server`` with ``in_flight`` slots: continuous batching of the sequences."""
    port = free_port()
    command = [str(args.llama_server), "-m", str(resolve_gguf(args.model)), "--host", "127.0.0.1", "--port", str(port),
               "-c", str(2048 * in_flight), "--parallel", str(in_flight), "--cont-batching", "-t", str(args.threads or 1)]
    return measure_server(command, port, args.model, in_flight)


# About 450 prompt tokens: the size of a reflection prompt (instructions, attributes, a SciFact abstract).
_LONG_PROMPT = "Summarise the following abstract in one sentence.\n\n" + " ".join(
    ["Protein folding is the physical process by which a polypeptide chain acquires its native three-dimensional "
     "structure, a conformation that is usually biologically functional, in an expeditious and reproducible manner."] * 14)


def in_process_throughput(args: argparse.Namespace) -> dict:
    """Prompt and decoding tokens per CPU second in this process, on the CPU level loaded
    (``$SYNEG_LLAMA_CPU`` or the best); the median of three measurements each."""
    from syneg.llm.cpu_backend import load_cpu_backend

    backend = LlamaCppBackend(args.model, n_threads=args.threads)
    backend.complete_sync(ChatRequest.chat(None, "Say hello.", max_tokens=8, seed=0))  # warm-up, as for the servers
    decode_rates, prompt_rates = [], []
    for variant in range(3):  # a different first token each time, so no prefix of the last prompt is reused
        cpu = cpu_seconds()
        answer = backend.complete_sync(ChatRequest.chat(None, f"({variant}) {_LONG_PROMPT}", max_tokens=1, seed=0))
        prompt_rates.append(answer.prompt_tokens / (cpu_seconds() - cpu))
        write = ChatRequest.chat(None, f"({variant}) Write a short encyclopedia paragraph about protein folding.",
                                 max_tokens=64, seed=0)
        cpu = cpu_seconds()
        answer = backend.complete_sync(write)
        decode_rates.append(answer.completion_tokens / (cpu_seconds() - cpu))
    backend.llama.close()
    level = load_cpu_backend()
    return {"level": level.level, "features": list(level.features),
            "prompt_tokens_per_cpu_s": round(sorted(prompt_rates)[1], 1),
            "decode_tokens_per_cpu_s": round(sorted(decode_rates)[1], 1)}


def levels_throughput(args: argparse.Namespace) -> dict:
    """In-process tokens/s for each CPU level in ``--levels`` (the best first), one child process each, in turn."""
    results = {}
    for level in ["best", *args.levels]:
        env = {k: v for k, v in os.environ.items() if k != "SYNEG_LLAMA_CPU"} | ({} if level == "best" else {"SYNEG_LLAMA_CPU": level})
        command = [sys.executable, __file__, "--level-worker", "--model", args.model, "--out", str(args.out)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        completed = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        results[level] = json.loads(completed.stdout)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--split", default="train")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--model", default="qwen2.5-0.5b")
    parser.add_argument("--baseline", default=BASELINE, help="The git revision to compare the current tree with")
    parser.add_argument("--prompts", type=Path, help="Compare the shipped prompts with this folder of overrides, on the current tree")
    parser.add_argument("--models", nargs=2, metavar="MODEL",
                        help="Compare two generators on the current tree instead of two revisions (e.g. qwen2.5-0.5b qwen2.5-1.5b)")
    parser.add_argument("--grammar-compare", action="store_true",
                        help="Compare JSON answers (the reflection) under a grammar with the same parsed from free text, on the current tree")
    parser.add_argument("--no-grammar", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compare-checks", nargs="+", metavar="KEY=VALUE",
                        help="Compare the default checks with these CheckConfig overrides (e.g. max_title_ratio=100), on the current tree")
    parser.add_argument("--checks", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--compare-temperature", type=float, default=None,
                        help="Compare the default sampling temperature with this one (reflection and passage), on the current tree")
    parser.add_argument("--temperature", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--compare-aspects", type=int, default=None, metavar="N",
                        help="Compare the default aspects per reflection with N, on the current tree")
    parser.add_argument("--aspects", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--with-baseline", action="store_true",
                        help="Run the --baseline revision beside a comparison of the current tree's versions (three at once)")
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads of the throughput measurement")
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--llama-server", type=Path, default=None,
                        help="llama.cpp's C++ llama-server (bench/build_llama_server.sh) for the continuous-batching figures")
    parser.add_argument("--throughput-only", action="store_true", help="Measure tokens/s, then stop")
    parser.add_argument("--levels", nargs="*", default=["haswell"],
                        help="llama.cpp CPU levels whose in-process tokens/s --throughput-only measures beside the best one")
    parser.add_argument("--level-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("bench/out/synthesis-compare"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        worker(args)
        return
    if args.level_worker:
        print(json.dumps(in_process_throughput(args)))
        return
    if args.throughput_only:
        results: dict = {"command": " ".join(sys.argv), "model": args.model, "cpu": cpu_model()}
        results["in_process"] = levels_throughput(args)
        results["server"] = server_throughput(args, args.in_flight)
        if args.llama_server:
            results["cpp_server"] = cpp_server_throughput(args, args.in_flight)
        (args.out / "throughput.json").write_text(json.dumps(results, indent=2))
        print(json.dumps(results, indent=2))
        return
    print_table(compare(args))


if __name__ == "__main__":
    main()
