"""Relative time expressions resolved against the date a message was said.

``resolve("I went there yesterday", date(2023, 5, 8))`` gives one :class:`TimeRef` for
"yesterday" on 7 May 2023. Handled: today/tonight/yesterday/tomorrow, "the day before
yesterday", "N days/weeks/months/years ago" (digits or words, "a few", "a couple of"),
last/this/next week, weekend, month, year and weekday, bare weekdays ("on Saturday": the
last one in a past-tense sentence, else the next), "in May", "in May 2023", "on 5 May",
"May 5th", "in 2022".
Hand-written on purpose: what matters is the reference date, which is the message's, not now.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal

Granularity = Literal["day", "week", "weekend", "month", "year"]

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_MONTHS.pop("may", None)
_MONTHS["may"] = 5
_MONTHS["sept"] = 9
_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
_WEEKDAYS.update({"mon": 0, "tue": 1, "tues": 1, "wed": 2, "thu": 3, "thur": 3, "thurs": 3,
                  "fri": 4, "sat": 5, "sun": 6})
_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "a few": 3, "few": 3, "a couple of": 2, "a couple": 2, "couple of": 2, "several": 3,
}
#: Counts said exactly ("two days ago"); "a few", "several", "a couple" are vague.
_NUMBER_WORDS = frozenset(_NUMBERS) - {"a few", "few", "a couple of", "a couple", "couple of",
                                       "several"}
_FUTURE = re.compile(
    r"\b(will|won't|shall|going to|gonna|plan(?:ning)? to|'ll|(?:am|is|are|'m|'re) going)\b", re.I
)

#: Past-tense markers: common irregular verbs and regular "-ed" forms.
_PAST = re.compile(
    r"\b(was|were|went|did|had|saw|got|came|made|took|met|ran|left|bought|told|said|gave|"
    r"found|felt|thought|began|wrote|ate|drank|flew|drove|spent|won|lost|\w{3,}ed)\b", re.I
)
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DAY_RE = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_NUM_RE = "|".join(sorted((re.escape(k) for k in _NUMBERS), key=len, reverse=True))
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("before_yesterday", re.compile(r"\bthe day before yesterday\b", re.I)),
    ("after_tomorrow", re.compile(r"\bthe day after tomorrow\b", re.I)),
    ("ago", re.compile(rf"\b(\d+|{_NUM_RE})\s+(day|week|month|year)s?\s+ago\b", re.I)),
    ("yesterday", re.compile(r"\b(yesterday|last night)\b", re.I)),
    ("today", re.compile(r"\b(today|tonight|this (?:morning|afternoon|evening))\b", re.I)),
    ("tomorrow", re.compile(r"\btomorrow\b", re.I)),
    ("rel_unit", re.compile(r"\b(last|this|next|past)\s+(week|weekend|month|year)\b", re.I)),
    ("rel_day", re.compile(rf"\b(last|this|next|this coming|this past)\s+({_DAY_RE})\b", re.I)),
    ("day_month", re.compile(
        rf"\b(?:on\s+)?(?:(?:{_DAY_RE}),?\s+(?:the\s+)?)?(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\.?"
        rf"(?:,?\s+(\d{{4}}))?\b", re.I)),
    ("month_day", re.compile(
        rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?\b", re.I)),
    ("in_month", re.compile(
        rf"\b(?:in|during|since|last|this|next)\s+({_MONTH_RE})(?:\s+(\d{{4}}))?\b", re.I)),
    ("bare_day", re.compile(rf"\b(?:on|since)\s+({_DAY_RE})\b", re.I)),
    ("year", re.compile(r"\b(?:in|since|during|of)\s+((?:19|20)\d\d)\b")),
]


@dataclass(frozen=True, slots=True)
class TimeRef:
    """One resolved expression: its text, the first day it covers and how wide it is."""

    text: str
    start: date
    granularity: Granularity
    label: str

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "date": self.start.isoformat(),
                "granularity": self.granularity, "label": self.label}


def format_day(day: date) -> str:
    """``7 May 2023``."""
    return f"{day.day} {calendar.month_name[day.month]} {day.year}"


def _shift_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _month_ref(text: str, first: date) -> TimeRef:
    return TimeRef(text, first, "month", f"{calendar.month_name[first.month]} {first.year}")


def _day_ref(text: str, day: date, ref: date | None = None) -> TimeRef:
    """A day; with ``ref`` (a weekday named relative to it) also "the Friday before <ref>"."""
    label = format_day(day)
    if ref is None or day == ref:
        return TimeRef(text, day, "day", label)
    name = calendar.day_name[day.weekday()]
    side = "before" if day < ref else "after"
    return TimeRef(text, day, "day", f"{name} {label} (the {name} {side} {format_day(ref)})")


def _pick_year(month: int, day: int, ref: date, tense: str) -> int:
    """The year of a day named without one: the latest not after ``ref`` in a past-tense
    sentence, the first not before it in a future one, else the nearest to it."""
    # a day the month lacks in some years (29 February) is compared as its last day there
    candidates = [date(year, month, min(day, calendar.monthrange(year, month)[1]))
                  for year in (ref.year - 1, ref.year, ref.year + 1)]
    if tense == "past":
        return max(c for c in candidates if c <= ref).year
    if tense == "future":
        return min(c for c in candidates if c >= ref).year
    return min(candidates, key=lambda c: abs((c - ref).days)).year


def _resolve_one(kind: str, m: re.Match[str], ref: date, tense: str) -> TimeRef | None:
    text = m.group(0)
    if kind == "before_yesterday":
        return _day_ref(text, ref - timedelta(days=2))
    if kind == "after_tomorrow":
        return _day_ref(text, ref + timedelta(days=2))
    if kind == "yesterday":
        return _day_ref(text, ref - timedelta(days=1))
    if kind == "today":
        return _day_ref(text, ref)
    if kind == "tomorrow":
        return _day_ref(text, ref + timedelta(days=1))
    if kind == "ago":
        raw, unit = m.group(1).lower(), m.group(2).lower()
        n = int(raw) if raw.isdigit() else _NUMBERS[raw]
        if unit == "day":
            if raw.isdigit() or raw in _NUMBER_WORDS:
                return _day_ref(text, ref - timedelta(days=n))
            day = ref - timedelta(days=n)  # "a few days ago": say it as vaguely as it was said
            return TimeRef(text, day, "day", f"{raw} days before {format_day(ref)} "
                           f"(about {format_day(day)})")
        if unit == "week":
            start = ref - timedelta(weeks=n)
            return TimeRef(text, start, "week", f"{n} week{'s' * (n > 1)} before "
                           f"{format_day(ref)} (about {format_day(start)})")
        if unit == "month":
            return _month_ref(text, _shift_months(ref, -n).replace(day=1))
        return TimeRef(text, date(ref.year - n, 1, 1), "year", str(ref.year - n))
    if kind == "rel_unit":
        which, unit = m.group(1).lower(), m.group(2).lower()
        step = {"last": -1, "past": -1, "this": 0, "next": 1}[which]
        if unit in ("week", "weekend"):
            monday = ref - timedelta(days=ref.weekday()) + timedelta(weeks=step)
            if unit == "weekend":
                saturday = monday + timedelta(days=5)
                if step == 0:
                    label = f"the weekend of {format_day(saturday)}"
                    return TimeRef(text, saturday, "weekend", label)
                side = "before" if step < 0 else "after"
                return TimeRef(text, saturday, "weekend",
                               f"the weekend {side} {format_day(ref)} ({format_day(saturday)})")
            if step == 0:
                return TimeRef(text, monday, "week", f"the week of {format_day(monday)}")
            side = "before" if step < 0 else "after"
            return TimeRef(text, monday, "week", f"the week {side} {format_day(ref)}")
        if unit == "month":
            return _month_ref(text, _shift_months(ref.replace(day=1), step))
        return TimeRef(text, date(ref.year + step, 1, 1), "year", str(ref.year + step))
    if kind in ("rel_day", "bare_day"):
        which = m.group(1).lower() if kind == "rel_day" else (
            "last" if tense == "past" else "next")
        weekday = _WEEKDAYS[m.group(2 if kind == "rel_day" else 1).lower()]
        if which in ("last", "this past"):
            back = (ref.weekday() - weekday) % 7 or 7
            return _day_ref(text, ref - timedelta(days=back), ref)
        if which in ("next", "this coming"):
            ahead = (weekday - ref.weekday()) % 7 or 7
            return _day_ref(text, ref + timedelta(days=ahead), ref)
        monday = ref - timedelta(days=ref.weekday())
        return _day_ref(text, monday + timedelta(days=weekday), ref)
    if kind in ("day_month", "month_day"):
        if kind == "day_month":
            day_s, month_s, year_s = m.group(1), m.group(2), m.group(3)
        else:
            month_s, day_s, year_s = m.group(1), m.group(2), m.group(3)
        month, day_n = _MONTHS[month_s.lower()], int(day_s)
        if not 1 <= day_n <= 31:
            return None
        year = int(year_s) if year_s else _pick_year(month, day_n, ref, tense)
        try:
            return _day_ref(text, date(year, month, day_n))
        except ValueError:
            return None
    if kind == "in_month":
        word = text.split()[0].lower()
        month = _MONTHS[m.group(1).lower()]
        if m.group(2):
            year = int(m.group(2))
        else:
            year = ref.year
            if word == "last":
                year -= month >= ref.month
            elif word == "next":
                year += month <= ref.month
            elif word != "this":
                year = _pick_year(month, 1, ref.replace(day=1), "past" if word == "since"
                                  else tense)
        return _month_ref(text, date(year, month, 1))
    if kind == "year":
        year = int(m.group(1))
        return TimeRef(text, date(year, 1, 1), "year", str(year))
    return None


def _modal_may(m: re.Match[str]) -> bool:
    """"this may help", "in may be": the modal verb, not the month (which is capitalised)."""
    return m.group(1) == "may" or (m.group(1).lower() == "may" and not m.group(2)
                                   and m.group(0).lower().startswith("this"))


#: A word every expression above holds: most texts have none, and one search settles it.
_ANY_TIME: Final = re.compile(
    rf"\b(?:yesterday|tomorrow|today|tonight|night|morning|afternoon|evening|ago|week|month|"
    rf"year|{_DAY_RE}|{_MONTH_RE}|(?:19|20)\d\d)", re.I)


def resolve(text: str, reference: date) -> list[TimeRef]:
    """Every time expression of ``text`` resolved against ``reference``, in text order."""
    if _ANY_TIME.search(text) is None:
        return []
    tense = "future" if _FUTURE.search(text) else "past" if _PAST.search(text) else ""
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, TimeRef]] = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            if any(m.start() < end and start < m.end() for start, end in taken):
                continue
            if kind == "in_month" and _modal_may(m):
                continue
            ref = _resolve_one(kind, m, reference, tense)
            if ref is not None:
                taken.append((m.start(), m.end()))
                found.append((m.start(), ref))
    return [ref for _, ref in sorted(found, key=lambda item: item[0])]


def reference_date(value: Any) -> date | None:
    """The date of a timestamp: ISO text (``2023-05-08T13:56:00Z``, ``2023-05-08``), UNIX
    seconds or milliseconds, or a ``date``/``datetime``; None when it is none of those."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value) / 1000.0 if value > 1e11 else float(value)
        try:
            return datetime.fromtimestamp(seconds, UTC).date()
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            return datetime.fromisoformat(text).date()
        except ValueError:  # e.g. a lower-case "z", or words after the date: its first 10
            try:
                return date.fromisoformat(text[:10])
            except ValueError:
                return None
    return None
