"""Frequent terms' postings of a shared store held in the process, exact at every search.

A query whose words are in most memories makes any pruned scan of the postings index read
and score most of them one by one (tens of thousands at 100k memories). The in-memory index
answers it by walking classes of equal score over ``(tf, dl)`` groups of document ids as sets
(``_classwalk``); this cache gives the SQL stores the same groups for their *frequent* terms
(df >= ``min_df``), as frozensets of row keys (one int or str object per memory, shared by the
groups), bounded by a budget of postings: the largest terms stay, and a term that does not fit
is read for its search only.

It is never stale. The store stamps every write of a memory's postings (SQLite: the next value
of a file-wide clock; PostgreSQL: the writing transaction's id) in the write's transaction. A
search runs in one read snapshot: the store reads the memories stamped after what the cache
last saw (:meth:`PostingsCache.since`) and hands them to :meth:`PostingsCache.caught_up` with
their postings now (``delta``); a group is then read as its cached keys minus the changed
memories plus the changed memories that hold it now. A memory purged from the store drops out
at the liveness check every candidate goes through; a key reused later comes with a new stamp.
This module does no I/O: ``_sqlite_postcache`` and ``_postgres_cached`` feed it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from deep_tree_echo.aar_core.memory._classwalk import ClassWalk

K = TypeVar("K", int, str)

#: Postings held across tenants and terms by default on SQLite (about 72 bytes each: at most
#: ~105 MiB; the PostgreSQL store's default is smaller, see ``postgres_store``).
DEFAULT_BUDGET: Final = 1_500_000
#: Terms in at least this many memories of a tenant are cached (rarer ones are scanned).
DEFAULT_MIN_DF: Final = 1024
#: Changed memories a term is patched with at each search before they are folded into it.
FOLD: Final = 2048

#: A changed memory: its key, stamp, length and tf per term now (a tombstone holds no term).
Change = tuple[K, int, int, Mapping[str, int]]


@dataclass(slots=True)
class _Term(Generic[K]):
    """A term's postings as they were at stamp ``loaded``: ``(tf, dl) -> keys``."""

    loaded: int
    groups: dict[tuple[int, int], frozenset[K]]
    size: int


@dataclass(slots=True)
class _Tenant(Generic[K]):
    """What a tenant's cached terms need to be exact: the stamp up to which changes are known,
    and the memories changed since the oldest cached term was read (key -> stamp, dl, tf per
    term now)."""

    gen: int
    delta: dict[K, tuple[int, int, Mapping[str, int]]] = field(default_factory=dict)
    #: One key object per memory, shared by the tenant's groups (a third less memory).
    keys: dict[K, K] = field(default_factory=dict)


class TermView(Generic[K]):
    """One search's exact view of a cached term: its groups with the changes applied."""

    __slots__ = ("_memo", "_overlay", "_stale", "_term", "by_dl")

    def __init__(self, term: _Term[K], tenant: _Tenant[K], word: str) -> None:
        self._term: _Term[K] = term
        self._stale: set[K] = set()
        self._overlay: dict[tuple[int, int], set[K]] = {}
        for key, (gen, dl, tfs) in tenant.delta.items():
            if gen > term.loaded:
                self._stale.add(key)
                tf = tfs.get(word)
                if tf:
                    self._overlay.setdefault((tf, dl), set()).add(key)
        #: Length -> the tfs that have a group of that length (cached or changed).
        self.by_dl: dict[int, list[int]] = {}
        for tf, dl in {*term.groups, *self._overlay}:
            self.by_dl.setdefault(dl, []).append(tf)
        self._memo: dict[tuple[int, int], set[K] | frozenset[K]] = {}

    @property
    def changed(self) -> int:
        """Memories changed since the term was read (patched at each search)."""
        return len(self._stale)

    def groups(self) -> list[tuple[int, int]]:
        """Every ``(tf, dl)`` group that may hold memories."""
        return [(tf, dl) for dl, tfs in self.by_dl.items() for tf in tfs]

    def members(self, tf: int, dl: int) -> set[K] | frozenset[K]:
        """The memories of the group ``(tf, dl)`` now (a set the caller must not change)."""
        group = (tf, dl)
        got = self._memo.get(group)
        if got is None:
            base = self._term.groups.get(group)
            if base is None:
                base = frozenset()
            extra = self._overlay.get(group)
            if self._stale:
                got = base.difference(self._stale)
                if extra:
                    got |= extra
            else:
                got = base | extra if extra else base
            self._memo[group] = got
        return got

    def slab(self, dl: int) -> list[set[K] | frozenset[K]]:
        """Every memory of length ``dl`` holding the term, as its groups of that length."""
        return [self.members(tf, dl) for tf in self.by_dl.get(dl, ())]


