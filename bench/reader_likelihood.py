"""Can a larger model's likelihood tell broken negatives from hard ones? Score audited negatives, no generation.

Broken negatives mangle the pair's key words ("glomeroma" for glioma) or gloss them wrongly ("CRISPR
(Chromosome Replication System)"); the writer (Qwen 0.5B) made them, so its own likelihood is no judge. A
reader model (Qwen 1.5B by default) reads the positive, then the negative, and the log-probability of each
of the negative's tokens is recorded. No YES/NO is asked of it. The measure fixed before the run: the share
of the negative's tokens below ``--surprise`` (natural log; -8 is about 1 in 3,000), as ROC AUC of broken
against hard; the mean log-probability beside it. Each text's token log-probabilities are appended to ``--out``
as it is read, with the model and token limits, and a rerun under the same settings reads only what is
missing. From the repository root (BENCHMARKS.md, "A reader's likelihood"):

    python bench/reader_likelihood.py --audits aspects-compare aspects-compare-31-50 scifact-second-pass \\
        --out bench/out/reader-likelihood.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from text_check_strikes import labelled  # noqa: E402

AUDIT_DIR = Path(__file__).parent / "audit"
# What the reader reads before the negative: the positive between these two.
BEFORE_POSITIVE, AFTER_POSITIVE = "A scientific abstract:\n", "\n\nAnother abstract on a related subject:\n"


def load_reader(model: str, n_ctx: int, threads: int):
    """A llama.cpp model at the CPU level syneg picks, keeping every position's logits."""
    from syneg.llm.cpu_backend import load_cpu_backend
    from syneg.llm.models import resolve_gguf

    load_cpu_backend()
    from llama_cpp import Llama

    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        return Llama(model_path=str(resolve_gguf(model)), n_ctx=n_ctx, n_threads=threads, logits_all=True, verbose=False)


def token_log_probs(llm, positive: str, negative: str, context_tokens: int, negative_tokens: int) -> np.ndarray:
    """The reader's log-probability of each of the negative's first tokens, after the positive's first."""
    positive_ids = llm.tokenize(positive.encode(), add_bos=False)[:context_tokens]
    context = llm.tokenize(BEFORE_POSITIVE.encode()) + positive_ids + llm.tokenize(AFTER_POSITIVE.encode(), add_bos=False)
    written = llm.tokenize(negative.encode(), add_bos=False)[:negative_tokens]
    tokens = context + written
    llm.reset()
    llm.eval(tokens)
    # The logits at position i predict token i + 1: those from the context's last token on predict the negative.
    rows = np.asarray(llm.scores[len(context) - 1 : len(tokens) - 1], dtype=np.float64)
    top = rows.max(axis=1)
    log_norm = top + np.log(np.exp(rows - top[:, None]).sum(axis=1))
    return rows[np.arange(len(written)), written] - log_norm


def auc(positives: list[float], negatives: list[float]) -> float:
    """P(a score of ``positives`` > one of ``negatives``), ties counting half: ROC AUC, as the other benches."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([1] * len(positives) + [0] * len(negatives), [*positives, *negatives]))


def read_rows(path: Path) -> list[dict]:
    """The scored rows of ``path`` (none when absent); a line torn by a kill is dropped and read again."""
    rows = []
    for line in path.open() if path.exists() else ():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audits", nargs="+", required=True, help="audit names in bench/audit (NAME-labels.jsonl)")
    parser.add_argument("--labels", nargs="+", default=["broken", "hard"])
    parser.add_argument("--model", default="qwen2.5-1.5b")
    parser.add_argument("--context-tokens", type=int, default=160)
    parser.add_argument("--negative-tokens", type=int, default=300)
    parser.add_argument("--surprise", type=float, default=-8.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    texts = [(audit, record, drawn) for audit in args.audits
             for record, drawn in labelled(AUDIT_DIR / f"{audit}-labels.jsonl") if record["label"] in args.labels]
    settings = {"model": args.model, "context_tokens": args.context_tokens, "negative_tokens": args.negative_tokens}
    scored = [r for r in read_rows(args.out) if r.get("settings") == settings]
    done = {(r["audit"], r["id"]) for r in scored}
    todo = [t for t in texts if (t[0], t[1]["id"]) not in done]
    if todo:
        llm = load_reader(args.model, args.context_tokens + args.negative_tokens + 32, args.threads)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        torn = args.out.exists() and args.out.stat().st_size and not args.out.read_bytes().endswith(b"\n")
        with args.out.open("a") as out:
            if torn:  # end the torn line, so the next row starts a line of its own
                out.write("\n")
            for index, (audit, record, drawn) in enumerate(todo, 1):
                started = time.process_time()
                log_probs = token_log_probs(llm, drawn["positive"], drawn["negative"], args.context_tokens,
                                            args.negative_tokens)
                row = {"audit": audit, "id": record["id"], "label": record["label"], "settings": settings,
                       "log_probs": [round(float(x), 3) for x in log_probs],
                       "cpu_seconds": round(time.process_time() - started, 1)}
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(f"{index}/{len(todo)} {audit} {record['label']}: mean {np.mean(log_probs):.2f}", file=sys.stderr)

    rows = [r for r in read_rows(args.out) if r.get("settings") == settings and r["audit"] in args.audits]
    for row in rows:  # the measures, from the recorded log-probabilities (so --surprise needs no new run)
        log_probs = np.asarray(row["log_probs"])
        row["surprising"], row["mean"] = float(np.mean(log_probs < args.surprise)), float(np.mean(log_probs))
    broken = [r for r in rows if r["label"] == "broken"]
    hard = [r for r in rows if r["label"] == "hard"]
    summary = {
        "texts": {"broken": len(broken), "hard": len(hard)},
        "auc_surprising_share": round(auc([r["surprising"] for r in broken], [r["surprising"] for r in hard]), 3),
        "auc_mean_surprise": round(auc([-r["mean"] for r in broken], [-r["mean"] for r in hard]), 3),
        "median_surprising_share": {"broken": float(np.median([r["surprising"] for r in broken] or [0])),
                                    "hard": float(np.median([r["surprising"] for r in hard] or [0]))},
        "cpu_seconds_per_text": round(float(np.mean([r["cpu_seconds"] for r in rows] or [0])), 1),
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
