"""The base of syneg's option schemas.

Each stage has one schema, beside the stage's own code: :class:`syneg.retrieval.mining.MineOptions`,
:class:`syneg.synth.SynthesizeOptions`, :class:`syneg.mixing.MixOptions`,
:class:`syneg.training.TrainOptions` and :class:`syneg.evaluation.EvaluateOptions`. It is the one
place of the stage's defaults and allowed values (``Literal`` types): the Python verbs take their
defaults from it, ``syneg <stage>`` takes its defaults and choices from it, and the sections of a
pipeline config (:class:`syneg.pipeline.RunConfig`) are the schemas themselves.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StageOptions(BaseModel):
    """A stage's options: unknown names are errors, values are checked when set."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
