"""The synthesize stage's option schema: which LLM answers and how it is asked.

:class:`SynthesizeOptions` holds the defaults and the allowed values of ``syneg synthesize``, of the
``synthesize`` section of a pipeline config and of :func:`syneg.synthesize`; :class:`LLMOptions`, its
first half, builds the LLM client (``syneg propose-attributes`` reads only that half).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from syneg import llm
from syneg.llm import BackendName, LLMClient, StructuredOutput
from syneg.engine import EngineOptions
from syneg.options import StageOptions
from syneg.synth.checks import CheckConfig

Ablation = Literal["none", "no-attributes", "no-attributes-no-reflection"]
Critique = Literal["off", "record", "enforce"]
PromptStyle = Literal["two-step", "single"]
# A 0.5B model asked for many aspects at once repeats itself; five bound the reflection's answer.
MAX_ASPECTS_PER_REFLECTION = 5
# Where a reflection is asked: three aspects from one reflection gave a negative to 37 of 50 SciFact pairs
# against 25 for one, at 0.73x the CPU seconds per accepted negative (BENCHMARKS.md, "Several aspects").
DEFAULT_ASPECTS_PER_REFLECTION = 3


def asks_a_reflection(prompt_style: str, ablation: str) -> bool:
    """Whether the prompt asks for a reflection: the two-step prompt, with an ablation that keeps it."""
    return prompt_style == "two-step" and ablation != "no-attributes-no-reflection"


def default_aspects_per_reflection(prompt_style: str, ablation: str) -> int:
    """3 where the prompt asks for a reflection, else 1."""
    return DEFAULT_ASPECTS_PER_REFLECTION if asks_a_reflection(prompt_style, ablation) else 1


def check_aspects_per_reflection(count: int, prompt_style: str, ablation: str) -> None:
    """Raises ValueError unless ``count`` aspects per reflection can be asked: 1 to the maximum, and more
    than 1 only where there is a reflection to ask (the two-step prompt, an ablation that keeps it)."""
    if not 1 <= count <= MAX_ASPECTS_PER_REFLECTION:
        raise ValueError(f"aspects_per_reflection must be 1 to {MAX_ASPECTS_PER_REFLECTION}, not {count}")
    if count > 1 and not asks_a_reflection(prompt_style, ablation):
        raise ValueError("aspects_per_reflection above 1 needs a reflection: prompt_style two-step and an ablation "
                         "other than no-attributes-no-reflection")


class LLMOptions(StageOptions):
    """The LLM that writes the negatives and how it is reached (see :func:`syneg.llm.make_client`)."""

    backend: BackendName = Field("llama.cpp", description="llama.cpp (in-process, offline), openai (any OpenAI-compatible "
                                                          "endpoint) or vllm (vLLM in Ray actors on GPUs; engine ray).")
    model: str = Field("default", description="llama.cpp: qwen2.5-0.5b (default), smollm2-135m or a GGUF path; "
                                              "openai: the endpoint's model name; vllm: a Hugging Face id or a folder.")
    base_url: str | None = Field(None, description="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key (never logged).")
    concurrency: int = Field(4, ge=1, description="openai: requests in flight (pairs synthesized at once).")
    timeout: float = Field(120.0, gt=0, description="openai: seconds per request before retrying.")
    structured_output: StructuredOutput = Field("json_schema", description="openai: json_schema, json_object or none.")
    grammar: bool = Field(True, description="llama.cpp: enforce the JSON schema with a grammar.")
    threads: int | None = Field(None, description="llama.cpp: CPU threads (default: half the cores).")
    cache: Path | None = Field(None, description="LLM request cache (default: $SYNEG_CACHE_DIR/llm-cache.sqlite).")
    vllm_tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs per engine replica (vLLM's tensor_parallel_size).")
    vllm_max_model_len: int | None = Field(None, ge=1, description="vllm: context length in tokens (default: the model's); "
                                                                  "lower it when the KV cache does not fit.")
    vllm_batch_size: int = Field(32, ge=1, description="vllm: requests per engine batch (answers are recorded a batch at a time).")
    vllm_replicas: int = Field(1, ge=1, description="vllm: engine replicas, each on vllm_tensor_parallel_size GPUs.")
    vllm_accelerator_type: str | None = Field(None, description="vllm: the GPU type to run on, as Ray names it (e.g. H100, A100); "
                                                                "default any.")

    def client(self, use_cache: bool = True) -> LLMClient:
        """A client for these options, with the request cache unless ``use_cache`` is False; the caller closes it."""
        return llm.make_client(
            self.backend,
            model=self.model,
            base_url=self.base_url,
            api_key_env=self.api_key_env,
            concurrency=self.concurrency,
            timeout=self.timeout,
            structured_output=self.structured_output,
            grammar=self.grammar,
            n_threads=self.threads,
            cache=(self.cache or True) if use_cache else False,
        )

    @property
    def pairs_in_flight(self) -> int:
        """Pairs synthesized at once: llama.cpp decodes one sequence at a time, so only the openai
        backend, which serves requests concurrently, gains from more than one."""
        return self.concurrency if self.backend == "openai" else 1


class SynthesizeOptions(LLMOptions, EngineOptions):
    """How the negatives are written and checked (see :class:`syneg.synth.Synthesizer` for each option)."""

    attributes: str | None = Field(None, description="Attribute YAML file, or a shipped example (scifact, demo). "
                                                     "Default: proposed by the LLM from a corpus sample.")
    negatives_per_pair: int = Field(1, ge=1, description="Negatives kept per pair (K).")
    max_rounds: int = Field(2, ge=0, description="Revisions of a candidate that fails a check.")
    ablation: Ablation = Field("none", description="none, no-attributes or no-attributes-no-reflection (the paper's ablations).")
    critique: Critique = Field("off", description="LLM self-critique: off, record or enforce.")
    prompt_style: PromptStyle = Field("two-step", description="two-step (reflect, then write) or single (one JSON answer).")
    aspects_per_reflection: int = Field(DEFAULT_ASPECTS_PER_REFLECTION, ge=1, le=MAX_ASPECTS_PER_REFLECTION,
                                        description="two-step: aspects (each with a title) one reflection proposes; "
                                                    "later rounds write from the spare ones instead of reflecting again. "
                                                    "Default: 3 with a reflection, else 1.")
    trim_cut_fields: bool = Field(True, description="two-step: a reflection's topic, aspect or title that the JSON grammar "
                                                    "closed at its cap, mid-word, goes into the write prompt as its whole "
                                                    "words (and so does a field that copies its broken end); false trims "
                                                    "the title alone, as syneg did before this option.")
    prompts: Path | None = Field(None, description="Folder of prompt templates overriding the shipped ones.")
    max_words: int = Field(400, ge=1, description="Cap on the target length of a negative, in words.")
    max_tokens: int = Field(220, ge=1, description="Generation budget per LLM answer.")
    temperature: float = Field(0.7, ge=0)
    seed: int = 0
    refill: bool = Field(False, description="Synthesize again the pairs already in the output with fewer than "
                                            "negatives_per_pair negatives (raise max_rounds, or change the aspects or the "
                                            "seed: rounds asked before come from the cache); a pair's record is replaced "
                                            "only when the new one holds more negatives.")
    checks: dict[str, float] = Field(default_factory=dict, description="Overrides of syneg.synth.CheckConfig thresholds.")

    @model_validator(mode="before")
    @classmethod
    def _default_aspects(cls, data: Any) -> Any:
        """Unset (or None), the aspects per reflection follow the prompt: 3 with a reflection, 1 without."""
        if isinstance(data, dict) and data.get("aspects_per_reflection") is None:
            style = data.get("prompt_style", cls.model_fields["prompt_style"].default)
            ablation = data.get("ablation", cls.model_fields["ablation"].default)
            data = {**data, "aspects_per_reflection": default_aspects_per_reflection(style, ablation)}
        return data

    @model_validator(mode="after")
    def _aspects_need_a_reflection(self) -> SynthesizeOptions:
        check_aspects_per_reflection(self.aspects_per_reflection, self.prompt_style, self.ablation)
        return self

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, checks: dict[str, float]) -> dict[str, float]:
        known = [field.name for field in fields(CheckConfig)]
        unknown = sorted(set(checks) - set(known))
        if unknown:
            raise ValueError(f"unknown checks {', '.join(unknown)}; known: {', '.join(known)}")
        return checks

    def check_config(self) -> CheckConfig:
        return CheckConfig(**self.checks)


SYNTHESIZE = SynthesizeOptions()
