"""bench/reader_likelihood.py: a reader model's log-probabilities of a negative's tokens, after its positive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_auc_counts_ties_half(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from reader_likelihood import auc

    assert auc([3, 2], [1, 0]) == 1.0 and auc([0], [1]) == 0.0 and auc([1, 0], [1, 0]) == 0.5


@pytest.mark.slow
def test_a_real_reader_finds_a_mangled_key_word_less_likely_than_the_word_its_positive_writes(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from reader_likelihood import load_reader, token_log_probs

    llm = load_reader("smollm2-135m", n_ctx=512, threads=1)
    positive = ("The p75 neurotrophin receptor promotes glioma invasion. Glioma cells that express the receptor "
                "invade the brain more than glioma cells that do not.")
    written = "Glioma invasion and the immune response in glioma."
    mangled = "Glomeroma invasion and the immune response in glomeroma."
    right, wrong = (token_log_probs(llm, positive, text, 160, 300) for text in (written, mangled))
    assert len(right) == len(llm.tokenize(written.encode(), add_bos=False))
    assert right.sum() > wrong.sum()
    # A negative that copies its positive is all but certain after its first words; read one token off, it
    # would be near random.
    copied = token_log_probs(llm, positive, positive, 160, 300)
    assert np.median(copied) > -0.5, np.median(copied)
