"""What this machine offers, and what syneg will use on it: CPU instruction sets, GPU, encoding backend,
the llama.cpp build.

``syneg doctor`` reports all of it; encoding and training ask the same questions
(:func:`encoding_backend`, :func:`training_precision`) to choose their fast path at run time.

An instruction set the CPU lists in ``/proc/cpuinfo`` is not necessarily usable: a hypervisor or
sandbox may not save its registers (AVX-512 in some VMs), and AMX needs the kernel to grant the
process its tile state (``arch_prctl(ARCH_REQ_XCOMP_PERM)``), which a sandbox may refuse; a llama.cpp
build that used AMX crashed on such a machine. So each listed set is tried: a child Python process
runs this file, which executes one instruction of the set and exits. An illegal instruction kills the
child (SIGILL), never the caller.

Example::

    >>> choice = encoding_backend("torch")  # a request is what runs
    >>> choice.backend, choice.precision, choice.reason
    ('torch', 'fp32', 'requested (--backend torch)')
    >>> encoding_backend().backend in ("torch", "torch-bf16", "torch-fp16", "onnx-int8")  # auto: this machine's fastest
    True
    >>> "avx2" in usable_instruction_sets() or "avx2" not in cpu_flags()
    True
"""

from __future__ import annotations

import functools
import os
import platform
import re
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

# Exit codes of the probe child besides 0 (usable) and death by SIGILL (not usable).
_KERNEL_REFUSED = 3
_NO_EXECUTABLE_MEMORY = 4

# Linux x86-64: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) asks for the AMX tile state.
_SYS_ARCH_PRCTL = 158
_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18

_RETURN = "c5f877c3"  # vzeroupper; ret


@dataclass(frozen=True)
class InstructionSet:
    """An instruction set that matters for encoding or llama.cpp, and how to try it.

    ``flags`` are the ``/proc/cpuinfo`` flags that list it; ``code`` is machine code that executes one of
    its instructions on registers only and returns (AMX's takes a tile configuration in ``rdi``).
    """

    key: str
    name: str
    flags: tuple[str, ...]
    code: str
    needs_tile_permission: bool = False


INSTRUCTION_SETS = (
    InstructionSet("avx2", "AVX2", ("avx2",), "c5fdfec0" + _RETURN),  # vpaddd ymm0, ymm0, ymm0
    InstructionSet("avx512", "AVX-512", ("avx512f",), "62f17d48fec0" + _RETURN),  # vpaddd zmm0, zmm0, zmm0
    InstructionSet("avx512_vnni", "AVX-512 VNNI", ("avx512_vnni",), "62f27d4850c0" + _RETURN),  # vpdpbusd zmm0
    InstructionSet("avx_vnni", "AVX-VNNI", ("avx_vnni",), "c4e27d50c0" + _RETURN),  # {vex} vpdpbusd ymm0
    InstructionSet("avx512_bf16", "AVX-512 BF16", ("avx512_bf16",), "62f27e4852c0" + _RETURN),  # vdpbf16ps zmm0
    # ldtilecfg [rdi]; tilezero tmm0; tilerelease; ret
    InstructionSet("amx", "AMX", ("amx_tile",), "c4e2784907" "c4e27b49c0" "c4e27849c0" "c3", needs_tile_permission=True),
)


@dataclass(frozen=True)
class InstructionSetStatus:
    """Whether the CPU lists an instruction set (``offered``) and whether this process can run it (``usable``:
    None when it could not be tried)."""

    key: str
    name: str
    offered: bool
    usable: bool | None
    detail: str = ""


