"""BM25 search over the products' indexed text (bm25s), standing in for WebShop's Lucene index.

WebShop indexed each product's ``contents`` with pyserini (Lucene): the English analyzer (standard
tokenizer, possessive "'s" removed, lower case, Lucene's English stop words, Porter stemmer) and BM25
with k1 = 0.9, b = 0.4, returning the 50 best documents. Here the same steps are written in Python:
tokens are runs of letters and digits that may hold inner "." or apostrophes ("6.76", "l'eau"), which
is close to, not the same as, Lucene's Unicode word breaking; PyStemmer's "porter" algorithm is the
original Porter stemmer that Lucene's filter implements. Scoring is bm25s's Lucene variant; ties keep
index order (Lucene breaks ties by document number), and only documents matching at least one query
term are returned, as Lucene does.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

SEARCH_RETURN_N = 50  # WebShop returns at most 50 products per query
K1, B = 0.9, 0.4  # pyserini's BM25 defaults

# Lucene's English stop word set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET).
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split()
)
_TOKEN = re.compile(r"[^\W_]+(?:['’.][^\W_]+)*")
_POSSESSIVE = re.compile(r"['’]s$")


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # PyStemmer

    return Stemmer.Stemmer("porter")


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop-word-free, Porter-stemmed tokens of ``text``."""
    words = [_POSSESSIVE.sub("", w) for w in _TOKEN.findall(text.lower())]
    return _stemmer().stemWords([w for w in words if w and w not in STOP_WORDS])


class SearchIndex:
    """A BM25 index over (id, text) documents, built in memory (about half a second for 1000)."""

    def __init__(self, ids: list[str], texts: list[str]):
        import bm25s

        if len(ids) != len(texts) or not ids:
            raise ValueError("the search index needs one text per id, and at least one document")
        self.ids = list(ids)
        self._bm25 = bm25s.BM25(method="lucene", k1=K1, b=B)
        self._bm25.index([tokenize(t) for t in texts], show_progress=False)

    def search(self, query: str, k: int = SEARCH_RETURN_N) -> list[str]:
        """Ids of the ``k`` best documents for ``query``, best first (deterministic)."""
        tokens = tokenize(query)
        if not tokens:
            return []
        scores = self._bm25.get_scores(tokens)
        order = np.argsort(-scores, kind="stable")[:k]
        return [self.ids[i] for i in order if scores[i] > 0]
