"""The llama.cpp CPU backend for this CPU, chosen at run time.

syneg's llama.cpp wheel (``make setup``, see ``packaging/llama-cpu-variants.cmake``) is built with
``GGML_BACKEND_DL`` and ``GGML_CPU_ALL_VARIANTS``: the CPU backend exists once per instruction-set
level (``libggml-cpu-haswell.so`` for AVX2, ``libggml-cpu-zen4.so`` for AVX-512 VBMI/VNNI/BF16, …) and
none is linked in. ggml scores every level against the CPU's features and loads the best one, but it
looks only beside the executable and in the working directory, so :func:`load_cpu_backend` points it
at the wheel's own library folder before the first model is loaded. A wheel built the old way (one CPU
backend linked in) needs nothing and is reported as ``built-in``.

``SYNEG_LLAMA_CPU=<level>`` loads that level instead of the best one (to compare levels side by side,
as ``bench/synthesis_bench.py`` does); a level this CPU cannot run is refused by ggml's own check.

Example::

    >>> backend = load_cpu_backend()  # doctest: +SKIP
    >>> backend.level, backend.features[:3]  # doctest: +SKIP
    ('zen4', ['SSE3', 'SSSE3', 'AVX'])
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from syneg.llm.base import LLMError

LEVEL_ENV = "SYNEG_LLAMA_CPU"
_VARIANT = re.compile(r"libggml-cpu-([\w.]+)\.so$")


@dataclass(frozen=True)
class CpuBackend:
    """The loaded llama.cpp CPU backend: its ``level`` (``zen4``, ``haswell``, … or ``built-in``), the
    levels the wheel ships, the instruction-set features in use (llama.cpp's system info) and why this
    level."""

    level: str
    available: tuple[str, ...]
    features: tuple[str, ...]
    reason: str


def library_dir() -> Path:
    """The folder llama-cpp-python loads its shared libraries from."""
    import llama_cpp

    return Path(llama_cpp.__file__).parent / "lib"


def shipped_levels(lib_dir: Path | None = None) -> tuple[str, ...]:
    """The CPU levels the installed wheel ships as loadable libraries (empty for a single built-in one)."""
    folder = lib_dir or library_dir()
    return tuple(sorted(m.group(1) for path in folder.glob("libggml-cpu-*.so") if (m := _VARIANT.search(path.name))))


@functools.cache
def load_cpu_backend() -> CpuBackend:
    """Load the best CPU level of the wheel (or ``$SYNEG_LLAMA_CPU``) into this process, once.

    Raises:
        ValueError: the level asked for is not shipped, or this CPU cannot run it (bad input: exit code 2).
        LLMError: no level loads.
    """
    lib_dir = library_dir()
    available = shipped_levels(lib_dir)
    if not available:
        return CpuBackend("built-in", (), _features(), "the wheel links one CPU backend")
    # ggml's functions as libllama sees them: the wheel holds copies (libggml.so, libggml.so.0) rather
    # than links, and only the copy libllama loaded (by its soname) is the one llama.cpp asks for backends.
    ggml = ctypes.CDLL(str(lib_dir / "libllama.so"))
    ggml.ggml_backend_reg_count.restype = ctypes.c_size_t
    ggml.ggml_backend_load.restype = ctypes.c_void_p
    ggml.ggml_backend_load.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
    forced = os.environ.get(LEVEL_ENV, "").strip()
    # ggml reports each library it loads through llama-cpp-python's logger, on sys.stderr: noise for a CLI user.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        _load(ggml, lib_dir, forced, available)
    if ggml.ggml_backend_reg_count() == 0:
        raise LLMError("backend", f"no llama.cpp CPU backend in {lib_dir} loads on this CPU")
    level = _loaded_level() or "unknown"
    reason = f"asked for by {LEVEL_ENV}" if forced else "the best this CPU runs, by ggml's score"
    return CpuBackend(level, available, _features(), reason)


def _load(ggml: ctypes.CDLL, lib_dir: Path, forced: str, available: tuple[str, ...]) -> None:
    """Load the ``forced`` level or, without one, the best level, unless a CPU backend is loaded already."""
    if ggml.ggml_backend_reg_count() > 0:
        return
    if not forced:
        ggml.ggml_backend_load_all_from_path(str(lib_dir).encode())
        return
    if forced not in available:
        raise ValueError(f"{LEVEL_ENV}={forced} is not shipped; shipped levels: {', '.join(available)}")
    if not ggml.ggml_backend_load(str(lib_dir / f"libggml-cpu-{forced}.so").encode()):
        raise ValueError(f"{LEVEL_ENV}={forced}: this CPU lacks an instruction set that level needs")


def _loaded_level() -> str | None:
    """Which ``libggml-cpu-<level>.so`` this process has mapped (Linux), else None."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    levels = {m.group(1) for line in maps.splitlines() if (m := _VARIANT.search(line.strip()))}
    return levels.pop() if len(levels) == 1 else None


def _features() -> tuple[str, ...]:
    """The instruction-set features llama.cpp reports in use (``AVX512 = 1`` in its system info)."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    return tuple(re.findall(r"(\w+) = 1", info))
