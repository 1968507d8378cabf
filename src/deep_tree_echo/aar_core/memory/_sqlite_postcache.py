"""Frequent terms' postings of a SQLite file held in the process, exact at every search.

A query whose words are in most memories makes any pruned scan of the postings index read
and score most of them one by one (tens of thousands at 100k memories). The in-memory index
answers it by walking classes of equal score over ``(tf, dl)`` groups of document ids as sets
(``_classwalk``); this cache gives the SQLite store the same groups for its *frequent* terms
(df >= ``min_df``), held compactly (one ``array('q')`` of row ids per group, 8 bytes a posting)
and bounded by a budget of postings (least recently used terms go first).

It is never stale. Schema 5 stamps every write of a memory's postings with the next value of
a file-wide clock in the write's own transaction; a search runs in one read transaction, reads
the clock and the memories stamped since it last looked (an index range), and keeps their
current postings aside (``delta``). A group is then read as its cached ids minus the changed
memories, plus the changed memories that hold it now, so a search sees exactly the committed
state it reads in, whichever process wrote it. A memory purged from the file drops out at the
liveness check every candidate goes through; a row id reused later comes with a new stamp.
"""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from deep_tree_echo.aar_core.memory import _sqlite_schema as sql

#: Postings held across tenants and terms by default (about 72 bytes each: ~105 MiB at most).
DEFAULT_BUDGET: Final = 1_500_000
#: Terms in at least this many memories of a tenant are cached (rarer ones are scanned).
DEFAULT_MIN_DF: Final = 1024
_EMPTY: Final[frozenset[int]] = frozenset()
#: Changed memories a term is patched with at each search before they are folded into it.
FOLD: Final = 2048


@dataclass(slots=True)
class _Term:
    """A term's postings as they were at stamp ``loaded``: ``(tf, dl) -> row ids``."""

    loaded: int
    groups: dict[tuple[int, int], frozenset[int]]
    size: int


@dataclass(slots=True)
class _Tenant:
    """What a tenant's cached terms need to be exact: the stamp up to which changes are known,
    and the memories changed since the oldest cached term was read (row id -> stamp, dl, tf
    per term now; a tombstone holds no term)."""

    gen: int
    delta: dict[int, tuple[int, int, dict[str, int]]] = field(default_factory=dict)
    #: One int object per row id, shared by the tenant's groups (a third less memory).
    ids: dict[int, int] = field(default_factory=dict)


class TermView:
    """One search's exact view of a cached term: its groups with the changes applied."""

    __slots__ = ("_memo", "_overlay", "_stale", "_term", "by_dl")

    @property
    def changed(self) -> int:
        """Memories changed since the term was read (patched at each search)."""
        return len(self._stale)

    def groups(self) -> list[tuple[int, int]]:
        """Every ``(tf, dl)`` group that may hold memories."""
        return [(tf, dl) for dl, tfs in self.by_dl.items() for tf in tfs]

    def __init__(self, term: _Term, tenant: _Tenant, word: str) -> None:
        self._term = term
        self._stale: set[int] = set()
        self._overlay: dict[tuple[int, int], set[int]] = {}
        for rid, (gen, dl, tfs) in tenant.delta.items():
            if gen > term.loaded:
                self._stale.add(rid)
                tf = tfs.get(word)
                if tf:
                    self._overlay.setdefault((tf, dl), set()).add(rid)
        #: Length -> the tfs that have a group of that length (cached or changed).
        self.by_dl: dict[int, list[int]] = {}
        for tf, dl in {*term.groups, *self._overlay}:
            self.by_dl.setdefault(dl, []).append(tf)
        self._memo: dict[tuple[int, int], set[int] | frozenset[int]] = {}

    def members(self, tf: int, dl: int) -> set[int] | frozenset[int]:
        """The live postings of the group ``(tf, dl)`` (a set the caller must not change)."""
        key = (tf, dl)
        got = self._memo.get(key)
        if got is None:
            base = self._term.groups.get(key, _EMPTY)
            extra = self._overlay.get(key)
            if self._stale:
                got = base.difference(self._stale)
                if extra:
                    got |= extra
            else:
                got = base | extra if extra else base
            self._memo[key] = got
        return got

    def slab(self, dl: int) -> set[int]:
        """Every memory of length ``dl`` holding the term."""
        out: set[int] = set()
        for tf in self.by_dl.get(dl, ()):
            out |= self.members(tf, dl)
        return out


