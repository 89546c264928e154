"""BM25 retrieval with bm25s (Lucene's BM25 variant; English stopwords; title and text indexed)."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from syneg.data import Document
from syneg.retrieval.search import SearchResult


class BM25Retriever:
    """A bm25s index over a corpus.

    Args:
        corpus: ``{doc id: Document}``; the title and text are indexed together.
        method: bm25s scoring variant; ``lucene`` matches Lucene/Elasticsearch.
        k1, b: BM25 parameters (bm25s defaults).
        stopwords: Stopword list name for bm25s (``en``) or None.
        stemmer: A PyStemmer language (``english``) or None; needs the PyStemmer package.

    Example::

        >>> from syneg.data import load_beir, demo_path
        >>> data = load_beir(demo_path(), split="test")
        >>> retriever = BM25Retriever(data.corpus)
        >>> result = retriever.search(["How long does caffeine stay in the body?"], k=3)
        >>> len(result.doc_ids[0])
        3
    """

    def __init__(
        self,
        corpus: dict[str, Document],
        method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"] = "lucene",
        k1: float = 1.5,
        b: float = 0.75,
        stopwords: str | None = "en",
        stemmer: str | None = None,
        show_progress: bool = False,
    ) -> None:
        import bm25s
        from bm25s.tokenization import Tokenizer

        # bm25s sets its logger to DEBUG when imported, which would print index internals.
        logging.getLogger("bm25s").setLevel(logging.WARNING)

        stem = None
        if stemmer is not None:
            try:
                import Stemmer
            except ImportError:
                raise ImportError("BM25 stemming needs PyStemmer: pip install PyStemmer") from None
            stem = Stemmer.Stemmer(stemmer).stemWords
        self.doc_ids = list(corpus)
        self._position = {doc_id: i for i, doc_id in enumerate(self.doc_ids)}
        self.show_progress = show_progress
        self.tokenizer = Tokenizer(stopwords=stopwords, stemmer=stem)
        tokens = self.tokenizer.tokenize([corpus[d].full_text for d in self.doc_ids], show_progress=show_progress)
        self.index = bm25s.BM25(method=method, k1=k1, b=b)
        self.index.index(tokens, show_progress=show_progress)

    def search(self, queries: list[str], k: int = 100) -> SearchResult:
        """The k best documents for each query; documents scoring 0 (no shared term) are left out."""
        tokens = self.tokenizer.tokenize(queries, update_vocab=False, show_progress=False)
        k_eff = min(k, len(self.doc_ids))
        indices, scores = self.index.retrieve(tokens, k=k_eff, show_progress=self.show_progress, n_threads=0)
        doc_ids, kept_scores = [], []
        for row_indices, row_scores in zip(indices, scores, strict=True):
            keep = row_scores > 0
            doc_ids.append([self.doc_ids[i] for i in row_indices[keep]])
            kept_scores.append(np.asarray(row_scores[keep], dtype=np.float32))
        return SearchResult(doc_ids=doc_ids, scores=kept_scores)

    def score(self, query: str, doc_ids: list[str]) -> np.ndarray:
        """BM25 scores of one query against given documents (0 for a document sharing no term)."""
        token_ids = self.tokenizer.tokenize([query], update_vocab=False, show_progress=False)[0]
        all_scores = self.index.get_scores_from_ids(token_ids)
        return np.array([all_scores[self._position[d]] for d in doc_ids], dtype=np.float32)
