"""SyNeg synthesis: attribute-constrained prompts, reflection, checks and revision of hard negatives."""

from __future__ import annotations

from syneg.synth.attributes import (
    AttributeSet,
    attributes_for_run,
    example_path,
    merge_domain_names,
    propose_attributes,
    propose_attributes_sync,
)
from syneg.synth.checks import CheckConfig, CheckResult, answer_leak, degeneration, is_echo, run_checks
from syneg.synth.prompts import PromptTemplates
from syneg.synth.synthesize import (
    Ablation,
    Critique,
    Pair,
    SynthesisStats,
    Synthesizer,
    as_passage,
    completed_pairs,
    iter_negatives,
    pairs_from_beir,
    pairs_from_training_set,
    synthesize,
)

__all__ = [
    "Ablation",
    "AttributeSet",
    "CheckConfig",
    "CheckResult",
    "Critique",
    "Pair",
    "PromptTemplates",
    "SynthesisStats",
    "Synthesizer",
    "answer_leak",
    "as_passage",
    "attributes_for_run",
    "completed_pairs",
    "degeneration",
    "example_path",
    "is_echo",
    "iter_negatives",
    "merge_domain_names",
    "pairs_from_beir",
    "pairs_from_training_set",
    "propose_attributes",
    "propose_attributes_sync",
    "run_checks",
    "synthesize",
]
