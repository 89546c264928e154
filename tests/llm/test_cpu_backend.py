"""The llama.cpp CPU level chosen at run time (:mod:`syneg.llm.cpu_backend`), on the installed wheel and
a real model (SmolLM2-135M). Each case runs in a child process: a process loads one level, once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from syneg import system
from syneg.llm.cpu_backend import LEVEL_ENV, shipped_levels

# Load the level (or the forced one), generate a few tokens with the real model, print what happened.
_CHILD = """
import json, sys
from syneg.llm.base import LLMError
from syneg.llm.cpu_backend import load_cpu_backend
try:
    backend = load_cpu_backend()
except (LLMError, ValueError) as error:
    print(json.dumps({"error": str(error)})); sys.exit(0)
from llama_cpp import Llama
from syneg.llm.models import smollm2_path
llm = Llama(model_path=str(smollm2_path()), n_ctx=256, n_threads=1, verbose=False)
text = llm("The capital of France is", max_tokens=8, temperature=0.0)["choices"][0]["text"]
print(json.dumps({"level": backend.level, "features": backend.features, "text": text}))
"""

pytestmark = pytest.mark.skipif(not shipped_levels(), reason="llama-cpp-python was built with one CPU backend linked in")


def run_child(level: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != LEVEL_ENV} | ({LEVEL_ENV: level} if level else {})
    completed = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env, timeout=300, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def expected_level() -> str | None:
    """The level ggml should pick on the CPUs this project has met (None: some other CPU)."""
    usable, flags = system.usable_instruction_sets(), system.cpu_flags()
    if {"avx512", "avx512_vnni", "avx512_bf16"} <= usable and "avx512vbmi" in flags:
        return "zen4"  # the AVX-512 EPYC, and the AMX Xeon (AMX is not shipped)
    if "avx2" in usable and "avx512" not in usable:
        return "alderlake" if "avx_vnni" in usable else "haswell"  # the AVX2-only EPYC
    return None


def test_the_wheel_ships_every_level_but_amx():
    levels = shipped_levels()
    assert {"x64", "haswell", "skylakex", "icelake", "zen4"} <= set(levels)
    assert "sapphirerapids" not in levels


def test_the_best_level_for_this_cpu_loads_and_generates():
    result = run_child()
    assert "error" not in result, result
    assert result["level"] in shipped_levels()
    if (expected := expected_level()) is not None:
        assert result["level"] == expected
    if "avx2" in system.usable_instruction_sets():
        assert "AVX2" in result["features"]
    assert len(result["text"].split()) >= 2


@pytest.mark.skipif("avx2" not in system.usable_instruction_sets(), reason="needs AVX2")
def test_a_forced_level_loads_that_level():
    result = run_child("haswell")
    assert result["level"] == "haswell" and "AVX2" in result["features"] and "AVX512" not in result["features"]
    assert len(result["text"].split()) >= 2


def test_a_level_not_shipped_is_refused_with_the_shipped_ones():
    result = run_child("sapphirerapids")
    assert result["error"].startswith(f"{LEVEL_ENV}=sapphirerapids is not shipped; shipped levels: ")
    assert "zen4" in result["error"]


@pytest.mark.skipif("avx512" in system.usable_instruction_sets(), reason="this CPU runs AVX-512")
def test_a_level_this_cpu_cannot_run_is_refused():
    result = run_child("zen4")
    assert "this CPU lacks an instruction set" in result["error"]


def test_the_cli_names_a_bad_level_in_one_line_with_exit_code_2(tmp_path, scifact_path):
    env = os.environ | {LEVEL_ENV: "bogus"}
    completed = subprocess.run([sys.executable, "-m", "syneg", "synthesize", str(scifact_path), "--split", "train", "--limit", "1",
                                "--output", str(tmp_path / "negatives.jsonl")], capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [f"error: {LEVEL_ENV}=bogus is not shipped; shipped levels: {', '.join(shipped_levels())}"]
    assert not (tmp_path / "negatives.jsonl").exists()