@dataclass(frozen=True)
class EncodingChoice:
    """The dense encoding path syneg takes: ``backend`` (``torch``, ``torch-bf16``, ``torch-fp16``, ``onnx``,
    ``onnx-int8``), the ``precision`` it computes in, the ``device``, and why."""

    backend: str
    precision: str
    device: str
    reason: str


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision training computes in (``fp32``, or ``bf16`` / ``fp16`` autocast with fp32 weights),
    the ``device``, and why."""

    precision: str
    device: str
    reason: str


# What each encoding backend computes in.
ENCODING_PRECISION = {"torch": "fp32", "torch-bf16": "bf16 autocast", "torch-fp16": "fp16 autocast",
                      "onnx": "fp32", "onnx-int8": "int8 weights"}  # fmt: skip
# The instruction sets that run bf16 (dot products, or AMX tiles) and int8 dot products (VNNI) natively.
NATIVE_BF16 = ("avx512_bf16", "amx")
NATIVE_INT8 = ("avx512_vnni", "avx_vnni")


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), else what the platform module knows."""
    match = re.search(r"^model name\s*:\s*(.+)$", _cpuinfo(), re.MULTILINE)
    return match.group(1).strip() if match else platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str]:
    """The feature flags of the first CPU in ``/proc/cpuinfo`` (empty where there is none)."""
    match = re.search(r"^flags\s*:\s*(.+)$", _cpuinfo(), re.MULTILINE)
    return frozenset(match.group(1).split()) if match else frozenset()


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


@functools.cache
def instruction_sets() -> tuple[InstructionSetStatus, ...]:
    """Every set of :data:`INSTRUCTION_SETS`: offered by the CPU? usable here? (tried once per process)."""
    flags = cpu_flags()
    statuses = []
    for instruction_set in INSTRUCTION_SETS:
        listed = [flag for flag in instruction_set.flags if flag in flags]
        if not listed:
            statuses.append(InstructionSetStatus(instruction_set.key, instruction_set.name, False, False, "not offered by the CPU"))
            continue
        usable, detail = _try(instruction_set)
        if instruction_set.key == "amx":
            detail = " ".join(filter(None, [detail, "(" + ", ".join(sorted(f for f in flags if f.startswith("amx"))) + ")"]))
        statuses.append(InstructionSetStatus(instruction_set.key, instruction_set.name, True, usable, detail))
    return tuple(statuses)


def usable_instruction_sets() -> frozenset[str]:
    """Keys (``avx2``, ``avx512``, ``amx`` …) of the instruction sets this process can run."""
    return frozenset(status.key for status in instruction_sets() if status.usable)


def _try(instruction_set: InstructionSet) -> tuple[bool | None, str]:
    """Run the set's probe in a child process: (usable, why not)."""
    command = [sys.executable, "-I", __file__, instruction_set.code, str(int(instruction_set.needs_tile_permission))]
    try:
        completed = subprocess.run(command, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"could not be tried: {error}"
    if completed.returncode == 0:
        return True, ""
    if completed.returncode == -signal.SIGILL:
        return False, "listed by the CPU, but its instructions fault here (illegal instruction)"
    if completed.returncode == _KERNEL_REFUSED:
        return False, "listed by the CPU, but the kernel refused the tile state (arch_prctl ARCH_REQ_XCOMP_PERM)"
    if completed.returncode == _NO_EXECUTABLE_MEMORY:
        return None, "could not be tried: no executable memory for the probe"
    return None, f"could not be tried: the probe exited with {completed.returncode}"


def _execute(code: bytes, needs_tile_permission: bool) -> None:
    """In the probe child: run ``code`` (returns, or dies of SIGILL)."""
    import ctypes
    import mmap

    if needs_tile_permission:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) != 0:
            sys.exit(_KERNEL_REFUSED)
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError):
        sys.exit(_NO_EXECUTABLE_MEMORY)
    page.write(code)
    function = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
    # A tile configuration (palette 1, tile 0 of one row of 4 bytes) for AMX's ldtilecfg; others ignore it.
    tile_config = (ctypes.c_ubyte * 64)()
    tile_config[0], tile_config[16], tile_config[48] = 1, 4, 1
    function(ctypes.addressof(tile_config))


