"""An incremental BM25 inverted index (Robertson & Zaragoza; Lucene's non-negative idf).

Documents can be added, replaced and removed in time proportional to their own length; a
query costs time proportional to the postings of its terms, not to the collection. For
multi-term queries a MaxScore-style cut (Turtle & Flood 1995) skips the postings of frequent
terms once enough candidates are known to beat any document that holds only those terms.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

_WORD: Final = re.compile(r"\w+", re.UNICODE)

#: A small English stopword list: question and function words that carry no topic.
# fmt: off
STOPWORDS: Final = frozenset(
    (
        "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are",
        "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but",
        "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for",
        "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself",
        "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself",
        "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on",
        "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same",
        "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them",
        "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too",
        "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
        "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself",
        "yourselves", "s", "t", "d", "ll", "m", "o", "re", "ve", "y",
    )
)
# fmt: on


def tokenize(text: str) -> list[str]:
    """Lowercased unicode word tokens without stopwords; numbers such as ``7741`` are kept."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and w != "_"]


def _string_leaves(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _string_leaves(v, out)
    elif isinstance(value, list | tuple):
        for v in value:
            _string_leaves(v, out)


def document_text(data: dict[str, Any]) -> str:
    """The searchable text of a memory: ``content`` (string leaves if nested), title, tags."""
    parts: list[str] = []
    for key in ("title", "content", "tags"):
        if key in data:
            _string_leaves(data[key], parts)
    return " ".join(parts)


class BM25Index:
    """Inverted index over string document ids with incremental add/remove."""

    __slots__ = ("_doc_len", "_doc_terms", "_postings", "_total_len", "b", "k1")

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._postings: dict[str, dict[str, int]] = {}
        self._doc_terms: dict[str, dict[str, int]] = {}
        self._doc_len: dict[str, int] = {}
        self._total_len = 0

    def __len__(self) -> int:
        return len(self._doc_len)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._doc_len

    @property
    def avgdl(self) -> float:
        return self._total_len / len(self._doc_len) if self._doc_len else 0.0

    def df(self, term: str) -> int:
        posting = self._postings.get(term)
        return len(posting) if posting else 0

    def add(self, doc_id: str, text: str | Iterable[str]) -> None:
        """Index ``doc_id`` (replacing any previous version) from text or a token list."""
        tokens = tokenize(text) if isinstance(text, str) else list(text)
        if doc_id in self._doc_len:
            self.remove(doc_id)
        tf = dict(Counter(tokens))
        postings = self._postings
        for term, n in tf.items():
            posting = postings.get(term)
            if posting is None:
                postings[term] = {doc_id: n}
            else:
                posting[doc_id] = n
        self._doc_terms[doc_id] = tf
        self._doc_len[doc_id] = len(tokens)
        self._total_len += len(tokens)

    def remove(self, doc_id: str) -> bool:
        """Drop ``doc_id`` from the index; True when it was there."""
        tf = self._doc_terms.pop(doc_id, None)
        if tf is None:
            return False
        postings = self._postings
        for term in tf:
            posting = postings[term]
            del posting[doc_id]
            if not posting:
                del postings[term]
        self._total_len -= self._doc_len.pop(doc_id)
        return True

    def idf(self, term: str) -> float:
        n = len(self._doc_len)
        df = self.df(term)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def scores(self, query: str | Iterable[str], top: int | None = None) -> dict[str, float]:
        """BM25 score of every document matching at least one query term.

        With ``top`` set, only the ``top`` best documents are guaranteed to be present (and
        exactly scored); documents that cannot reach the top are skipped early.
        """
        terms = tokenize(query) if isinstance(query, str) else list(query)
        if not self._doc_len:
            return {}
        k1, b = self.k1, self.b
        k1p1 = k1 + 1.0
        c1 = k1 * (1.0 - b)
        c2 = k1 * b / self.avgdl if self.avgdl else 0.0
        doc_len = self._doc_len
        qtf = Counter(t for t in terms if t in self._postings)
        # Rarest (highest idf) terms first; weight repeats of a query term.
        plan = sorted(
            ((self.idf(t) * n, self._postings[t]) for t, n in qtf.items()),
            key=lambda item: len(item[1]),
        )
        # Upper bound of what the terms from position i onward can add to any document.
        bounds = [0.0] * (len(plan) + 1)
        for i in range(len(plan) - 1, -1, -1):
            bounds[i] = bounds[i + 1] + plan[i][0] * k1p1
        acc: dict[str, float] = {}
        for i, (w, posting) in enumerate(plan):
            wk = w * k1p1
            if top is not None and len(acc) >= top and i > 0:
                threshold = heapq.nlargest(top, acc.values())[-1]
                if threshold > bounds[i]:
                    # New documents cannot make the top: only refine the known ones,
                    # walking whichever side is smaller.
                    if len(acc) <= len(posting):
                        for d, known in acc.items():
                            n = posting.get(d)
                            if n is not None:
                                acc[d] = known + wk * n / (n + c1 + c2 * doc_len[d])
                    else:
                        for d, n in posting.items():
                            score = acc.get(d)
                            if score is not None:
                                acc[d] = score + wk * n / (n + c1 + c2 * doc_len[d])
                    continue
            get = acc.get
            for d, n in posting.items():
                acc[d] = get(d, 0.0) + wk * n / (n + c1 + c2 * doc_len[d])
        return acc

    def top(self, query: str | Iterable[str], k: int) -> list[tuple[str, float]]:
        """The ``k`` best (doc_id, score) pairs, best first."""
        acc = self.scores(query, top=k)
        return heapq.nlargest(k, acc.items(), key=lambda item: item[1])
