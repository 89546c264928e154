"""Shared fixtures: an isolated cache, the demo dataset, the real BEIR datasets in ../shared, a
headless browser for the HTML pages and a real llama.cpp server on loopback."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syneg.data import BeirDataset, demo_path, load_beir
from syneg.llm.models import smollm2_path
from syneg.system import usable_cores

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


MAX_WORKERS = 4  # each may hold a llama.cpp server, a Ray and MiniLM in memory


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per usable core (xdist's own count asks psutil, which sees the host's cores)."""
    return min(MAX_WORKERS, usable_cores())


def _share_the_cores_among_workers() -> None:
    """Under pytest-xdist (``make test`` runs ``-n auto``) each worker gets its share of the cores: torch and the
    encoders of every worker asking for all cores at once would run slower than one worker alone. Set before a
    test imports torch (read at import), and inherited by the ``syneg`` processes the tests start."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cores() // workers))


_share_the_cores_among_workers()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``--dist loadgroup`` a module's tests stay on one worker (its module-scoped fixtures, such as the kill
    trials' reference runs, are built once), and the Ray tests of every module share one worker and one Ray."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            module = item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group("ray" if module.startswith("tests/engine/") else module))


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test run gets its own syneg cache: no test leans on what an earlier run left behind."""
    cache = tmp_path_factory.mktemp("syneg-cache")
    patcher = pytest.MonkeyPatch()
    patcher.setenv("SYNEG_CACHE_DIR", str(cache))
    yield cache
    patcher.undo()


HYPOTHESIS_EXAMPLES = pytest.StashKey[dict[str, int]]()


@pytest.fixture(scope="session")
def examples(request: pytest.FixtureRequest) -> dict[str, int]:
    """Examples run per parser by the property tests, counted by the tests and printed at the end."""
    return request.config.stash.setdefault(HYPOTHESIS_EXAMPLES, {})


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker hands its counts to the controller, which prints them."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["hypothesis_examples"] = dict(session.config.stash.get(HYPOTHESIS_EXAMPLES, {}))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    counts = node.config.stash.setdefault(HYPOTHESIS_EXAMPLES, {})
    for parser, number in getattr(node, "workeroutput", {}).get("hypothesis_examples", {}).items():
        counts[parser] = counts.get(parser, 0) + number


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    counts = config.stash.get(HYPOTHESIS_EXAMPLES, {})
    if counts:
        terminalreporter.section("hypothesis examples per parser")
        for parser, number in counts.items():
            terminalreporter.write_line(f"{number:>6}  {parser}")
        terminalreporter.write_line(f"{sum(counts.values()):>6}  in all")


@pytest.fixture(scope="session")
def demo_train():
    return load_beir(demo_path(), split="train")


@pytest.fixture(scope="session")
def demo_test():
    return load_beir(demo_path(), split="test")


def shared_dataset(name: str) -> Path:
    path = SHARED_DATASETS / name
    if not (path / "corpus.jsonl").is_file():
        pytest.skip(f"real dataset {name!r} not found at {path} (expected ../shared/datasets beside the repository)")
    return path


def real_subset(path: Path, split: str, num_queries: int, num_other_docs: int) -> BeirDataset:
    """The first queries of a real split over their positives and a seeded sample of other documents:
    real text and judgements at a size a test can encode in seconds."""
    full = load_beir(path, split)
    query_ids = list(full.queries)[:num_queries]
    keep = {d for q in query_ids for d in full.qrels[q]}
    keep |= set(random.Random(0).sample([d for d in full.corpus if d not in keep], num_other_docs))
    return BeirDataset(
        path=path,
        corpus={d: doc for d, doc in full.corpus.items() if d in keep},
        queries={q: full.queries[q] for q in query_ids},
        qrels={q: full.qrels[q] for q in query_ids},
        split=split,
    )


@pytest.fixture(scope="session")
def scifact_path() -> Path:
    return shared_dataset("scifact")


@pytest.fixture(scope="session")
def nfcorpus_path() -> Path:
    return shared_dataset("nfcorpus")


@pytest.fixture(scope="session")
def scifact_subset(scifact_path):
    """``scifact_subset(split, num_queries, num_other_docs)``: see :func:`real_subset`."""
    return lambda split, num_queries, num_other_docs: real_subset(scifact_path, split, num_queries, num_other_docs)


@pytest.fixture(scope="session")
def dense_encoder():
    """The real embedded all-MiniLM-L6-v2, loaded once for the session."""
    from syneg.retrieval import DenseEncoder

    return DenseEncoder("default", show_progress=False)


class HeadlessChromium:
    """Chromium run headless on a page file: the DOM once the page's script has run, or a screenshot.

    ``fragment`` is the address's ``#`` part (``#source=synthetic``), where `syneg view` keeps its filters.
    """

    def __init__(self, binary: str) -> None:
        self.binary = binary

    def run(self, page: Path, fragment: str = "", *flags: str) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as profile:
            # --no-sandbox: chromium's sandbox refuses to start as root (test containers); the pages are the tests' own.
            command = [self.binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                       "--virtual-time-budget=5000", *flags, page.resolve().as_uri() + fragment]
            completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        if completed.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {completed.returncode}:\n{completed.stderr[-2000:]}")
        return completed

    def dump_dom(self, page: Path, fragment: str = "") -> str:
        return self.run(page, fragment, "--dump-dom").stdout

    def screenshot(self, page: Path, path: Path, fragment: str = "", width: int = 1280, height: int = 1600) -> Path:
        self.run(page, fragment, f"--screenshot={path}", f"--window-size={width},{height}", "--hide-scrollbars")
        return path


@pytest.fixture(scope="session")
def browser() -> HeadlessChromium:
    """Debian's chromium (``$CHROMIUM`` names another binary); skips when none is installed."""
    candidates = [os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"]
    binary = next((found for name in candidates if name and (found := shutil.which(name))), None)
    if binary is None:
        pytest.skip("no chromium binary found: install Debian's chromium (`apt-get install chromium`; `make setup` does it "
                    "when run as root) or name one in $CHROMIUM")
    return HeadlessChromium(binary)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """``python -m llama_cpp.server`` serving SmolLM2-135M on a free loopback port; yields the API root."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "syneg.llm.llama_server", "--model", str(smollm2_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--model_alias", "smollm2-135m"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with code {process.returncode}")
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not start within 90 s")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