def gpu() -> dict[str, Any]:
    """torch's view of the GPUs: whether CUDA is available and the devices' names."""
    try:
        import torch
    except ImportError:
        return {"torch": None, "cuda": False, "devices": []}
    cuda = torch.cuda.is_available()
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    return {"torch": torch.__version__, "cuda": cuda, "devices": devices}


def cuda_bf16() -> bool:
    """Whether the GPU computes in bf16 (Ampere and later); False without one."""
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def _names(keys: tuple[str, ...], usable: frozenset[str]) -> list[str]:
    return [s.name for s in INSTRUCTION_SETS if s.key in keys and s.key in usable]


def encoding_backend(requested: str = "auto") -> EncodingChoice:
    """The encoding path for a requested ``--backend``: the request itself, or for ``auto`` the fastest path
    whose embeddings stay within ~0.99 cosine of fp32, from what this process can run (not what the CPU lists).

    ``auto`` takes, in this order: on a CUDA GPU, bf16 autocast (fp16 where the GPU has no bf16); on a CPU
    that runs bf16 natively (AVX-512 BF16, or AMX where the kernel grants it), bf16 autocast, which needs no
    export and comes within 0.9999 cosine of fp32; on one with int8 dot products (VNNI) but no bf16, ONNX
    Runtime with int8 weights; otherwise plain fp32, since bf16 emulated with AVX2 or AVX-512F alone and
    int8 without VNNI are slower than fp32 or barely faster. Ranking bf16 above int8 is measured: on an AMD
    EPYC Zen 5 (family 26, model 2), 256 SciFact abstracts, one thread, bf16 autocast took 8.6 CPU s and
    onnx-int8 13.7 against 22.9 for fp32 (2.7x and 1.7x; cosine to fp32 0.99998 and 0.993).
    """
    cuda = gpu()["cuda"]
    if requested != "auto":
        if requested not in ENCODING_PRECISION:
            raise ValueError(f"Unknown backend {requested!r}; expected auto or one of {', '.join(ENCODING_PRECISION)}")
        device = "cuda" if cuda and requested.startswith("torch") else "cpu"
        if requested == "torch-fp16" and device == "cpu":
            raise ValueError("--backend torch-fp16 needs a CUDA GPU; on a CPU, torch-bf16 is the half-precision path")
        reason = f"requested (--backend {requested})"
        if requested == "torch-bf16" and device == "cpu" and not _names(NATIVE_BF16, usable_instruction_sets()):
            reason += "; this CPU has no native bf16, so it is emulated and slower than fp32"
        return EncodingChoice(requested, ENCODING_PRECISION[requested], device, reason)
    if cuda:
        if cuda_bf16():
            return EncodingChoice("torch-bf16", ENCODING_PRECISION["torch-bf16"], "cuda", "auto: a CUDA GPU with bf16")
        return EncodingChoice("torch-fp16", ENCODING_PRECISION["torch-fp16"], "cuda", "auto: a CUDA GPU without bf16")
    usable = usable_instruction_sets()
    if bf16 := _names(NATIVE_BF16, usable):
        return EncodingChoice("torch-bf16", ENCODING_PRECISION["torch-bf16"], "cpu",
                              f"auto: the CPU runs {' and '.join(bf16)} (native bf16)")
    if int8 := _names(NATIVE_INT8, usable):
        if _installed("onnxruntime") and _installed("onnx"):
            return EncodingChoice("onnx-int8", ENCODING_PRECISION["onnx-int8"], "cpu",
                                  f"auto: the CPU runs {' and '.join(int8)} int8 dot products, and no native bf16")
        return EncodingChoice("torch", "fp32", "cpu", f"auto: the CPU runs {' and '.join(int8)}, but onnxruntime and onnx "
                                                      "are not installed (pip install onnxruntime onnx) for int8")
    return EncodingChoice("torch", "fp32", "cpu", "auto: no native bf16 or int8 dot products (VNNI) on this CPU, "
                                                  "so fp32 is its fastest path")


