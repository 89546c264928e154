"""The synthesize stage in one call: the one way into it for ``syneg synthesize``, ``syneg run`` and
the Python API alike.

:func:`synthesize` owns what a synthesis run needs besides its options: the (query, positive) pairs,
the LLM client (built from the options and closed at the end, unless the caller lends one), the
attribute set (a file or shipped example, none for the ablations, else domains the LLM proposes from
the corpus and keeps beside the output) and the :class:`~syneg.synth.Synthesizer`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from syneg.data import BeirDataset, load_beir
from syneg.engine.synthesis import check_backend, ray_client
from syneg.llm import LLMClient
from syneg.synth.attributes import choose_attributes
from syneg.synth.options import SynthesizeOptions
from syneg.synth.prompts import PromptTemplates
from syneg.synth.pairs import Pair, pairs_from_beir, pairs_from_training_set, style_examples_for
from syneg.synth.synthesize import Synthesizer


def synthesize(
    data: BeirDataset | str | Path | Iterable[Pair],
    output: str | Path,
    options: SynthesizeOptions | None = None,
    *,
    split: str = "train",
    limit: int | None = None,
    corpus: BeirDataset | None = None,
    proposed_attributes: str | Path | None = None,
    client: LLMClient | None = None,
    use_cache: bool = True,
    encoder: Any = None,
    show_progress: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """The verb: synthesize negatives into ``output`` for the (query, positive) pairs of ``data``.

    Args:
        data: A :class:`BeirDataset` (its qrels pairs), a BEIR folder (loaded with ``split``), a
            training-set jsonl (its pairs, e.g. ``syneg mine``'s output) or :class:`Pair` objects.
        output: Training-set jsonl to append to; pairs already in it are skipped (with ``refill``, those
            short of ``negatives_per_pair`` negatives are synthesized again).
        options: A :class:`SynthesizeOptions` (defaults: its own); ``overrides`` set its fields by
            name, e.g. ``negatives_per_pair=2``.
        limit: Only the first ``limit`` pairs.
        corpus: The dataset to propose domains from when ``data`` has no corpus (a jsonl or pairs).
        proposed_attributes: Where proposed attributes are kept and read back on a rerun (the user may
            edit them); default ``OUTPUT.attributes.yaml``.
        client: An LLM client to use instead of one built from the options; the caller closes it.
            With ``engine="ray"`` the built client sends the requests through Ray Data's HTTP processor, or
            with ``backend="vllm"`` its vLLM engine processor (:mod:`syneg.engine.synthesis`), and caches
            answers in ``<cache>.shards``.
        use_cache: With a built client, answer requests asked before from the request cache.
        encoder: The dense encoder of the checks (default: the embedded all-MiniLM-L6-v2).

    Returns the run statistics (synthesis and LLM usage; ``quoted_texts``, what quoting changed in the texts
    the prompts show, and ``repaired_texts``, the dataset's lines that were not valid Unicode) and, as
    ``attributes``, where the attribute values came from and the values themselves (see
    :func:`syneg.synth.choose_attributes`).

    Example::

        >>> import syneg
        >>> train = syneg.load_beir(syneg.demo_path(), split="train")
        >>> stats = syneg.synthesize(train, "demo-synthetic.jsonl", limit=2, attributes="demo")  # doctest: +SKIP
        >>> sorted(k for k in stats if k in ("accepted", "cache_hits", "rejected", "requests"))  # doctest: +SKIP
        ['accepted', 'cache_hits', 'rejected', 'requests']
    """
    chosen = (options or SynthesizeOptions()).model_dump(include=set(SynthesizeOptions.model_fields))
    options = SynthesizeOptions.model_validate(chosen | overrides)
    output = Path(output)
    if client is None:
        check_backend(options)  # before the data is read: e.g. vLLM not installed
    pairs, dataset = _pairs(data, split, limit)
    proposed = Path(proposed_attributes) if proposed_attributes else output.with_name(output.name + ".attributes.yaml")
    owned = client is None
    engine = options.ray_engine()
    if client is None:
        client = ray_client(options, engine, use_cache) if engine is not None else options.client(use_cache)
    try:
        attributes, chosen = choose_attributes(options.attributes, options.ablation, proposed, corpus or dataset, client,
                                               seed=options.seed)
        templates = PromptTemplates(options.prompts)
        synthesizer = Synthesizer(
            client,
            encoder=encoder,
            attributes=attributes,
            negatives_per_pair=options.negatives_per_pair,
            max_rounds=options.max_rounds,
            ablation=options.ablation,
            critique=options.critique,
            checks=options.check_config(),
            max_words=options.max_words,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            seed=options.seed,
            # Under Ray the pairs in flight fill each batch of requests sent through Ray Data.
            concurrency=options.concurrency if engine is not None else options.pairs_in_flight,
            templates=templates,
            prompt_style=options.prompt_style,
            aspects_per_reflection=options.aspects_per_reflection,
            refill=options.refill,
            trim_cut_fields=options.trim_cut_fields,
            style_examples=style_examples_for(templates, corpus or dataset, seed=options.seed),
        )
        # Texts of the dataset that were not valid Unicode, repaired when it was read (see syneg.data.load_beir).
        repaired = dataset.repaired if dataset is not None else {}
        return synthesizer.run(pairs, output, show_progress) | {"attributes": chosen, "repaired_texts": repaired}
    finally:
        if owned:
            asyncio.run(client.aclose())


def _pairs(data: BeirDataset | str | Path | Iterable[Pair], split: str, limit: int | None) -> tuple[list[Pair], BeirDataset | None]:
    """The pairs of ``data``, and its dataset when it has one (to propose attributes from)."""
    if isinstance(data, (str, Path)):
        if Path(data).is_file():
            return pairs_from_training_set(data, limit=limit), None
        data = load_beir(data, split=split)
    if isinstance(data, BeirDataset):
        return pairs_from_beir(data, limit=limit), data
    return list(data)[:limit], None
