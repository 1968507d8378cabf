"""An incremental BM25 inverted index (Robertson & Zaragoza; Lucene's non-negative idf).

Documents can be added, replaced and removed in time proportional to their own length.
Queries do not touch the whole collection: rare terms are scored through their postings, and
frequent terms (long postings) also keep their documents grouped by ``(tf, doc length)``, the
only inputs of a term's BM25 contribution. Those groups are visited best score first (a
best-first walk over classes of equal score, in the spirit of the Threshold Algorithm of Fagin,
Lotem & Naor 2003), so the top-k of the documents reached only through frequent terms is found
exactly, stopping once no unvisited document can make it.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from deep_tree_echo.aar_core.memory._classwalk import ClassWalk
from deep_tree_echo.aar_core.memory.analysis import STOPWORDS, analyze

__all__ = ["STOPWORDS", "BM25Index", "document_text", "tokenize"]


def tokenize(text: str) -> list[str]:
    """Index terms of ``text``: the analysis every store's search uses (see ``analysis``).

    Lowercased, possessive ``'s`` dropped, US spellings, stemmed, stopwords out, numbers kept.
    """
    return analyze(text)


def _string_leaves(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _string_leaves(v, out)
    elif isinstance(value, list | tuple):
        for v in value:
            _string_leaves(v, out)


def _same(members: set[str]) -> set[str]:
    return members


def document_text(data: dict[str, Any]) -> str:
    """The searchable text of a memory: ``content`` (string leaves if nested), title, tags."""
    parts: list[str] = []
    for key in ("title", "content", "tags"):
        if key in data:
            _string_leaves(data[key], parts)
    return " ".join(parts)


class BM25Index:
    """Inverted index over string document ids with incremental add/remove and exact top-k."""

    __slots__ = (
        "_doc_len",
        "_doc_terms",
        "_groups",
        "_postings",
        "_total_len",
        "b",
        "k1",
        "long_postings",
    )

    def __init__(self, k1: float = 1.2, b: float = 0.75, *, long_postings: int = 1024) -> None:
        self.k1 = k1
        self.b = b
        #: Postings at least this long also get impact groups (dropped below a quarter of it).
        self.long_postings = max(1, long_postings)
        self._postings: dict[str, dict[str, int]] = {}
        # term -> (tf, doc length) -> doc ids; only for terms with long postings.
        self._groups: dict[str, dict[tuple[int, int], set[str]]] = {}
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
        # built item by item: untracked by the collector (dict(Counter) is tracked until a full
        # collection, and one per stored memory would keep triggering them)
        tf = {term: n for term, n in Counter(tokens).items()}
        dl = len(tokens)
        postings, groups, long_postings = self._postings, self._groups, self.long_postings
        for term, n in tf.items():
            posting = postings.get(term)
            if posting is None:
                posting = postings[term] = {}
            posting[doc_id] = n
            group = groups.get(term)
            if group is not None:
                members = group.get((n, dl))
                if members is None:
                    group[(n, dl)] = {doc_id}
                else:
                    members.add(doc_id)
            elif len(posting) >= long_postings:
                self._doc_len[doc_id] = dl  # needed by the grouping below
                self._build_groups(term)
        self._doc_terms[doc_id] = tf
        self._doc_len[doc_id] = dl
        self._total_len += dl

    def _build_groups(self, term: str) -> None:
        group: dict[tuple[int, int], set[str]] = {}
        doc_len = self._doc_len
        for d, n in self._postings[term].items():
            key = (n, doc_len[d])
            members = group.get(key)
            if members is None:
                group[key] = {d}
            else:
                members.add(d)
        self._groups[term] = group

    def remove(self, doc_id: str) -> bool:
        """Drop ``doc_id`` from the index; True when it was there."""
        tf = self._doc_terms.pop(doc_id, None)
        if tf is None:
            return False
        dl = self._doc_len.pop(doc_id)
        postings, groups = self._postings, self._groups
        for term, n in tf.items():
            posting = postings[term]
            del posting[doc_id]
            if not posting:
                del postings[term]
                groups.pop(term, None)
                continue
            group = groups.get(term)
            if group is not None:
                if len(posting) < self.long_postings // 4:
                    del groups[term]
                else:
                    members = group[(n, dl)]
                    members.discard(doc_id)
                    if not members:
                        del group[(n, dl)]
        self._total_len -= dl
        return True

    def idf(self, term: str) -> float:
        n = len(self._doc_len)
        df = self.df(term)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def _weights(self, query: str | Iterable[str]) -> dict[str, float]:
        """Query term -> idf times its repeat count in the query (terms absent from the index
        are dropped)."""
        terms = tokenize(query) if isinstance(query, str) else list(query)
        qtf = Counter(t for t in terms if t in self._postings)
        return {t: self.idf(t) * n for t, n in qtf.items()}

    def scores(self, query: str | Iterable[str]) -> dict[str, float]:
        """BM25 score of every document matching at least one query term (a full pass)."""
        weights = self._weights(query)
        if not weights:
            return {}
        k1p1, c1, c2 = self._constants()
        doc_len = self._doc_len
        acc: dict[str, float] = {}
        get = acc.get
        for term, w in weights.items():
            wk = w * k1p1
            for d, n in self._postings[term].items():
                acc[d] = get(d, 0.0) + wk * n / (n + c1 + c2 * doc_len[d])
        return acc

    def _constants(self) -> tuple[float, float, float]:
        k1, b, avgdl = self.k1, self.b, self.avgdl
        return k1 + 1.0, k1 * (1.0 - b), (k1 * b / avgdl if avgdl else 0.0)

    def top(
        self,
        query: str | Iterable[str],
        k: int,
        keep: Callable[[str], bool] | None = None,
    ) -> list[tuple[str, float]]:
        """The ``k`` best ``(doc_id, score)`` pairs, best first, exactly as a full pass would
        rank them; ``keep`` restricts the ranking to the documents it accepts."""
        weights = self._weights(query)
        if not weights or k <= 0:
            return []
        k1p1, c1, c2 = self._constants()
        doc_len, postings, groups = self._doc_len, self._postings, self._groups
        long_terms = [(t, w * k1p1) for t, w in weights.items() if t in groups]
        acc: dict[str, float] = {}
        get = acc.get
        # 1. Rare terms: walk their (short) postings.
        for term, w in weights.items():
            if term in groups:
                continue
            wk = w * k1p1
            for d, n in postings[term].items():
                acc[d] = get(d, 0.0) + wk * n / (n + c1 + c2 * doc_len[d])
        if keep is not None:
            acc = {d: s for d, s in acc.items() if keep(d)}
        # 2. Frequent terms add to the documents found so far by random access...
        for term, wk in long_terms:
            posting = postings[term]
            for d, s in acc.items():
                hit = posting.get(d)
                if hit is not None:
                    acc[d] = s + wk * hit / (hit + c1 + c2 * doc_len[d])
        if not long_terms:
            return heapq.nlargest(k, acc.items(), key=lambda item: item[1])
        # 3. ...and the documents holding only frequent terms are enumerated best score first
        # (``_classwalk``), the split term (the one with the most groups) last.
        long_terms.sort(key=lambda item: len(groups[item[0]]))
        tables: list[dict[int, list[tuple[float, set[str]]]]] = []
        for term, wk in long_terms:
            table: dict[int, list[tuple[float, set[str]]]] = {}
            for (n, dl), members in groups[term].items():
                table.setdefault(dl, []).append((wk * n / (n + c1 + c2 * dl), members))
            for row in table.values():
                row.sort(key=lambda item: item[0], reverse=True)
            tables.append(table)
        whole = [postings[term] for term, _ in long_terms]
        walk: ClassWalk[str, set[str]] = ClassWalk(
            tables, _same, lambda j, _dl: (whole[j],)
        )
        best = heapq.nlargest(k, acc.items(), key=lambda item: item[1])
        return walk.top(
            k,
            seed=[(s, d) for d, s in best],
            scored=acc,
            keep=None if keep is None else lambda docs, _enough: {d for d in docs if keep(d)},
        )
