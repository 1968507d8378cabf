"""Relative time expressions resolved against fixed reference dates."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from deep_tree_echo.aar_core.timeref import format_day, reference_date, resolve

MONDAY = date(2023, 5, 8)  # Monday 8 May 2023


@pytest.mark.parametrize(
    ("text", "expression", "day", "granularity"),
    [
        ("I went to a support group yesterday", "yesterday", "2023-05-07", "day"),
        ("we had dinner last night", "last night", "2023-05-07", "day"),
        ("I'm tired today", "today", "2023-05-08", "day"),
        ("see you tomorrow", "tomorrow", "2023-05-09", "day"),
        ("I met her the day before yesterday", "the day before yesterday", "2023-05-06", "day"),
        ("I ran a race last Saturday", "last Saturday", "2023-05-06", "day"),
        ("last Monday was a holiday", "last Monday", "2023-05-01", "day"),
        ("last Fri I took the kids out", "last Fri", "2023-05-05", "day"),
        ("we fly next Friday", "next Friday", "2023-05-12", "day"),
        ("I went there on Saturday", "on Saturday", "2023-05-06", "day"),
        ("my appointment is on Friday", "on Friday", "2023-05-12", "day"),
        ("I visited Rome two weeks ago", "two weeks ago", "2023-04-24", "week"),
        ("she called 3 days ago", "3 days ago", "2023-05-05", "day"),
        ("a few days ago it rained", "a few days ago", "2023-05-05", "day"),
        ("a couple of months ago I quit", "a couple of months ago", "2023-03-01", "month"),
        ("we moved a year ago", "a year ago", "2022-01-01", "year"),
        ("last week was hard", "last week", "2023-05-01", "week"),
        ("next week is busy", "next week", "2023-05-15", "week"),
        ("last weekend we hiked", "last weekend", "2023-05-06", "weekend"),
        ("next month I will move", "next month", "2023-06-01", "month"),
        ("last month I got hurt", "last month", "2023-04-01", "month"),
        ("I painted that last year", "last year", "2022-01-01", "year"),
        ("next year we travel", "next year", "2024-01-01", "year"),
        ("in December we went skiing", "in December", "2022-12-01", "month"),
        ("in June we will travel", "in June", "2023-06-01", "month"),
        ("my mum's birthday is in June", "in June", "2023-06-01", "month"),
        ("we met in May 2021", "in May 2021", "2021-05-01", "month"),
        ("I quit in 2022", "in 2022", "2022-01-01", "year"),
        ("we married on 5 June 2019", "on 5 June 2019", "2019-06-05", "day"),
        ("it started on 20 May", "on 20 May", "2022-05-20", "day"),
        ("the plumber comes on Thursday 11 May", "on Thursday 11 May", "2023-05-11", "day"),
        ("May 3rd, 2021 was great", "May 3rd, 2021", "2021-05-03", "day"),
    ],
)
def test_expression_resolves_against_the_reference(
    text: str, expression: str, day: str, granularity: str
) -> None:
    refs = resolve(text, MONDAY)
    assert [(r.text, r.start.isoformat(), r.granularity) for r in refs] == [
        (expression, day, granularity)
    ]


def test_labels_say_the_date_and_relative_ones_the_reference() -> None:
    [yesterday] = resolve("yesterday", MONDAY)
    assert yesterday.label == "7 May 2023"
    [saturday] = resolve("last Saturday", date(2023, 5, 25))
    assert saturday.label == "Saturday 20 May 2023 (the Saturday before 25 May 2023)"
    [week] = resolve("a picnic last week", date(2023, 7, 6))
    assert week.label == "the week before 6 July 2023"
    assert resolve("last year", MONDAY)[0].to_dict() == {
        "text": "last year", "date": "2022-01-01", "granularity": "year", "label": "2022"
    }


def test_vague_counts_are_said_as_vaguely_as_told() -> None:
    [few] = resolve("had a check-up a few days ago", date(2023, 5, 24))
    assert few.label == "a few days before 24 May 2023 (about 21 May 2023)"
    [few] = resolve("a painting I finished few days ago", date(2023, 12, 17))
    assert few.label == "few days before 17 December 2023 (about 14 December 2023)"
    [exact] = resolve("three days ago I bought a book", date(2022, 4, 29))
    assert exact.label == "26 April 2022"


def test_the_reference_decides_not_today() -> None:
    assert resolve("yesterday", date(2020, 3, 1))[0].start == date(2020, 2, 29)
    assert resolve("last month", date(2024, 1, 15))[0].start == date(2023, 12, 1)
    assert resolve("next month", date(2023, 12, 31))[0].start == date(2024, 1, 1)


def test_modal_may_and_plain_text_give_nothing() -> None:
    assert resolve("this may help", MONDAY) == []
    assert resolve("I like green tea", MONDAY) == []
    assert resolve("on 31 February", MONDAY) == []


def test_several_expressions_come_in_text_order() -> None:
    refs = resolve("yesterday I booked a flight for next Friday", MONDAY)
    assert [r.text for r in refs] == ["yesterday", "next Friday"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-05-08T13:56:00Z", date(2023, 5, 8)),
        ("2023-05-08", date(2023, 5, 8)),
        ("2023-05-08T23:30:00+02:00", date(2023, 5, 8)),
        (1683554160, date(2023, 5, 8)),
        (1683554160000, date(2023, 5, 8)),
        (datetime(2023, 5, 8, 1, tzinfo=UTC), date(2023, 5, 8)),
        (None, None),
        ("soon", None),
        (True, None),
    ],
)
def test_reference_date_accepts_iso_text_and_unix_time(value: object, expected: object) -> None:
    assert reference_date(value) == expected


def test_format_day() -> None:
    assert format_day(date(2023, 5, 7)) == "7 May 2023"