class PostingsCache(Generic[K]):
    """The cache of one store (used by one search at a time; see the module docstring)."""

    def __init__(self, *, budget: int = DEFAULT_BUDGET, min_df: int = DEFAULT_MIN_DF) -> None:
        self.budget = budget
        self.min_df = max(1, min_df)
        #: Changed memories a term is patched with at each search before they are folded in.
        self.fold = FOLD
        self._terms: OrderedDict[tuple[str, str], _Term[K]] = OrderedDict()  # LRU first
        self._tenants: dict[str, _Tenant[K]] = {}
        #: Terms read for one search that the cache does not hold (taken by :meth:`views`).
        self._passing: dict[tuple[str, str], _Term[K]] = {}
        self._size = 0
        #: Terms read from the store (a miss) and served from memory (a hit), for tests/benches.
        self.loads = 0
        self.hits = 0

    @property
    def size(self) -> int:
        """Postings held now."""
        return self._size

    def _holds(self, tenant: str) -> bool:
        return any(who == tenant for who, _ in self._terms)

    def since(self, tenant: str) -> int | None:
        """The stamp after which ``tenant``'s changes are needed; None when nothing of the
        tenant is cached (no history is needed then)."""
        state = self._tenants.get(tenant)
        return state.gen if state is not None and self._holds(tenant) else None

    def caught_up(self, tenant: str, clock: int, changes: Iterable[Change[K]]) -> None:
        """Record the memories of ``tenant`` changed after :meth:`since` (``changes``, read
        in the search's snapshot) and that the snapshot's stamps reach ``clock``."""
        state = self._tenants.get(tenant)
        if state is None or not self._holds(tenant):
            self._tenants[tenant] = _Tenant(clock)
            return
        for key, gen, dl, tfs in changes:
            state.delta[key] = (gen, dl, tfs)
        state.gen = clock

    def lacking(self, tenant: str, words: Iterable[str]) -> list[str]:
        """The ``words`` of ``tenant`` not cached."""
        return [w for w in words if (tenant, w) not in self._terms]

    def add(
        self,
        tenant: str,
        word: str,
        groups: Iterable[tuple[int, int, Iterable[K]]],
        *,
        keep: Collection[str] = (),
    ) -> bool:
        """Take ``word``'s postings read in the search's snapshot (``(tf, dl, keys)`` per
        group; after :meth:`caught_up`) for the next :meth:`views`, and hold them when they
        fit, or fit by dropping smaller terms (least recently used first, but ``keep``). The
        largest terms stay (they cost most to read and to search without the cache), so a
        working set larger than the budget never cycles through it. True when held."""
        state = self._tenants[tenant]
        if len(state.keys) > self.budget:
            state.keys.clear()
        same = state.keys.setdefault
        held = {(tf, dl): frozenset([same(k, k) for k in keys]) for tf, dl, keys in groups}
        term = _Term(state.gen, held, sum(map(len, held.values())))
        self.loads += 1
        if self._size + term.size > self.budget:
            room = self.budget - self._size
            victims = []
            for key, other in self._terms.items():
                if room >= term.size:
                    break
                if other.size < term.size and not (key[0] == tenant and key[1] in keep):
                    victims.append(key)
                    room += other.size
            if room < term.size:  # for this search only
                self._passing[(tenant, word)] = term
                return False
            for key in victims:
                self._size -= self._terms.pop(key).size
        self._terms[(tenant, word)] = term
        self._size += term.size
        return True

    def fits(self, n: int, share: float) -> bool:
        """Whether ``n`` more postings keep the cache within ``share`` of its budget."""
        return self._size + n <= self.budget * share

    def views(self, tenant: str, words: Iterable[str]) -> dict[str, TermView[K]] | None:
        """Exact views of ``words`` (each held, or just read by :meth:`add`; else None) as of
        the last catch-up."""
        state = self._tenants.get(tenant)
        if state is None:
            return None
        views: dict[str, TermView[K]] = {}
        passing, self._passing = self._passing, {}
        for word in words:
            term = self._terms.get((tenant, word))
            if term is None:
                term = passing.get((tenant, word))
                if term is None:
                    return None
                views[word] = TermView(term, state, word)
                continue
            self.hits += 1
            self._terms.move_to_end((tenant, word))
            view = TermView(term, state, word)
            if view.changed > self.fold:  # patching costs more each search: fold the changes in
                groups = {g: frozenset(ks) for g in view.groups() if (ks := view.members(*g))}
                size = sum(map(len, groups.values()))
                self._size += size - term.size
                term.groups, term.loaded, term.size = groups, state.gen, size
                view = TermView(term, state, word)
            views[word] = view
        if len(state.delta) > 2 * self.fold:  # what every cached term of the tenant has folded
            held = [t.loaded for (who, _), t in self._terms.items() if who == tenant]
            oldest = min(held, default=state.gen)
            state.delta = {k: e for k, e in state.delta.items() if e[0] > oldest}
        return views


def class_walk(
    views: Mapping[str, TermView[K]], weight: Mapping[str, float], per_dl: float
) -> ClassWalk[K, tuple[str, int, int]]:
    """The class walk over cached terms (BM25 weight = idf times query repeats; ``per_dl`` =
    k1 b / avgdl), the term with the most groups last (the split term)."""
    order = sorted(views, key=lambda w: sum(map(len, views[w].by_dl.values())))
    tables: list[dict[int, list[tuple[float, tuple[str, int, int]]]]] = []
    for w in order:
        wk = weight[w] * 2.2
        tables.append(
            {
                dl: sorted(
                    ((wk * tf / (tf + 0.3 + per_dl * dl), (w, tf, dl)) for tf in tfs),
                    reverse=True,
                )
                for dl, tfs in views[w].by_dl.items()
            }
        )
    return ClassWalk(
        tables,
        lambda handle: views[handle[0]].members(handle[1], handle[2]),
        lambda j, dl: views[order[j]].slab(dl),
    )
