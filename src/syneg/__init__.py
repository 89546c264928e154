"""syneg: train dense retrievers with LLM-synthesized hard negatives (SyNeg, arXiv 2412.17250).

The Python API is a handful of verbs on plain data classes, one per pipeline stage::

    import syneg

    train = syneg.load_beir("datasets/scifact", split="train")
    mined = syneg.mine(train, retriever="both", num_negatives=3, relative_margin=0.05)
    syneg.synthesize(train, "scifact-synthetic.jsonl", negatives_per_pair=1)
    syneg.write_training_set("scifact-mined.jsonl", mined.instances)

    test = syneg.load_beir("datasets/scifact", split="test")
    print(syneg.evaluate(test, model="default").metrics)

    syneg.view("scifact-synthetic.jsonl", "scifact-synthetic.html")  # browse every negative in a browser
"""

from __future__ import annotations

__version__ = "0.1.0"

from syneg.data import (
    BeirDataset,
    DataError,
    Negative,
    TrainingInstance,
    demo_path,
    load_beir,
    read_training_set,
    write_training_set,
)
from syneg.evaluation import EvaluationResult, compare, evaluate, evaluate_run
from syneg.mixing import mix
from syneg.pipeline import run
from syneg.report import write_report
from syneg.retrieval import DenseEncoder, mine
from syneg.synth import synthesize
from syneg.training import train
from syneg.viewer import view

__all__ = [
    "BeirDataset",
    "DataError",
    "DenseEncoder",
    "EvaluationResult",
    "Negative",
    "TrainingInstance",
    "compare",
    "demo_path",
    "evaluate",
    "evaluate_run",
    "load_beir",
    "mine",
    "mix",
    "read_training_set",
    "run",
    "synthesize",
    "train",
    "view",
    "write_report",
    "write_training_set",
]