def training_precision(requested: str = "auto") -> PrecisionChoice:
    """The precision of training for a requested ``--precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``).

    ``auto`` is mixed precision on a CUDA GPU (bf16 where it has it, else fp16), bf16 autocast on a CPU that
    runs bf16 natively (AVX-512 BF16 or a granted AMX), and fp32 elsewhere. Weights and optimizer states
    stay fp32 in every case: autocast only runs the matrix products in half precision.
    """
    cuda = gpu()["cuda"]
    device = "cuda" if cuda else "cpu"
    native = _names(NATIVE_BF16, usable_instruction_sets()) if not cuda else []
    if requested != "auto":
        if requested not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"Unknown precision {requested!r}; expected auto, fp32, bf16 or fp16")
        if requested == "fp16" and not cuda:
            raise ValueError("precision fp16 needs a CUDA GPU; on a CPU, bf16 is the half-precision path")
        reason = f"requested (--precision {requested})"
        if requested == "bf16" and not cuda and not native:
            reason += "; this CPU has no native bf16, so it is emulated and slower than fp32"
        return PrecisionChoice(requested, device, reason)
    if cuda:
        if cuda_bf16():
            return PrecisionChoice("bf16", "cuda", "auto: mixed precision on a CUDA GPU with bf16")
        return PrecisionChoice("fp16", "cuda", "auto: mixed precision on a CUDA GPU without bf16")
    if native:
        return PrecisionChoice("bf16", "cpu", f"auto: the CPU runs {' and '.join(native)} (native bf16)")
    return PrecisionChoice("fp32", "cpu", "auto: no native bf16 on this CPU")


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def llama_cpp_build() -> dict[str, Any]:
    """The installed llama-cpp-python: its version, the CPU level loaded for this machine (see
    :mod:`syneg.llm.cpu_backend`), the instruction sets it uses, and any of those this machine cannot
    run (llama.cpp would crash on them)."""
    try:
        import llama_cpp  # noqa: F401  (only whether it imports)
    except ImportError:
        return {"installed": False}
    from syneg.llm.base import LLMError
    from syneg.llm.cpu_backend import load_cpu_backend

    try:
        backend = load_cpu_backend()
    except (LLMError, ValueError) as error:
        return {"installed": True, "version": metadata.version("llama-cpp-python"), "level": None,
                "levels": [], "uses": [], "unusable": [], "error": str(error)}  # fmt: skip
    # A feature needs the set it is named after or extends (AVX512_VBMI needs AVX-512, AMX_INT8 needs AMX).
    faulting = [status.key for status in instruction_sets() if status.usable is False]
    used = list(backend.features)
    unusable = [name for name in used if any(name.lower() == key or name.lower().startswith(key + "_") for key in faulting)]
    return {"installed": True, "version": metadata.version("llama-cpp-python"), "level": backend.level,
            "levels": list(backend.available), "reason": backend.reason, "uses": used, "unusable": unusable}  # fmt: skip


def ray_version() -> str | None:
    """Ray's version when installed (stages run as Ray Data batch functions beyond one machine), else None."""
    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return None


def describe() -> dict[str, Any]:
    """The machine part of ``syneg doctor --json``."""
    return {
        "cpu": {"model": cpu_model(), "cores": usable_cores(),
                "instruction_sets": [asdict(status) for status in instruction_sets()]},  # fmt: skip
        "gpu": gpu(),
        "encoding": asdict(encoding_backend()),
        "training": asdict(training_precision()),
        "llama_cpp": llama_cpp_build(),
        "ray": ray_version(),
    }


def usable_cores() -> int:
    """The cores this process may run on (the container's, not the host's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":  # the probe child of _try
    _execute(bytes.fromhex(sys.argv[1]), sys.argv[2] == "1")
