"""SyNeg synthesis: attribute-constrained prompts, reflection, checks and revision of hard negatives."""

from __future__ import annotations

from syneg.synth.attributes import (
    AttributeSet,
    attribute_file,
    attributes_for_run,
    choose_attributes,
    example_path,
    is_shipped,
    merge_domain_names,
    propose_attributes,
    propose_attributes_sync,
)
from syneg.synth.checks import (
    CheckConfig,
    CheckResult,
    abbreviation_conflicts,
    misspelled_terms,
    answer_leak,
    degeneration,
    is_echo,
    run_checks,
)
from syneg.synth.options import SYNTHESIZE, Ablation, Critique, LLMOptions, PromptStyle, SynthesizeOptions
from syneg.synth.prompts import PromptTemplates
from syneg.synth.pairs import Pair, pairs_from_beir, pairs_from_training_set
from syneg.synth.passages import as_passage
from syneg.synth.revision import SynthesisStats
from syneg.synth.stage import synthesize
from syneg.synth.synthesize import Synthesizer, completed_pairs, iter_negatives

__all__ = [
    "SYNTHESIZE",
    "Ablation",
    "AttributeSet",
    "CheckConfig",
    "CheckResult",
    "Critique",
    "LLMOptions",
    "Pair",
    "PromptStyle",
    "PromptTemplates",
    "SynthesisStats",
    "SynthesizeOptions",
    "Synthesizer",
    "abbreviation_conflicts",
    "misspelled_terms",
    "answer_leak",
    "as_passage",
    "attribute_file",
    "attributes_for_run",
    "choose_attributes",
    "completed_pairs",
    "degeneration",
    "example_path",
    "is_echo",
    "is_shipped",
    "iter_negatives",
    "merge_domain_names",
    "pairs_from_beir",
    "pairs_from_training_set",
    "propose_attributes",
    "propose_attributes_sync",
    "run_checks",
    "synthesize",
]
