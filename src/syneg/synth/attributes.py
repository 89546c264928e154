"""Attribute sets: the values a synthesized negative is constrained by (domain, difficulty, length, extras).

A per-dataset YAML file holds the values; one value of each attribute is drawn per negative,
deterministically from the run's seed and the pair, so reruns draw the same. SciFact's values from
the paper ship as ``syneg/synth/configs/scifact.yaml``. For a dataset without a file,
:func:`propose_attributes` asks the LLM to name the domains of a sample of the corpus and writes a
file the user can edit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import yaml
from pydantic import BaseModel

from syneg.data import BeirDataset, DataError
from syneg.llm import ChatRequest, LLMClient, LLMError
from syneg.synth.prompts import PromptTemplates

logger = logging.getLogger(__name__)

DEFAULT_DIFFICULTIES = ["foundational (elementary or middle school)", "intermediate (high school or undergraduate)"]
DEFAULT_LENGTHS = ["approximately the same as the passage"]


@dataclass
class AttributeSet:
    """Values of each attribute to draw from.

    Example::

        >>> attributes = AttributeSet.example("scifact")
        >>> attributes.domain[:2], len(attributes.difficulty)
        (['Epidemiology', 'Public Health'], 2)
        >>> sorted(attributes.draw(seed=0, key="q1/d1"))
        ['difficulty', 'domain', 'length']
    """

    domain: list[str]
    difficulty: list[str] = field(default_factory=lambda: list(DEFAULT_DIFFICULTIES))
    length: list[str] = field(default_factory=lambda: list(DEFAULT_LENGTHS))
    extra: dict[str, list[str]] = field(default_factory=dict)

    def draw(self, seed: int, key: str) -> dict[str, str]:
        """One value per attribute, the same for the same seed and key (e.g. ``qid/docid/slot``)."""
        rng = random.Random(int(hashlib.sha1(f"{seed}/{key}".encode()).hexdigest()[:12], 16))
        drawn = {"domain": rng.choice(self.domain), "difficulty": rng.choice(self.difficulty)}
        drawn["length"] = rng.choice(self.length)
        for name, values in self.extra.items():
            drawn[name] = rng.choice(values)
        return drawn

    @classmethod
    def load(cls, path: str | Path) -> AttributeSet:
        """Read a YAML attribute file; errors name the file and the offending key."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise DataError(f"{path}: invalid YAML ({error})") from None
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a mapping of attribute names to lists of values")
        extra = data.get("extra") or {}
        lists = {key: data.get(key) for key in ("domain", "difficulty", "length")} | {f"extra.{k}": v for k, v in extra.items()}
        for key, values in lists.items():
            if values is not None and (not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values)):
                raise DataError(f"{path}: {key!r} must be a non-empty list of strings")
        if not data.get("domain"):
            raise DataError(f"{path}: 'domain' is required")
        return cls(
            domain=data["domain"],
            difficulty=data.get("difficulty") or list(DEFAULT_DIFFICULTIES),
            length=data.get("length") or list(DEFAULT_LENGTHS),
            extra=extra,
        )

    def save(self, path: str | Path) -> None:
        data = {"domain": self.domain, "difficulty": self.difficulty, "length": self.length, "extra": self.extra}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")

    @classmethod
    def from_spec(cls, spec: str | Path) -> AttributeSet:
        """A YAML file path, or the name of a shipped example (``scifact``)."""
        return cls.load(spec) if names_a_file(spec) else cls.example(str(spec))

    @classmethod
    def example(cls, name: str = "scifact") -> AttributeSet:
        """An attribute file shipped with syneg (``scifact``: the paper's values)."""
        path = example_path(name)
        if not path.is_file():
            raise FileNotFoundError(f"No attribute file {name!r} and no shipped example of that name (try scifact)")
        return cls.load(path)


def names_a_file(spec: str | Path) -> bool:
    """Whether an attribute spec is a YAML file path; otherwise it names a shipped example."""
    return Path(spec).exists() or str(spec).endswith((".yaml", ".yml"))


def example_path(name: str = "scifact") -> Path:
    return Path(str(files("syneg.synth") / "configs" / f"{name}.yaml"))


class DomainsAnswer(BaseModel):
    domains: list[str]


