"""The ranking's parts on their own: filters, recency, the candidate pool, the weights'
bounds and what `rank` hands back (every store ranks through these)."""

from __future__ import annotations

import json

import pytest

from deep_tree_echo.aar_core.memory.ranking import (
    Candidate,
    RankWeights,
    candidate_pool,
    matches_filters,
    rank,
    recency,
)


def test_filters_match_equal_top_level_fields_only() -> None:
    data = {"kind": "note", "none": None}
    assert matches_filters(data, {})
    assert matches_filters(data, {"kind": "note"})
    assert matches_filters(data, {"none": None})
    assert not matches_filters(data, {"kind": "task"})
    assert not matches_filters(data, {"missing": None})  # absent matches nothing, not None
    assert not matches_filters(data, {"kind": "note", "missing": "x"})


def test_recency_decays_from_the_first_hour_and_not_for_future_touches() -> None:
    now = 1_000_000.0
    assert recency(0.5, now, now) == 1.0
    assert recency(0.5, now, now + 60) == 1.0  # touched "in the future" (clock skew)
    assert recency(0.5, now, now - 1800) == pytest.approx(0.5**0.5)  # half an hour
    assert recency(0.5, now, now - 7200) == pytest.approx(0.25)


def test_candidate_pool_is_twenty_per_result_and_at_least_two_hundred() -> None:
    assert candidate_pool(1) == 200
    assert candidate_pool(10) == 200
    assert candidate_pool(11) == 220


@pytest.mark.parametrize("decay", [0.0, -0.1, 1.01, float("nan")])
def test_decay_outside_zero_to_one_is_refused(decay: float) -> None:
    with pytest.raises(ValueError, match=r"^decay must be in \(0, 1\], got "):
        RankWeights(decay=decay)


def test_weights_refusals_name_the_weight() -> None:
    assert RankWeights(decay=1.0).decay == 1.0  # no decay at all is allowed
    with pytest.raises(ValueError, match=r"^weight recency must be a finite number >= 0, got -1$"):
        RankWeights(recency=-1)


def test_rank_decodes_the_data_of_the_results_it_returns() -> None:
    now = 10_000.0
    pool = [
        Candidate("text", json.dumps({"content": "from JSON text"}), 2.0, now, 0.5),
        Candidate("dict", {"content": "as a dict"}, 1.0, now, 0.5),
    ]
    results = rank(pool, weights=RankWeights(), now=now, limit=5)
    assert [(r.id, r.data) for r in results] == [
        ("text", {"content": "from JSON text"}), ("dict", {"content": "as a dict"})]
    assert [r.relevance for r in results] == [1.0, 0.5]
    assert rank(pool, weights=RankWeights(), now=now, limit=0) == []
    assert rank([], weights=RankWeights(), now=now, limit=5) == []
