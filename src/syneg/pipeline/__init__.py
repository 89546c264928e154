"""One pipeline from a config file: split → mine → synthesize → mix → train → evaluate.

``syneg run CONFIG`` (or :func:`run`) reads a YAML file (:class:`RunConfig`), and keeps every stage's
output in a run folder::

    RUN/
      config.yaml              the config as run, its paths relative to the run folder
      splits.json              training and validation query ids
      mined.jsonl              retrieved negatives (syneg mine)
      synthetic.jsonl          LLM negatives (syneg synthesize; or ``synthesize.file``)
      baselines/<name>/        metrics.json of bm25 and the zero-shot backbone
      arms/<arm>/seed-<s>/     train.jsonl (syneg mix), model/ (syneg train), metrics.json
      results.json             one row per (arm, seed, split): what ``syneg report`` reads
      stages/<stage>.json      completion markers: settings, their fingerprint, the stage's counts

**Resuming.** A stage is skipped when its marker exists *and* records the same settings (its own and
those of the stages it reads from). A changed setting reruns that stage and every stage downstream
of it; an unchanged one is never redone. Within a stage, long work resumes on its own: synthesis
appends pair by pair and skips done pairs, training resumes from its last checkpoint, and the
embedding cache keeps every encoded text. So a run stopped at any point and started again picks up
where it was. A stage whose output is needed no more (mining, when every arm to run was evaluated
before) is not redone, even where its output is gone, as in a clone that commits markers and results.

The package holds one concern a module: :mod:`~syneg.pipeline.config` (the YAML file, a section per
stage), :mod:`~syneg.pipeline.plan` (every stage's settings and fingerprint), :mod:`~syneg.pipeline.markers`
(which stages are done), :mod:`~syneg.pipeline.work` (what a stage does when it runs),
:mod:`~syneg.pipeline.results` (``results.json``), :mod:`~syneg.pipeline.migration` (markers of 0.1.0) and
:mod:`~syneg.pipeline.runner` (the order of the stages, and :func:`run`).

**Portable run folders.** Fingerprints depend on content and settings, never on where the data
sits or how it is reached: the dataset is fingerprinted by the digest of its files
(:func:`syneg.data.dataset_digest`), and the paths settings hold are relative to the run folder.
So a clone at another place, with ``../shared`` a symbolic link or a copy, finds its committed
stages done. Markers of the path-based format of earlier versions are rewritten on the first run
(:func:`migrate_markers`, :mod:`syneg.pipeline.migration`).

**Results are never dropped.** ``results.json`` holds every arm and seed evaluated with the config's
current settings, whether this run or an earlier one evaluated it (rewritten after every arm-seed
evaluated, so a stopped run keeps what it finished); an earlier row that is no longer
the config's (its arm's settings changed, or the arm or seed left the config) is kept with a
``stale`` field saying why, and ``syneg report`` leaves it out of its tables and lists it apart.

**Arms and seeds.** ``arms`` lists the training sets to compare (a mix strategy with optional
overrides of the ratio, the retrieved sources, the temperature or the number of negatives);
``zero-shot`` is the untrained backbone. Each arm is trained once per seed in ``seeds`` (the seed
drives mixing, shuffling and initialization), always with the same budget (``train``).

**Pairs.** Training queries are the train split's, minus ``validation_queries`` held out (seeded) for
tuning, optionally sampled down to ``train_queries``. Each query gives ``positives_per_query``
(query, positive) pairs, the highest-graded positives first (ties broken with the seed): for
NFCorpus, with dozens of graded positives per query, one pair per query keeps queries with many
positives from dominating. Every judged positive is still excluded from the query's negatives.

Example config (``syneg run --demo`` runs the shipped one)::

    data: ../shared/datasets/scifact
    output: runs/scifact
    validation_queries: 100
    seeds: [1, 2, 3]
    synthesize: {attributes: scifact, negatives_per_pair: 1}
    mix: {num_negatives: 3, ratio: 0.7}
    train: {temperature: 0.02, batch_size: 32, epochs: 1}
    arms:
      - {name: zero-shot, strategy: zero-shot}
      - {name: bm25, strategy: retrieved, retrieved_sources: bm25}
      - {name: hybrid, strategy: hybrid}
"""

from __future__ import annotations

from syneg.pipeline.config import (
    BM25_BASELINE,
    PIPELINE_STAGES,
    SYNTHETIC_STRATEGIES,
    ArmConfig,
    ArmStrategy,
    EvaluateConfig,
    MineConfig,
    MixConfig,
    PipelineStage,
    RunConfig,
    SynthesizeConfig,
    TrainConfig,
    demo_config_path,
)
from syneg.pipeline.markers import StageMarkers, fingerprint, marker_file
from syneg.pipeline.plan import ArmSeedPlan, NegativeFiles, PlannedStage, Planner
from syneg.pipeline.results import COMPOSITION_PREFIX, load_rows
from syneg.pipeline.runner import Pipeline, migrate_markers, run
from syneg.pipeline.work import split_queries

__all__ = [
    "BM25_BASELINE",
    "COMPOSITION_PREFIX",
    "PIPELINE_STAGES",
    "SYNTHETIC_STRATEGIES",
    "ArmConfig",
    "ArmSeedPlan",
    "ArmStrategy",
    "EvaluateConfig",
    "MineConfig",
    "MixConfig",
    "NegativeFiles",
    "Pipeline",
    "PipelineStage",
    "PlannedStage",
    "Planner",
    "RunConfig",
    "StageMarkers",
    "SynthesizeConfig",
    "TrainConfig",
    "demo_config_path",
    "fingerprint",
    "load_rows",
    "marker_file",
    "migrate_markers",
    "run",
    "split_queries",
]