DOMAINS_SCHEMA = {
    "type": "object",
    "properties": {"domains": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 3}},
    "required": ["domains"],
}


async def propose_attributes(
    dataset: BeirDataset,
    client: LLMClient,
    sample_size: int = 24,
    per_prompt: int = 4,
    max_domains: int = 8,
    seed: int = 0,
    templates: PromptTemplates | None = None,
) -> AttributeSet:
    """Ask the LLM to name the domains of a sample of the corpus; the most named become the values.

    Documents are sampled with ``seed``, shown ``per_prompt`` at a time (first 300 characters each),
    and the answers counted; failed prompts are skipped. Difficulty and length get generic defaults.
    """
    templates = templates or PromptTemplates()
    ids = sorted(dataset.corpus)
    sample = random.Random(seed).sample(ids, min(sample_size, len(ids)))
    counts: Counter[str] = Counter()
    for start in range(0, len(sample), per_prompt):
        texts = [dataset.corpus[i].full_text[:300].replace("\n", " ") for i in sample[start : start + per_prompt]]
        prompt = templates.render("propose_domains", samples="\n".join(f"- {t}" for t in texts))
        request = ChatRequest.chat(None, prompt, schema=DOMAINS_SCHEMA, max_tokens=60, temperature=0.2, seed=seed)
        try:
            answer, _ = await client.generate(request, DomainsAnswer)
        except LLMError:
            continue
        # Small models sometimes copy a placeholder ("<field>") instead of naming a field.
        counts.update(d.strip().title() for d in answer.domains if 2 < len(d.strip()) <= 40 and not set(d) & set("<>[]{}"))
    if not counts:
        raise LLMError("schema", "the LLM named no domains for the sampled documents")
    return AttributeSet(domain=merge_domain_names(counts)[:max_domains])


def _domain_words(name: str) -> frozenset[str]:
    # "Diseases" and "Disease" are one field to the prompt: fold a plain plural.
    return frozenset(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in name.lower().split())


def merge_domain_names(counts: Counter[str]) -> list[str]:
    """Domain names, most named first, with near-duplicates folded into the most named spelling.

    Names with the same words up to a plural ("Cardiovascular Disease", "Cardiovascular Diseases")
    are one domain, and a name whose words all occur in a more named one ("Cardiovascular") adds
    nothing the prompt does not already say: both count toward the kept name.

        >>> merge_domain_names(Counter({"Cardiovascular Disease": 3, "Cardiovascular Diseases": 2, "Cardiovascular": 1}))
        ['Cardiovascular Disease']
    """
    kept: dict[str, tuple[frozenset[str], int]] = {}
    for name, count in counts.most_common():
        words = _domain_words(name)
        home = next((k for k, (kw, _) in kept.items() if words <= kw), None)
        if home is None:
            kept[name] = (words, count)
        else:
            kept[home] = (kept[home][0], kept[home][1] + count)
    return sorted(kept, key=lambda k: -kept[k][1])


def propose_attributes_sync(dataset: BeirDataset, client: LLMClient, **kwargs: object) -> AttributeSet:
    return asyncio.run(propose_attributes(dataset, client, **kwargs))  # type: ignore[arg-type]


def attributes_for_run(
    spec: str | Path | None,
    ablation: str,
    proposed: Path,
    dataset: BeirDataset | None,
    client: LLMClient,
    seed: int = 0,
) -> AttributeSet | None:
    """The attribute set of a synthesis run, as ``syneg synthesize`` and ``syneg run`` choose it.

    A given file or shipped example (``spec``) wins; the ablations need none; otherwise the set the
    LLM proposed earlier at ``proposed`` is reused (the user may have edited it), or the LLM proposes
    one from a corpus sample and it is saved there.
    """
    if spec is not None:
        return AttributeSet.from_spec(spec)
    if ablation != "none":
        return None
    if proposed.is_file():
        return AttributeSet.load(proposed)
    if dataset is None:
        raise ValueError("A training-set jsonl has no corpus to propose attributes from: pass --attributes")
    attributes = propose_attributes_sync(dataset, client, seed=seed)
    attributes.save(proposed)
    logger.info("Proposed domains %s; saved to %s (edit it and rerun).", ", ".join(attributes.domain), proposed)
    return attributes