class PostingsCache:
    """The cache of one store (used from its reader thread only; see the module docstring)."""

    def __init__(self, *, budget: int = DEFAULT_BUDGET, min_df: int = DEFAULT_MIN_DF) -> None:
        self.budget = budget
        self.min_df = max(1, min_df)
        #: Changed memories a term is patched with at each search before they are folded in.
        self.fold = FOLD
        self._terms: OrderedDict[tuple[str, str], _Term] = OrderedDict()  # LRU first
        self._tenants: dict[str, _Tenant] = {}
        self._size = 0
        #: Terms read from the file (a miss) and served from memory (a hit), for tests/benches.
        self.loads = 0
        self.hits = 0

    @property
    def size(self) -> int:
        """Postings held now."""
        return self._size

    def views(
        self, conn: sqlite3.Connection, tenant: str, words: Iterable[str]
    ) -> dict[str, TermView] | None:
        """Exact views of ``words`` in ``tenant`` as of the read transaction ``conn`` is in
        (the caller began it); None when they do not fit in the budget together."""
        state = self._catch_up(conn, tenant)
        wanted = {(tenant, word) for word in words}
        views: dict[str, TermView] = {}
        for key in wanted:
            term = self._terms.get(key)
            if term is None:
                term = self._load(conn, key, state.gen, wanted)
                if term is None:
                    return None
            else:
                self.hits += 1
                self._terms.move_to_end(key)
            view = TermView(term, state, key[1])
            if view.changed > self.fold:  # patching costs more each search: fold the changes in
                groups = {g: frozenset(ids) for g in view.groups() if (ids := view.members(*g))}
                size = sum(map(len, groups.values()))
                self._size += size - term.size
                term.groups, term.loaded, term.size = groups, state.gen, size
                view = TermView(term, state, key[1])
            views[key[1]] = view
        if len(state.delta) > 2 * self.fold:  # what every cached term of the tenant has folded
            held = [t.loaded for (who, _), t in self._terms.items() if who == tenant]
            oldest = min(held, default=state.gen)
            state.delta = {r: e for r, e in state.delta.items() if e[0] > oldest}
        return views

    def warm(self, conn: sqlite3.Connection, *, share: float = 0.5) -> int:
        """Read the most frequent terms of every tenant, up to ``share`` of the budget, in one
        read transaction (done at open: a restarted service answers its common queries from
        memory at once). Returns how many terms were read."""
        conn.execute("BEGIN")
        try:
            loaded = 0
            for tenant, word, n in conn.execute(sql.FREQUENT_TERMS, (self.min_df,)).fetchall():
                key = (tenant, word)
                if key in self._terms or self._size + n > self.budget * share:
                    continue
                if self._load(conn, key, self._catch_up(conn, tenant).gen, {key}) is not None:
                    loaded += 1
            return loaded
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _catch_up(self, conn: sqlite3.Connection, tenant: str) -> _Tenant:
        """Record the memories of ``tenant`` changed since it was last seen."""
        clock = int(conn.execute(sql.CLOCK).fetchone()[0])
        state = self._tenants.get(tenant)
        if state is None:
            state = self._tenants[tenant] = _Tenant(clock)
            return state
        if clock == state.gen:
            return state
        if not any(who == tenant for who, _ in self._terms):
            state.gen, state.delta = clock, {}  # nothing cached needs the history
            state.ids.clear()
            return state
        for rid, gen, dl, raw in conn.execute(sql.CHANGES, (tenant, state.gen)):
            state.delta[rid] = (gen, dl, {word: tf for word, _impact, tf in json.loads(raw)})
        state.gen = clock
        return state

    def _load(
        self,
        conn: sqlite3.Connection,
        key: tuple[str, str],
        gen: int,
        keep: set[tuple[str, str]],
    ) -> _Term | None:
        """Read a term's postings (as of stamp ``gen``, the transaction's), making room."""
        ids = self._tenants[key[0]].ids
        if len(ids) > self.budget:
            ids.clear()
        same = ids.setdefault
        groups = {
            (tf, dl): frozenset([same(rid, rid) for rid in map(int, rids.split(","))])
            for tf, dl, rids in conn.execute(sql.TERM_GROUPS, key)
        }
        size = sum(map(len, groups.values()))
        if size > self.budget:
            return None
        while self._size + size > self.budget:
            victim = next((held for held in self._terms if held not in keep), None)
            if victim is None:
                return None
            self._size -= self._terms.pop(victim).size
        term = _Term(gen, groups, size)
        self._terms[key] = term
        self._size += term.size
        self.loads += 1
        return term
