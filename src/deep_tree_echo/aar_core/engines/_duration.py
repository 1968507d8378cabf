"""Durations: "How long has Tim played the piano?" answered with the duration said in the
answering passage, in digits ("Seven years now, ..." → ``7 years``), and, when the memory's
date is known and the question asks how long something has gone on, since when ("since
2016", "since March 2023").

Only a duration said with a number (or "a"/"an") counts, with its qualifier ("just under a
year" → ``just under 1 year``, and no "since" then); "a few years" stays in the quoted passage
as said. "Started five years ago" answers "How long has ...?" as ``5 years (since 2018)``. The
passage itself is still quoted after the lead.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

from deep_tree_echo.aar_core.timeref import reference_date

_NUMBERS: Final = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15,
    "twenty": 20, "thirty": 30,
}
_NUM: Final = "|".join(sorted(_NUMBERS, key=len, reverse=True))
#: "seven years", "for 4 years", "about four months", "just under a year", "ten years ago".
_DURATION: Final = re.compile(
    r"\b(?:(about|around|roughly|nearly|almost|over|more than|less than|just under|under|"
    rf"just over)\s+)?(\d{{1,3}}|{_NUM})(?:\s+|-)(day|week|month|year)s?\b(\s+ago\b)?",
    re.IGNORECASE)
#: "How long has/have ... (been) ..." asks how long something has gone on until now.
_HOW_LONG: Final = re.compile(r"^\s*how long\b(?:\s+(has|have|ago))?", re.IGNORECASE)


def asks_how_long(body: str) -> bool:
    """Whether a question asks for a duration ("How long ...?")."""
    return _HOW_LONG.match(body) is not None


def _since(said: date, amount: int, unit: str) -> str | None:
    """The start of a duration that runs until ``said``, at the duration's precision."""
    if unit == "year":
        return str(said.year - amount)
    if unit == "month":
        months = said.year * 12 + said.month - 1 - amount
        return date(months // 12, months % 12 + 1, 1).strftime("%B %Y")
    return None


def duration_lead(body: str, passage: str, said_on: object) -> str | None:
    """The lead of a "How long ...?" reply: the first duration said in ``passage`` in digits
    ("7 years"), with "since ..." for "How long has/have ...?" when the memory's date
    (``said_on``) is known; None when the passage says no exact duration."""
    asked = _HOW_LONG.match(body)
    found = _DURATION.search(passage)
    if asked is None or found is None:
        return None
    qualifier, raw, unit = found.group(1), found.group(2).lower(), found.group(3).lower()
    amount = int(raw) if raw.isdigit() else _NUMBERS[raw]
    lead = f"{qualifier.lower() + ' ' if qualifier else ''}{amount} {unit}"
    lead += "" if amount == 1 else "s"
    so_far = (asked.group(1) or "").lower() in ("has", "have")
    if found.group(4) and not so_far:  # "ten years ago" for "How long ago ...?"
        return f"{lead} ago"
    said = reference_date(said_on)
    since = _since(said, amount, unit) if so_far and said and not qualifier else None
    return f"{lead} (since {since})" if since else lead
