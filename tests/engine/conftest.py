"""One local Ray for the whole session (``ray.init`` takes 5-16 s here), and a counting proxy in front of the
real llama.cpp server: what the endpoint is asked, how many requests are in flight, and a hold to stop a job
part way at a known request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loopback_chat import CountingProxy


@pytest.fixture(scope="session")
def ray_address(isolated_cache) -> Iterator[str]:
    """The address of a local Ray with 2 CPUs, started once; tests in this process use it directly, CLI
    subprocesses join it with ``--ray-address``. Its workers inherit the session's isolated cache."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'syneg[ray]'")
    pytest.importorskip("ray.data.llm", reason="Ray Data's LLM processors need 'syneg[ray]'")
    # Ray starts its workers at nice 15 (RayConfig worker_niceness), so beside the other xdist worker or any busy
    # process they starve: one test took 982 s instead of 89 beside two one-thread jobs. The suite's Ray runs at 0.
    patcher = pytest.MonkeyPatch()
    patcher.setenv("RAY_worker_niceness", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        patcher.undo()


@pytest.fixture(scope="session")
def counting_proxy() -> type[CountingProxy]:
    return CountingProxy
