"""Exact BM25 top-k of the documents reached only through frequent terms: a best-first walk
over classes of equal score (the in-memory index and the SQLite postings cache share it).

A document holding only frequent query terms scores by its length and its tf of each of them,
so the documents fall into classes ``(dl, tf per term, 0 for absent)`` of equal score. For
each length, the tf choices of all frequent terms but one (the *split* term, the one with the
most groups, passed last) are walked best first through a lattice (a child lowers one term's
tf, so it never scores above its parent); a lattice node's documents (set intersections, C
speed) are then split by the split term's groups of that length, which yields only the classes
that hold documents (most tf combinations hold none: walking the split term in the lattice too
would visit them all). Lattice nodes are bounded by their score plus the split term's best
contribution, classes by their exact score; the walk stops once nothing left can beat the k-th
best score found (in the spirit of the Threshold Algorithm of Fagin, Lotem & Naor 2003).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", int, str)
H = TypeVar("H")

#: A frequent term's groups of one length: ``(contribution, handle)``, best contribution first
#: (the handle gives the group's documents through ``members``).
Row = Sequence[tuple[float, H]]


class ClassWalk(Generic[K, H]):
    """The inputs of one walk: per frequent term (split term last when there are three or more)
    a table ``dl -> Row``; ``members(handle)`` is a group's documents (a set the walk does not
    change), ``absent(j, dl)`` the documents of length ``dl`` holding term ``j`` (as sets whose
    union they are: a class drops them with one multi-set difference, no union is built)."""

    __slots__ = ("absent", "members", "tables")

    def __init__(
        self,
        tables: Sequence[Mapping[int, Row[H]]],
        members: Callable[[H], set[K] | frozenset[K]],
        absent: Callable[[int, int], Sequence[Collection[K]]],
    ) -> None:
        self.tables: Sequence[Mapping[int, Row[H]]] = tables
        self.members: Callable[[H], set[K] | frozenset[K]] = members
        self.absent: Callable[[int, int], Sequence[Collection[K]]] = absent

    def top(
        self,
        k: int,
        *,
        seed: Iterable[tuple[float, K]] = (),
        scored: Collection[K] = frozenset(),
        keep: Callable[[set[K] | frozenset[K], int], set[K]] | None = None,
    ) -> list[tuple[K, float]]:
        """The ``k`` best ``(doc, score)``, best first, among ``seed`` (documents scored
        exactly elsewhere, ``scored`` holds them all) and the documents of the classes.
        ``keep(docs, enough)`` returns the documents to rank (at least ``enough`` of them
        when there are), applied to each class before it counts."""
        tables, members, absent = self.tables, self.members, self.absent
        # min-heap of (score, tiebreak, docs)
        classes: list[tuple[float, int, set[K] | frozenset[K]]] = []
        tick = itertools.count()
        for s, d in seed:
            classes.append((s, next(tick), {d}))
        heapq.heapify(classes)
        count = len(classes)  # documents held by ``classes``
        # With one or two frequent terms the full lattice is small; splitting would intersect
        # the large groups of a lone lattice term instead.
        m = len(tables) - (len(tables) >= 3)  # terms in the lattice
        # Frontier: (-bound, tiebreak, dl, tf choice per lattice term, last moved, docs).
        # A lattice node has docs None; a class (exact score) has its choice None. Choice
        # ``len(row)`` means "term absent"; children only move terms >= ``last``, so every
        # node is generated once (from the parent that undoes its last move).
        walk: list[
            tuple[float, int, int, tuple[int, ...] | None, int, set[K] | frozenset[K] | None]
        ] = []
        rows_at: dict[int, list[Row[H]]] = {}
        for dl in set().union(*tables):
            rows: list[Row[H]] = [table.get(dl, ()) for table in tables]
            if m == len(tables):
                rows.append(())  # no split term
            rows_at[dl] = rows
            top_score = sum(row[0][0] for row in rows if row)
            walk.append((-top_score, next(tick), dl, (0,) * m, 0, None))
        heapq.heapify(walk)
        push, pop = heapq.heappush, heapq.heappop
        while walk:
            neg, _, dl, choice, last, docs = pop(walk)
            score = -neg
            if score <= 0.0 or (count >= k and score <= classes[0][0]):
                break
            if choice is None:  # a class: its documents, exact score
                assert docs is not None
                if keep is not None:
                    docs = keep(docs, k)
                    if not docs:
                        continue
                push(classes, (score, next(tick), docs))
                count += len(docs)
                while count - len(classes[0][2]) >= k:
                    count -= len(pop(classes)[2])
                continue
            rows = rows_at[dl]
            split_row = rows[m]
            node: tuple[int, ...] = choice
            i: int
            for i in range(last, m):
                c = node[i]
                if c < len(rows[i]):  # lower term i's tf one step (or drop it)
                    below = rows[i][c + 1][0] if c + 1 < len(rows[i]) else 0.0
                    child = (*node[:i], c + 1, *node[i + 1 :])
                    push(walk, (neg + rows[i][c][0] - below, next(tick), dl, child, i, None))
            base = 0.0  # the lattice terms' part of the score (summed as a full pass would)
            present: list[set[K] | frozenset[K]] = []
            missing: list[int] = []  # absent terms that have documents of length dl
            for j, c in enumerate(node):
                row = rows[j]
                if c < len(row):
                    base += row[c][0]
                    present.append(members(row[c][1]))
                elif row:
                    missing.append(j)
            parts: list[tuple[float, set[K] | frozenset[K]]] = []
            if present:
                present.sort(key=len)
                rest = present[0].intersection(*present[1:])  # a new set of our own
                for contribution, handle in split_row:
                    if not rest:
                        break
                    both = rest & members(handle)
                    if both:
                        parts.append((base + contribution, both))
                        rest -= both
                if rest:  # the split term is absent
                    parts.append((base, rest))
            else:  # every lattice term absent: the split term's groups, as they are
                parts = [(base + contribution, members(h)) for contribution, h in split_row]
            if count >= k:
                parts = [(sc, part) for sc, part in parts if sc > classes[0][0]]
            for sc, part in parts:
                for j in missing:  # an absent term with docs of length dl: drop those
                    part = part.difference(*absent(j, dl))
                part = part.difference(scored)  # already scored exactly
                if part:
                    push(walk, (-sc, next(tick), dl, None, 0, part))
        out: list[tuple[K, float]] = []
        for score, _, part in sorted(classes, reverse=True):
            out.extend((d, score) for d in sorted(part, reverse=True)[: k - len(out)])
            if len(out) >= k:
                break
        return out
