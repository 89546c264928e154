"""``syneg doctor`` and :mod:`syneg.system`: what the machine offers, what is usable, what syneg uses."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import pytest

from syneg import system
from syneg.llm.models import QWEN_SHA256

SYNEG = [sys.executable, "-m", "syneg"]


@pytest.fixture(scope="module")
def diagnosis() -> dict:
    completed = subprocess.run([*SYNEG, "doctor", "--json"], capture_output=True, text=True, timeout=600, check=True)
    return json.loads(completed.stdout)


def test_doctor_reports_the_cpu_and_what_is_usable(diagnosis):
    statuses = {s["key"]: s for s in diagnosis["cpu"]["instruction_sets"]}
    assert set(statuses) == {"avx2", "avx512", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx"}
    flags = system.cpu_flags()
    for key, status in statuses.items():
        assert status["offered"] == any(flag in flags for flag in next(s.flags for s in system.INSTRUCTION_SETS if s.key == key))
        assert status["usable"] in (True, False, None) and (status["offered"] or status["usable"] is False)
    if "avx2" in flags:
        assert statuses["avx2"]["usable"] is True
    assert diagnosis["cpu"]["model"] == system.cpu_model() and diagnosis["cpu"]["cores"] >= 1


def test_doctor_reports_backends_models_and_caches(diagnosis, isolated_cache):
    # The auto choice of this machine, as encoding and training will make it (tests/test_system.py fakes others).
    assert diagnosis["encoding"] == asdict(system.encoding_backend("auto")) and diagnosis["encoding"]["reason"].startswith("auto: ")
    assert diagnosis["training"] == asdict(system.training_precision("auto"))
    llama = diagnosis["llama_cpp"]
    assert llama["installed"] and llama["version"] and "AVX2" in llama["uses"] and llama["unusable"] == []
    assert llama["level"] in llama["levels"] and "sapphirerapids" not in llama["levels"]
    models = {m["name"]: m for m in diagnosis["models"]}
    assert models["qwen2.5-0.5b"]["sha256"] == QWEN_SHA256 and models["qwen2.5-0.5b"]["verified"] is True
    for name in ("smollm2-135m", "all-MiniLM-L6-v2"):
        assert len(models[name]["sha256"]) == 64 and models[name]["bytes"] > 1_000_000
    assert diagnosis["caches"]["root"] == str(isolated_cache)
    assert diagnosis["caches"]["llm"]["path"] == str(isolated_cache / "llm-cache.sqlite")
    assert {"embeddings", "onnx", "llm", "models", "logs"} <= set(diagnosis["caches"])
    assert "ray" in diagnosis


def test_doctor_prints_tables():
    completed = subprocess.run([*SYNEG, "doctor"], capture_output=True, text=True, timeout=600, check=True)
    for title in ("CPU: ", "What syneg uses", "Embedded models", "Caches under"):
        assert title in completed.stdout
    assert system.encoding_backend("auto").backend in completed.stdout.split("encoding")[1].split("\n")[0]
    assert "pinned: ok" in completed.stdout


def test_listed_is_not_usable_and_a_fault_never_crashes_the_caller():
    # ud2 is an illegal instruction everywhere: the probe's child dies, the caller gets "not usable".
    faulting = system.InstructionSet("ud2", "UD2", ("avx2",), "0f0bc3")
    usable, detail = system._try(faulting)
    assert usable is False and "illegal instruction" in detail
    # AMX asks the kernel for its tile state first; whatever the answer, this process carries on.
    amx = next(s for s in system.INSTRUCTION_SETS if s.key == "amx")
    usable, detail = system._try(amx)
    assert usable in (True, False, None) and (usable or detail)


def test_instruction_sets_read_cpuinfo_and_try_what_it_lists(monkeypatch):
    cpuinfo = "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse2 avx2 avx512f amx_tile amx_int8\n"
    real_flags = system.cpu_flags()
    monkeypatch.setattr(system, "_cpuinfo", lambda: cpuinfo)
    system.instruction_sets.cache_clear()
    try:
        statuses = {s.key: s for s in system.instruction_sets()}
    finally:
        system.instruction_sets.cache_clear()
    assert system.cpu_model() == "Test CPU 9000"
    assert [k for k, s in statuses.items() if s.offered] == ["avx2", "avx512", "amx"]
    assert "amx_int8" in statuses["amx"].detail
    if "avx512f" not in real_flags:  # listed (by the fake cpuinfo), but this CPU faults on it
        assert statuses["avx512"].usable is False
    if "amx_tile" not in real_flags:
        assert statuses["amx"].usable is False
