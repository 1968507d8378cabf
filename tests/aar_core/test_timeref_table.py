"""Every kind of time expression with its full resolution (day, width and label), against a
Wednesday, so weekdays on both sides of the reference and the reference itself all occur."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date

import pytest

from deep_tree_echo.aar_core.timeref import reference_date, resolve

WEDNESDAY = date(2023, 5, 10)  # Wednesday 10 May 2023; its week starts on Monday 8 May

CASES = [
    # -- days around the reference
    ("see you the day after tomorrow", "the day after tomorrow", "2023-05-12", "day",
     "12 May 2023"),
    ("the day before yesterday", "the day before yesterday", "2023-05-08", "day", "8 May 2023"),
    ("tonight", "tonight", "2023-05-10", "day", "10 May 2023"),
    ("this morning", "this morning", "2023-05-10", "day", "10 May 2023"),
    # -- counts back
    ("one week ago", "one week ago", "2023-05-03", "week",
     "1 week before 10 May 2023 (about 3 May 2023)"),
    ("2 weeks ago", "2 weeks ago", "2023-04-26", "week",
     "2 weeks before 10 May 2023 (about 26 April 2023)"),
    ("3 years ago", "3 years ago", "2020-01-01", "year", "2020"),
    ("several days ago", "several days ago", "2023-05-07", "day",
     "several days before 10 May 2023 (about 7 May 2023)"),
    # -- this / next / last / past week, weekend, month, year
    ("this week", "this week", "2023-05-08", "week", "the week of 8 May 2023"),
    ("next week", "next week", "2023-05-15", "week", "the week after 10 May 2023"),
    ("past week", "past week", "2023-05-01", "week", "the week before 10 May 2023"),
    ("this weekend", "this weekend", "2023-05-13", "weekend", "the weekend of 13 May 2023"),
    ("next weekend", "next weekend", "2023-05-20", "weekend",
     "the weekend after 10 May 2023 (20 May 2023)"),
    ("last weekend", "last weekend", "2023-05-06", "weekend",
     "the weekend before 10 May 2023 (6 May 2023)"),
    ("this month", "this month", "2023-05-01", "month", "May 2023"),
    ("past month", "past month", "2023-04-01", "month", "April 2023"),
    ("this year", "this year", "2023-01-01", "year", "2023"),
    ("past year", "past year", "2022-01-01", "year", "2022"),
    # -- weekdays named relative to the reference
    ("this Friday", "this Friday", "2023-05-12", "day",
     "Friday 12 May 2023 (the Friday after 10 May 2023)"),
    ("this Monday", "this Monday", "2023-05-08", "day",
     "Monday 8 May 2023 (the Monday before 10 May 2023)"),
    ("this Wednesday", "this Wednesday", "2023-05-10", "day", "10 May 2023"),
    ("this coming Monday", "this coming Monday", "2023-05-15", "day",
     "Monday 15 May 2023 (the Monday after 10 May 2023)"),
    ("this past Friday", "this past Friday", "2023-05-05", "day",
     "Friday 5 May 2023 (the Friday before 10 May 2023)"),
    ("next Wednesday", "next Wednesday", "2023-05-17", "day",
     "Wednesday 17 May 2023 (the Wednesday after 10 May 2023)"),
    ("last Wednesday", "last Wednesday", "2023-05-03", "day",
     "Wednesday 3 May 2023 (the Wednesday before 10 May 2023)"),
    ("next Tuesday", "next Tuesday", "2023-05-16", "day",
     "Tuesday 16 May 2023 (the Tuesday after 10 May 2023)"),
    ("next Thursday", "next Thursday", "2023-05-11", "day",
     "Thursday 11 May 2023 (the Thursday after 10 May 2023)"),
    # -- bare weekdays: the last one in a past-tense sentence, else the next
    ("I went out on Friday", "on Friday", "2023-05-05", "day",
     "Friday 5 May 2023 (the Friday before 10 May 2023)"),
    ("the party is on Monday", "on Monday", "2023-05-15", "day",
     "Monday 15 May 2023 (the Monday after 10 May 2023)"),
    # -- days of a month without a year: past, future or nearest
    ("I saw it on 20 May", "on 20 May", "2022-05-20", "day", "20 May 2022"),
    ("I went there on 10 May", "on 10 May", "2023-05-10", "day", "10 May 2023"),
    ("I will go on 5 May", "on 5 May", "2024-05-05", "day", "5 May 2024"),
    ("I will be there on 10 May", "on 10 May", "2023-05-10", "day", "10 May 2023"),
    ("on 1 December", "on 1 December", "2022-12-01", "day", "1 December 2022"),
    ("I will visit on 1 December", "on 1 December", "2023-12-01", "day", "1 December 2023"),
    ("on 31 May", "on 31 May", "2023-05-31", "day", "31 May 2023"),
    ("on 1 May", "on 1 May", "2023-05-01", "day", "1 May 2023"),
    ("Sept 5", "Sept 5", "2023-09-05", "day", "5 September 2023"),
    # -- months with last / next / this / since / during
    ("last March", "last March", "2023-03-01", "month", "March 2023"),
    ("last June", "last June", "2022-06-01", "month", "June 2022"),
    ("Last May", "Last May", "2022-05-01", "month", "May 2022"),
    ("next May", "next May", "2024-05-01", "month", "May 2024"),
    ("next April", "next April", "2024-04-01", "month", "April 2024"),
    ("next June", "next June", "2023-06-01", "month", "June 2023"),
    ("this June", "this June", "2023-06-01", "month", "June 2023"),
    ("this December", "this December", "2023-12-01", "month", "December 2023"),
    ("we will swim during May", "during May", "2023-05-01", "month", "May 2023"),
    ("since March", "since March", "2023-03-01", "month", "March 2023"),
    ("since May", "since May", "2023-05-01", "month", "May 2023"),
    ("since June", "since June", "2022-06-01", "month", "June 2022"),
    ("we went swimming during June", "during June", "2022-06-01", "month", "June 2022"),
    ("we will swim during June", "during June", "2023-06-01", "month", "June 2023"),
    ("during December", "during December", "2022-12-01", "month", "December 2022"),
    # -- years
    ("in 2022", "in 2022", "2022-01-01", "year", "2022"),
]


@pytest.mark.parametrize(("text", "expression", "day", "granularity", "label"), CASES)
def test_expression_and_its_label(
    text: str, expression: str, day: str, granularity: str, label: str
) -> None:
    assert [r.to_dict() for r in resolve(text, WEDNESDAY)] == [
        {"text": expression, "date": day, "granularity": granularity, "label": label}
    ]


@pytest.mark.parametrize("text", ["on 30 February", "on 0 May", "on 32 May", "nothing here"])
def test_days_that_do_not_exist_resolve_to_nothing(text: str) -> None:
    assert resolve(text, WEDNESDAY) == []


def test_the_month_may_and_the_verb_may() -> None:
    assert resolve("this may help", WEDNESDAY) == []
    assert resolve("This May help", WEDNESDAY) == []  # capitalised at a sentence start
    assert resolve("it happens in may", WEDNESDAY) == []
    assert [r.text for r in resolve("This May 2024 is ours", WEDNESDAY)] == ["This May 2024"]
    # a skipped "may" does not end the search: a later month is still found
    assert [r.text for r in resolve("this may help us in June", WEDNESDAY)] == ["in June"]


def test_every_match_is_kept_after_one_inside_a_longer_expression() -> None:
    refs = resolve("the day before yesterday and yesterday", WEDNESDAY)
    assert [(r.text, r.start.isoformat()) for r in refs] == [
        ("the day before yesterday", "2023-05-08"), ("yesterday", "2023-05-09")]


@pytest.mark.parametrize(("text", "expressions"), [
    ("it rained on 5 May.Tomorrow it clears", ["on 5 May.", "Tomorrow"]),
    ("it rained on 5 May.in 2022 too", ["on 5 May.", "in 2022"]),
])
def test_expressions_that_touch_are_both_kept(text: str, expressions: list[str]) -> None:
    assert [r.text for r in resolve(text, WEDNESDAY)] == expressions


@pytest.fixture
def far_east() -> Iterator[None]:
    """The process's local time zone at UTC+14 (reference dates must not follow it)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    try:
        yield
    finally:
        mp.undo()
        time.tzset()


def test_timestamps_are_read_in_utc(far_east: None) -> None:
    assert reference_date(1683586800) == date(2023, 5, 8)  # 2023-05-08T23:00:00Z
    assert reference_date(1683586800000) == date(2023, 5, 8)  # the same in milliseconds


def test_reference_date_edges() -> None:
    assert reference_date(100_000_000_000) == date(5138, 11, 16)  # 1e11 is still seconds
    assert reference_date(100_000_000_001) == date(1973, 3, 3)  # above it, milliseconds
    assert reference_date("2023-05-08T23:30:00Z") == date(2023, 5, 8)
    assert reference_date("2023-05-08T23:30:00z") == date(2023, 5, 8)
    assert reference_date("2023-05-08T23:30:00-09:00") == date(2023, 5, 8)  # its own date
    assert reference_date("2023-05-08 at noon") == date(2023, 5, 8)
    assert reference_date("noon") is None
