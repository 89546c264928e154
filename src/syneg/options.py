"""The base of syneg's option schemas.

Each stage has one schema, beside the stage's own code: :class:`syneg.retrieval.mining.MineOptions`,
:class:`syneg.synth.SynthesizeOptions`, :class:`syneg.mixing.MixOptions`,
:class:`syneg.training.TrainOptions` and :class:`syneg.evaluation.EvaluateOptions`. It is the one
place of the stage's defaults and allowed values (``Literal`` types): the Python verbs take their
defaults from it, ``syneg <stage>`` takes its defaults and choices from it, and the sections of a
pipeline config (:class:`syneg.pipeline.RunConfig`) are the schemas themselves.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def _numbers_only(annotation: Any) -> bool:
    """Whether a field holds numbers alone (``int``, ``float | None``, ``list[int]``, ``dict[str, float]``)."""
    if annotation in (int, float):
        return True
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    if get_origin(annotation) is dict:
        return _numbers_only(args[1])
    return bool(args) and all(_numbers_only(arg) for arg in args)


def _holds_bool(value: Any) -> bool:
    values = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(v, bool) for v in values)


class StageOptions(BaseModel):
    """A stage's options: unknown names are errors, values are checked when set. A number must be finite,
    and a YAML boolean (``yes``, ``true``) where a number is expected is an error rather than 1."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _numbers_only(field.annotation) and _holds_bool(value):
            raise ValueError(f"a boolean ({value!r}) where a number is expected")
        return value
