"""Where the stages that scale run: on this machine (``local``, the default) or on a Ray cluster (``ray``).

:class:`EngineOptions` is the part of the mine, synthesize and evaluate schemas that chooses it, so
``--engine ray`` (and ``--ray-address``), the ``engine:`` key of a pipeline config and ``engine="ray"``
in the Python verbs are one option. Under Ray the stages do the same work through Ray Data:

- encoding (:mod:`syneg.engine.encoding`): the texts the embedding cache lacks become a Ray Dataset,
  encoded by an actor pool of :class:`DenseEncoder` copies that write into the same cache (keyed by
  the model's fingerprint and each text's hash), so the local path and later runs reuse it;
- search: query blocks ranked against the corpus embeddings (put once in Ray's object store) in
  parallel tasks; mining's filters and statistics then run as on one machine, on those rankings;
- synthesis (:mod:`syneg.engine.synthesis`): the local revision loop (prompts, checks, revisions)
  with its LLM requests sent in batches through ``ray.data.llm``'s HTTP request processor, or its vLLM
  engine processor with backend ``vllm`` (GPUs; untested here), and a request cache of per-writer
  shards (:class:`syneg.llm.ShardedRequestCache`).

The output is the local path's (records sorted by id, embeddings equal to float tolerance); the
engine is therefore left out of every stage's fingerprint. Ray comes with ``pip install 'syneg[ray]'``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from syneg.options import StageOptions

if TYPE_CHECKING:
    from syneg.retrieval.encoder import DenseEncoder

logger = logging.getLogger(__name__)

Engine = Literal["local", "ray"]
# A CPU fraction per actor: Ray Data's actor pools at 1 CPU each beside its read and map tasks can
# wait for each other without a warning on a small machine (ray issue 44687); a fraction always fits.
ACTOR_CPUS = 0.5


class EngineOptions(StageOptions):
    """Where a stage runs; none of it changes what the stage writes."""

    engine: Engine = Field("local", description="local (this process) or ray (Ray Data: a local Ray started on "
                                                "demand, or the cluster of --ray-address).")
    ray_address: str | None = Field(None, description="ray: an existing cluster's address (e.g. 10.0.0.1:6379 or auto); "
                                                       "default: $RAY_ADDRESS, else a local Ray.")
    ray_actors: int = Field(2, ge=1, description="ray: actors per stage (encoders, HTTP request senders).")

    def ray_engine(self) -> RayEngine | None:
        """The Ray engine these options ask for, or None for the local path."""
        return RayEngine(self.ray_address, self.ray_actors) if self.engine == "ray" else None


ENGINE_FIELDS = frozenset(EngineOptions.model_fields)


def import_ray() -> Any:
    """``ray`` with Ray Data, or an ImportError saying how to install it (a bad-input error in the CLI)."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError("--engine ray needs Ray Data: pip install 'syneg[ray]'") from None
    return ray


class RayEngine:
    """A connection to Ray (made on first use) and the stages' Ray Data jobs.

    Args:
        address: A running cluster's address; None connects to ``$RAY_ADDRESS`` when set, else starts
            a local Ray (or reuses the one this process already joined).
        actors: Actors per stage: encoders in the encoding pool, senders in the HTTP processor.
    """

    def __init__(self, address: str | None = None, actors: int = 2) -> None:
        self.address = address
        self.actors = actors

    def __repr__(self) -> str:
        return f"RayEngine(address={self.address!r}, actors={self.actors})"

    def connect(self) -> Any:
        """``ray``, initialized: joined to the cluster, or the running session of this process."""
        ray = import_ray()
        if not ray.is_initialized():
            if not logging.getLogger("syneg").isEnabledFor(logging.DEBUG):
                logging.getLogger("ray").setLevel(logging.ERROR)  # Ray Data's job and deprecation lines; -v shows them
            logger.info("Connecting to Ray%s.", f" at {self.address}" if self.address else "")
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # syneg's own progress display is on stderr
        context.print_on_execution_start = False
        return ray

    def encode(self, encoder: DenseEncoder, texts: list[str]) -> Any:
        from syneg.engine.encoding import encode_on_ray

        return encode_on_ray(self, encoder, texts)

    def top_k(self, queries: Any, documents: Any, k: int, backend: str) -> tuple[Any, Any]:
        from syneg.engine.encoding import top_k_on_ray

        return top_k_on_ray(self, queries, documents, k, backend)


__all__ = ["ACTOR_CPUS", "ENGINE_FIELDS", "Engine", "EngineOptions", "RayEngine", "import_ray"]
