"""Dates named in a question ("What did Maria share on 16 June, 2023?", "... in May 2022?"):
the period they cover, and whether a memory falls in it.

A date in a question is a constraint on when something was said or happened, not words to
find: "16 June 2023" is rarely written in the turn that answers it, which is dated instead
(``said_on``) or holds a resolved expression ("yesterday" → ``dates``).
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from typing import Any, Final

from deep_tree_echo.aar_core.memory.analysis import analyze
from deep_tree_echo.aar_core.timeref import TimeRef, reference_date, resolve

#: A turn said up to this many days after a named day still counts (people tell the news of
#: a day a few days later: "we met on the 15th", said on the 17th).
_SAID_LATER_DAYS: Final = 7

Period = tuple[date, date]


def period_of(ref: TimeRef) -> Period:
    """The first and last day an expression covers."""
    start = ref.start
    if ref.granularity == "day":
        return start, start
    if ref.granularity == "weekend":
        return start, start + timedelta(days=1)
    if ref.granularity == "week":
        return start, start + timedelta(days=6)
    if ref.granularity == "month":
        return start, start.replace(day=calendar.monthrange(start.year, start.month)[1])
    return start, date(start.year, 12, 31)


def question_periods(body: str, reference: date) -> tuple[tuple[Period, ...], frozenset[str]]:
    """The periods a question names (resolved against ``reference``, the time it is asked)
    and the index terms of the words that named them (left out of the question's terms)."""
    refs = resolve(body, reference)
    if not refs:
        return (), frozenset()
    words = frozenset(t for ref in refs for t in analyze(ref.text))
    return tuple(period_of(ref) for ref in refs), words


def in_periods(memory: dict[str, Any], periods: tuple[Period, ...]) -> bool:
    """Whether a memory was said in (or shortly after) one of ``periods``, or names a date
    inside one."""
    said = reference_date(memory.get("said_on"))
    for first, last in periods:
        if said is not None and first <= said <= last + timedelta(days=_SAID_LATER_DAYS):
            return True
        for item in memory.get("dates") or ():
            day = reference_date(item.get("date")) if isinstance(item, dict) else None
            if day is not None and first - timedelta(days=1) <= day <= last + timedelta(days=1):
                return True
    return False
