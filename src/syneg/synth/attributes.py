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
from typing import Any

import yaml
from pydantic import BaseModel

from syneg.data import BeirDataset, DataError
from syneg.data.storage import atomic_write_text, read_yaml
from syneg.llm import ChatRequest, LLMClient, LLMError
from syneg.synth.prompts import PromptTemplates, quoted

logger = logging.getLogger(__name__)

DEFAULT_DIFFICULTIES = ["foundational (elementary or middle school)", "intermediate (high school or undergraduate)"]
DEFAULT_LENGTHS = ["approximately the same as the passage"]
# The keys of an attribute file; any other attribute goes under ``extra``.
ATTRIBUTE_KEYS = ("domain", "difficulty", "length", "extra")


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
        data = read_yaml(path, "attribute file")
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a mapping of attribute names to lists of values")
        unknown = sorted(str(key) for key in data if key not in ATTRIBUTE_KEYS)
        if unknown:
            raise DataError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(ATTRIBUTE_KEYS)}; "
                            "other attributes go under 'extra')")
        extra = data.get("extra") or {}
        if not isinstance(extra, dict) or not all(isinstance(k, str) and k.strip() for k in extra):
            raise DataError(f"{path}: 'extra' must map attribute names to lists of values")
        shadowing = sorted(set(extra) & set(ATTRIBUTE_KEYS))
        if shadowing:
            raise DataError(f"{path}: 'extra.{shadowing[0]}' repeats a main attribute; set it at the top level")
        lists = {key: data.get(key) for key in ("domain", "difficulty", "length")} | {f"extra.{k}": v for k, v in extra.items()}
        for key, values in lists.items():
            if values is not None and (not isinstance(values, list) or not values
                                       or not all(isinstance(v, str) and v.strip() for v in values)):
                raise DataError(f"{path}: {key!r} must be a non-empty list of non-blank strings")
        if not data.get("domain"):
            raise DataError(f"{path}: 'domain' is required")
        return cls(
            domain=data["domain"],
            difficulty=data.get("difficulty") or list(DEFAULT_DIFFICULTIES),
            length=data.get("length") or list(DEFAULT_LENGTHS),
            extra=extra,
        )

    def values(self) -> dict[str, list[str]]:
        """Every attribute's values by name, the extras beside domain, difficulty and length."""
        return {"domain": self.domain, "difficulty": self.difficulty, "length": self.length} | self.extra

    def save(self, path: str | Path) -> None:
        data = {"domain": self.domain, "difficulty": self.difficulty, "length": self.length, "extra": self.extra}
        atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    @classmethod
    def from_spec(cls, spec: str | Path, base: str | Path | None = None) -> AttributeSet:
        """The attribute set a spec names: a shipped example (``scifact``, ``demo``) or a YAML file, a
        relative path read from ``base`` (the config's folder in a pipeline run, else the working
        directory). See :func:`attribute_file`."""
        return cls.load(attribute_file(spec, base))

    @classmethod
    def example(cls, name: str = "scifact") -> AttributeSet:
        """An attribute file shipped with syneg (``scifact``: the paper's values)."""
        if not is_shipped(name):
            raise FileNotFoundError(f"No shipped attribute file {name!r} (shipped: {', '.join(shipped_examples())})")
        return cls.load(example_path(name))


def shipped_examples() -> list[str]:
    """The names of the attribute files shipped with syneg."""
    return sorted(path.stem for path in example_path("scifact").parent.glob("*.yaml"))


def is_shipped(spec: str | Path) -> bool:
    """Whether an attribute spec is the name of a shipped example: a bare name (no folder, no suffix)
    that syneg ships. Shipped names come first, so a folder named ``demo`` where syneg runs changes nothing."""
    return isinstance(spec, str) and spec in shipped_examples()


def attribute_file(spec: str | Path, base: str | Path | None = None) -> Path:
    """The one rule for what an attribute spec names, in the pipeline, the CLI and the report alike:
    a shipped example's name first; otherwise a YAML file, a relative path being read from ``base``
    (the working directory when None).

    >>> attribute_file("scifact").name, attribute_file("attributes/mine.yaml", "/exp").as_posix()
    ('scifact.yaml', '/exp/attributes/mine.yaml')
    """
    if is_shipped(spec):
        return example_path(str(spec))
    path = Path(spec)
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if not path.exists() and Path(spec).name == str(spec) and not Path(spec).suffix:
        raise FileNotFoundError(f"No attribute file {str(spec)!r} and no shipped example of that name "
                                f"(shipped: {', '.join(shipped_examples())})")
    return path


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

    Documents are sampled with ``seed``, shown ``per_prompt`` at a time (quoted, first 300 characters each),
    and the answers counted; failed prompts are skipped. Difficulty and length get generic defaults.
    """
    templates = templates or PromptTemplates()
    ids = sorted(dataset.corpus)
    sample = random.Random(seed).sample(ids, min(sample_size, len(ids)))
    counts: Counter[str] = Counter()
    for start in range(0, len(sample), per_prompt):
        texts = [quoted(dataset.corpus[i].full_text[:300])[0] for i in sample[start : start + per_prompt]]
        prompt = templates.render("propose_domains", samples="\n".join(f"- {t}" for t in texts))
        request = ChatRequest.chat(None, prompt, schema=DOMAINS_SCHEMA, max_tokens=60, temperature=0.2, seed=seed)
        try:
            answer, _ = await client.generate(request, DomainsAnswer)
        except LLMError as error:
            if error.fatal:
                raise
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


def attributes_for_run(*args: Any, **kwargs: Any) -> AttributeSet | None:
    """The attribute set of a synthesis run, as ``syneg synthesize`` and ``syneg run`` choose it: the set
    alone of :func:`choose_attributes`, which takes the same arguments."""
    return choose_attributes(*args, **kwargs)[0]


def choose_attributes(
    spec: str | Path | None,
    ablation: str,
    proposed: Path,
    dataset: BeirDataset | None,
    client: LLMClient,
    seed: int = 0,
) -> tuple[AttributeSet | None, dict[str, Any]]:
    """The attribute set of a synthesis run, and the record of the choice that the synthesize stage keeps:
    ``source`` (``shipped``, ``file``, ``proposed`` or ``none``), the file's ``name`` and the ``values``.

    The ablations need none; otherwise a given file or shipped example (``spec``) wins, else the set
    the LLM proposed earlier at ``proposed`` is reused (the user may have edited it), or the LLM
    proposes one from a corpus sample and it is saved there.
    """
    if ablation != "none":
        return None, {"source": "none", "name": None, "values": {}}
    if spec is not None:
        attributes = AttributeSet.from_spec(spec)
        return attributes, spec_record(spec) | {"values": attributes.values()}
    if proposed.is_file():
        attributes = AttributeSet.load(proposed)
    elif dataset is None:
        raise ValueError("Pairs without a corpus (a training-set jsonl) give nothing to propose attributes from: "
                         "name an attribute file or a shipped example (--attributes)")
    else:
        attributes = propose_attributes_sync(dataset, client, seed=seed)
        attributes.save(proposed)
        logger.info("Proposed domains %s; saved to %s (edit it and rerun).", ", ".join(attributes.domain), proposed)
    return attributes, {"source": "proposed", "name": proposed.name, "values": attributes.values()}


def spec_record(spec: str | Path) -> dict[str, Any]:
    """Where an attribute spec's values come from, as a record keeps it: the file's name, no folder (a
    record holds no path of the machine)."""
    return {"source": "shipped" if is_shipped(spec) else "file", "name": Path(spec).name}
