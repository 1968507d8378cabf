"""The search cache's bookkeeping without a store (``_postcache`` does no I/O): which words it
holds when the budget is full, its size after folding changes in, and the warming bound."""

from __future__ import annotations

from deep_tree_echo.aar_core.memory._postcache import PostingsCache


def groups(size: int, start: int = 0) -> list[tuple[int, int, list[int]]]:
    """One ``(tf=1, dl=5)`` group of ``size`` keys."""
    return [(1, 5, list(range(start, start + size)))]


def cache_of(budget: int, *tenants: str) -> PostingsCache[int]:
    cache: PostingsCache[int] = PostingsCache(budget=budget, min_df=1)
    for tenant in tenants or ("t",):
        cache.caught_up(tenant, 0, ())
    return cache


def held(cache: PostingsCache[int], tenant: str, words: str) -> set[str]:
    return {w for w in words if not cache.lacking(tenant, [w])}


def test_a_word_that_fills_the_budget_exactly_is_held() -> None:
    cache = cache_of(10)
    assert cache.add("t", "a", groups(10))
    assert held(cache, "t", "a") == {"a"} and cache.size == 10


def test_room_is_made_from_the_least_recently_used_smaller_words_only_as_needed() -> None:
    cache = cache_of(10)
    for word in "abc":
        assert cache.add("t", word, groups(3))
    assert cache.add("t", "d", groups(4))  # 1 free: dropping "a" (3) makes exactly 4
    assert held(cache, "t", "abcd") == {"b", "c", "d"} and cache.size == 10


def test_a_word_never_drops_words_as_large_as_itself() -> None:
    cache = cache_of(10)
    assert cache.add("t", "x", groups(5)) and cache.add("t", "y", groups(5))
    assert not cache.add("t", "z", groups(5))  # read for its search only
    assert held(cache, "t", "xyz") == {"x", "y"}
    views = cache.views("t", ["z"])
    assert views is not None and views["z"].members(1, 5) == frozenset(range(5))
    assert cache.views("t", ["z"]) is None  # taken by the search it was read for


def test_the_words_of_the_same_search_are_kept_and_other_tenants_give_way() -> None:
    cache = cache_of(10, "t", "u")
    assert cache.add("t", "a", groups(3)) and cache.add("u", "a", groups(3))
    assert cache.add("t", "b", groups(3))
    # "t"'s "a" is asked for by the same search: "u"'s "a" (same word, other tenant) and
    # then "t"'s "b" give way, in least recently used order.
    assert cache.add("t", "c", groups(5), keep=["a", "c"])
    assert held(cache, "t", "abc") == {"a", "c"} and held(cache, "u", "a") == set()
    assert cache.size == 8


def test_the_size_follows_the_groups_when_changes_are_folded_in() -> None:
    cache = cache_of(100)
    assert cache.add("t", "w", groups(10))
    cache.fold = 2
    # Three memories changed: 0 and 1 no longer hold "w", 50 holds it now.
    changes = [(0, 1, 5, {}), (1, 2, 5, {"v": 1}), (50, 3, 5, {"w": 1})]
    cache.caught_up("t", 3, changes)
    views = cache.views("t", ["w"])
    assert views is not None and views["w"].changed == 0  # folded in
    assert views["w"].members(1, 5) == frozenset([*range(2, 10), 50])
    assert cache.size == 9
    assert cache.add("t", "x", groups(91, 100))  # exactly the room left
    assert cache.size == 100


def test_warming_stays_within_its_share() -> None:
    cache = cache_of(8)
    assert cache.fits(2, 0.25) and not cache.fits(3, 0.25)
    assert cache.add("t", "a", groups(1))
    assert cache.fits(1, 0.25) and not cache.fits(2, 0.25)
