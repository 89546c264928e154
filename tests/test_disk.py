"""A full disk, a read-only output folder, a missing or unreadable model (issue 21, part 7).

Each case runs the real CLI as a subprocess: one line naming what failed and where, exit code 2, and
nothing already written lost. A full disk is a file-size limit (``RLIMIT_FSIZE``, with ``SIGXFSZ``
ignored so that a write fails with EFBIG as it would with ENOSPC); permissions are enforced for root
too, by running the child without the capabilities that bypass them (``setpriv``).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from loopback_chat import EchoingChatServer
from syneg.data import demo_path, read_training_set
from syneg.locations import resolve_model


def file_size_limit(size: int) -> Callable[[], None]:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def without_privileges() -> list[str]:
    """A command prefix under which permissions hold, whoever runs the tests."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def syneg(*args: str, cwd: Path, prefix: list[str] = (), preexec: Callable[[], None] | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = os.environ | {"SYNEG_CACHE_DIR": str(cwd / "cache")} | (env or {})
    return subprocess.run([*prefix, sys.executable, "-m", "syneg", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False, preexec_fn=preexec)


def error_line(completed: subprocess.CompletedProcess) -> str:
    """The one error line; no traceback on the way."""
    assert "Traceback" not in completed.stderr, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, completed.stderr
    return lines[0]


def test_full_disk_while_mining_keeps_the_earlier_output(tmp_path: Path) -> None:
    mine = ["mine", str(demo_path()), "-o", "mined.jsonl", "--retriever", "bm25"]
    assert syneg(*mine, cwd=tmp_path).returncode == 0
    before = (tmp_path / "mined.jsonl").read_bytes()
    completed = syneg(*mine, "--num-negatives", "12", cwd=tmp_path, preexec=file_size_limit(len(before) // 3))
    assert completed.returncode == 2
    assert error_line(completed) == "error: mined.jsonl: cannot write (file too large for this system or limit)"
    assert (tmp_path / "mined.jsonl").read_bytes() == before  # the earlier output, whole
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # no temporary file left


@pytest.mark.parametrize("use_cache", [False, True], ids=["output-full", "cache-full"])
def test_full_disk_while_synthesizing_keeps_the_written_pairs_and_resumes(tmp_path: Path, use_cache: bool) -> None:
    server = EchoingChatServer(failing={})
    try:
        synthesize = ["synthesize", str(demo_path()), "--attributes", "demo", "--max-rounds", "0", "--backend", "openai",
                      "--base-url", server.base_url, "--model", "loopback", "--concurrency", "1"]
        if not use_cache:  # the output is the only file written
            synthesize.append("--no-cache")
        assert syneg(*synthesize, "-o", "synthetic.jsonl", "--limit", "2", cwd=tmp_path).returncode == 0
        output = tmp_path / "synthetic.jsonl"
        before = output.read_bytes()
        limit = 4096 if use_cache else len(before) + 100
        completed = syneg(*synthesize, "-o", "synthetic.jsonl", "--limit", "6", cwd=tmp_path, preexec=file_size_limit(limit))
        assert completed.returncode == 2
        line = error_line(completed)
        if not use_cache:
            assert line == "error: synthetic.jsonl: cannot write (file too large for this system or limit)"
        else:
            assert line.startswith(f"error: {tmp_path / 'cache' / 'llm-cache.sqlite'}: cannot write the LLM request cache"), line
        assert output.read_bytes().startswith(before)  # the pairs written before are kept
        assert syneg(*synthesize, "-o", "synthetic.jsonl", "--limit", "6", cwd=tmp_path).returncode == 0  # resumes
        pairs = [(i.query_id, i.pos_ids[0]) for i in read_training_set(output)]
        assert len(pairs) == len(set(pairs)) == 6
    finally:
        server.close()


def test_read_only_output_folder(tmp_path: Path) -> None:
    prefix = without_privileges()
    (tmp_path / "cache").mkdir()
    folder = tmp_path / "read-only"
    folder.mkdir()
    (folder / "mined.jsonl").write_text("kept\n")
    folder.chmod(0o555)
    (folder / "mined.jsonl").chmod(0o444)
    try:
        completed = syneg("mine", str(demo_path()), "-o", "read-only/mined.jsonl", "--retriever", "bm25", cwd=tmp_path, prefix=prefix)
    finally:
        folder.chmod(0o755)
    assert completed.returncode == 2
    assert error_line(completed) == "error: read-only/mined.jsonl: cannot write (permission denied)"
    assert (folder / "mined.jsonl").read_text() == "kept\n"


@pytest.mark.parametrize("model", ["./models/none", "models/none"])  # the second reads as a Hub name too
def test_missing_model_path(tmp_path: Path, model: str) -> None:
    completed = syneg("mine", str(demo_path()), "-o", "mined.jsonl", "--retriever", "dense", "--model", model, cwd=tmp_path,
                      env={"HF_HUB_OFFLINE": "1"})
    assert completed.returncode == 2
    assert model in error_line(completed) and "not found" in error_line(completed)
    assert not (tmp_path / "mined.jsonl").exists()


def test_unreadable_model_path(tmp_path: Path) -> None:
    prefix = without_privileges()
    (tmp_path / "cache").mkdir()
    model = tmp_path / "model"
    shutil.copytree(resolve_model("default"), model)
    for path in [model, *model.rglob("*")]:
        path.chmod(0o000 if path.is_file() else 0o755)
    completed = syneg("mine", str(demo_path()), "-o", "mined.jsonl", "--retriever", "dense", "--model", "model",
                      cwd=tmp_path, prefix=prefix)
    assert completed.returncode == 2
    line = error_line(completed)
    assert line.startswith("error: model/") and line.endswith(": permission denied"), line
