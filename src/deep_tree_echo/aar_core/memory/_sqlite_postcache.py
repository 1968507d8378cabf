"""SQLite's side of the search cache (``_postcache``): the catch-up from the file's change
stamps (schema 5), term loads and warming, each inside the caller's read transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator

from deep_tree_echo.aar_core.memory import _sqlite_schema as sql
from deep_tree_echo.aar_core.memory._postcache import Change, PostingsCache, TermView


def views(
    conn: sqlite3.Connection, cache: PostingsCache[int], tenant: str, words: Iterable[str]
) -> dict[str, TermView[int]] | None:
    """Exact views of ``words`` as of ``conn``'s read transaction (the caller began it);
    the words the cache does not hold are read for this search only."""
    _catch_up(conn, cache, tenant)
    words = list(words)
    for word in cache.lacking(tenant, words):
        cache.add(tenant, word, _groups(conn, tenant, word), keep=words)
    return cache.views(tenant, words)


def warm(conn: sqlite3.Connection, cache: PostingsCache[int], *, share: float = 0.25) -> int:
    """Read the most frequent terms of every tenant, up to ``share`` of the budget, in one
    read transaction (done at open: a restarted service answers its common queries from
    memory at once). Returns how many terms were read."""
    conn.execute("BEGIN")
    try:
        loaded = 0
        caught: set[str] = set()
        for tenant, word, n in conn.execute(sql.FREQUENT_TERMS, (cache.min_df,)).fetchall():
            if not cache.fits(n, share) or not cache.lacking(tenant, [word]):
                continue
            if tenant not in caught:
                _catch_up(conn, cache, tenant)
                caught.add(tenant)
            loaded += cache.add(tenant, word, _groups(conn, tenant, word))
        return loaded
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


def _catch_up(conn: sqlite3.Connection, cache: PostingsCache[int], tenant: str) -> None:
    clock = int(conn.execute(sql.CLOCK).fetchone()[0])
    since = cache.since(tenant)
    changes = () if since is None or since == clock else _changes(conn, tenant, since)
    cache.caught_up(tenant, clock, changes)


def _changes(conn: sqlite3.Connection, tenant: str, since: int) -> Iterator[Change[int]]:
    for rid, gen, dl, raw in conn.execute(sql.CHANGES, (tenant, since)):
        yield rid, gen, dl, {word: tf for word, _impact, tf in json.loads(raw)}


def _groups(
    conn: sqlite3.Connection, tenant: str, word: str
) -> Iterator[tuple[int, int, Iterable[int]]]:
    for tf, dl, rids in conn.execute(sql.TERM_GROUPS, (tenant, word)):
        yield tf, dl, map(int, rids.split(","))
