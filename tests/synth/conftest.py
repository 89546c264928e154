"""One dense encoder for every synthesis test: loading all-MiniLM-L6-v2 is the slow part of a test."""

from __future__ import annotations

import pytest

from syneg.retrieval.encoder import DenseEncoder


@pytest.fixture(scope="session")
def encoder() -> DenseEncoder:
    return DenseEncoder("default", use_cache=False, show_progress=False)
