"""Answers from retrieved memories: enough evidence or "I don't know", the answering clause,
the listener's perspective and, for "When ...?", the resolved date.

Evidence: the entities a question names (possessors such as "sister" in "my sister's name",
proper names) must appear in the memory, and at least half of its other content terms in the
chosen sentence (after stemming, US spelling and a few synonyms such as name ~ called); the
sentence must also say something the question does not.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, Final

from deep_tree_echo.aar_core.engines._dialogue import sentences, split_speaker
from deep_tree_echo.aar_core.engines._period import Period, in_periods, question_periods
from deep_tree_echo.aar_core.engines._perspective import flip_perspective
from deep_tree_echo.aar_core.memory.analysis import analyze, strip_tail, term
from deep_tree_echo.aar_core.timeref import format_day, reference_date, resolve

DONT_KNOW: Final = "I don't know that yet."
#: Lead of a reply that shows the nearest memory without claiming it answers.
NOT_SURE: Final = "I don't know that yet; the closest I have is:"
#: Question words that ask for the act of recalling, not for a topic.
_ASKING: Final = frozenset(
    analyze("tell remember recall know say mention please many much kind type sort")
)
#: Everyday words that stand for one another in a question and its answer (raw words; the
#: engine compares their stems, the agent adds them to the search query).
SYNONYM_WORDS: Final = {
    "name": ("called", "named"), "called": ("name",), "named": ("name",),
    "live": ("home", "lives"), "home": ("live",), "job": ("work", "works"),
    "work": ("job",), "born": ("birthday",), "birthday": ("born",),
    "like": ("favorite", "love", "enjoy"), "love": ("favorite", "like", "enjoy"),
    "enjoy": ("like", "love"), "favorite": ("like", "love"), "eat": ("food",),
    "food": ("eat",), "drive": ("car",), "car": ("drive",),
}
#: Irregular past forms (the stemmer leaves "bought" apart from "buy"): each form stands for
#: the others.
_IRREGULAR: Final = (
    "buy bought", "go went gone", "make made", "see saw seen", "meet met", "take took taken",
    "give gave given", "get got gotten", "write wrote written", "find found", "leave left",
    "feel felt", "tell told", "think thought", "bring brought", "teach taught", "win won",
    "lose lost", "run ran", "begin began begun", "sing sang sung", "swim swam swum",
    "eat ate eaten", "drive drove driven", "fly flew flown", "draw drew drawn", "grow grew grown",
    "speak spoke spoken", "break broke broken", "choose chose chosen", "sell sold",
    "build built", "send sent", "spend spent", "catch caught", "fall fell fallen",
    "hold held", "keep kept", "sleep slept", "hear heard", "pay paid", "lead led",
)
for _forms in _IRREGULAR:
    _all = _forms.split()
    for _form in _all:
        SYNONYM_WORDS[_form] = (*SYNONYM_WORDS.get(_form, ()), *(f for f in _all if f != _form))
_SYNONYM_RE: Final = re.compile(r"\b(" + "|".join(SYNONYM_WORDS) + r")\b")
_SYNONYMS: Final[dict[str, set[str]]] = {}
for _word, _others in SYNONYM_WORDS.items():
    _SYNONYMS.setdefault(term(_word), set()).update(term(o) for o in _others)
_POSSESSOR: Final = frozenset(("my", "your", "our"))
_POSSESSIVE_TAILS: Final = ("'s", "\u2019s", "s'", "s\u2019")
_RAW_WORD: Final = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
#: "What/Which <words> <auxiliary>": the words name what is asked for.
_ASKED_FOR: Final = re.compile(
    r"^\s*(?:what|which|where|who)\s+(.*?)\b(is|are|was|were|do|does|did|has|have|had)\b",
    re.IGNORECASE,
)
_PLURAL: Final = re.compile(r"[a-z]{2,}[^s\W']s$", re.IGNORECASE)
_CAPITALISED: Final = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-zA-Z]+")
_NUMBER: Final = re.compile(r"\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|"
                            r"twelve|dozen|a few|several|no)\b", re.IGNORECASE)
_WHEN: Final = re.compile(
    r"^\s*(when\b|(?:in |on |during )?(?:what|which) (?:year|date|day|month|week|weekend|time)\b|"
    r"how long ago\b)", re.IGNORECASE)
#: A name used to address someone: "Thanks, Maria!", "Wow John, ...", "Maria, since ...".
_VOCATIVE: Final = re.compile(
    r"(?:^|(?<=[.!?,;])\s*|\b(?:hey|hi|hello|thanks|thank you|wow|yeah|yes|congrats|oh|"
    r"sorry|dear|bye|ok|okay|aw+)\s*,?\s*)([A-Z][a-z]+)(?=\s*[,!?.;]|\s*$)",
    re.IGNORECASE,
)
#: The answering sentence takes its neighbours while the passage stays this short (words).
_WINDOW_WORDS: Final = 40


@dataclass(frozen=True, slots=True)
class Question:
    """A question's content terms, the entity terms among them and whether it asks "when"."""

    terms: frozenset[str]
    entities: frozenset[str]
    when: bool
    #: (modifier, head) of adjacent content words: "alarm code" is not any code.
    compounds: tuple[tuple[str, str], ...] = ()
    #: What kind of answer: "who" wants a name, "count" a number, "list" several memories.
    wants: str = ""
    #: Periods the question names ("on 16 June, 2023"): when the answer was said or happened.
    periods: tuple[Period, ...] = ()
    #: The entities that are people's names (capitalised mid-sentence words).
    names: frozenset[str] = frozenset()


def parse_question(text: str, reference: date | None = None) -> Question:
    """Content terms (minus recall verbs and the words of dates it names), entities
    (possessors and mid-sentence names) and the periods it names (resolved against
    ``reference``, the time it is asked; today without one)."""
    _, body = split_speaker(text)
    periods, date_words = question_periods(body, reference or datetime.now(UTC).date())
    terms = frozenset(t for t in analyze(body) if t not in _ASKING and t not in date_words)
    entities: set[str] = set()
    names: set[str] = set()
    raw = _RAW_WORD.findall(body)
    analysed = [term(strip_tail(w.lower().replace("\u2019", "'"))) for w in raw]
    for i, word in enumerate(raw):
        possessive = word.endswith(_POSSESSIVE_TAILS) or (
            i > 0 and raw[i - 1].lower() in _POSSESSOR
        )
        name = i > 0 and word[:1].isupper() and word.lower() not in ("i", "i'm", "i've")
        if (possessive or name) and analysed[i] in terms:
            entities.add(analysed[i])
            if name and not possessive:
                names.add(analysed[i])
    pairs = []
    for left, right in itertools.pairwise(analysed):
        if left and right and left in terms and right in terms:
            pairs.append((left, right))
    first = raw[0].lower() if raw else ""
    wants = ("who" if first in ("who", "who's", "whom") else
             "count" if first == "how" and len(raw) > 1 and raw[1].lower() in ("many", "much")
             else "list" if asks_for_several(body) else "")
    return Question(terms, frozenset(entities), _WHEN.match(body) is not None, tuple(pairs),
                    wants, periods, frozenset(names))


#: Questions with at most this many content terms get synonyms added to their search.
_SHORT_QUERY: Final = 3


#: Any day does to find where a date is named in a question (not what it resolves to).
_TODAY: Final = date(2000, 1, 1)


def search_text(text: str) -> str:
    """``text`` with the synonyms of its words appended when it is short (a missing synonym
    decides a one- or two-word match; longer questions have other words to match, and the
    added words, often frequent ones, would cost search time for little)."""
    undated = text
    for ref in resolve(text, _TODAY):  # the words of a date do not make a question long
        undated = undated.replace(ref.text, " ")
    if len(analyze(undated)) > _SHORT_QUERY:
        return text
    extra = [o for w in dict.fromkeys(_SYNONYM_RE.findall(text.lower()))
             for o in SYNONYM_WORDS[w]]
    return f"{text} {' '.join(extra)}" if extra else text


def asks_for_several(body: str) -> bool:
    """Whether a question asks for several things: a plural noun as what is asked for ("What
    books ...", "Which activities ..."), "what are", or the present perfect, which asks for
    everything so far ("What has Melanie painted?", "Where has Maria made friends?")."""
    m = _ASKED_FOR.match(body)
    if m is None:
        return False
    named, aux = m.group(1).split(), m.group(2).lower()
    if not named:
        return aux in ("are", "were", "has", "have")
    return any(_PLURAL.search(w) for w in named) and aux not in ("is", "was")


def wants_several(text: str) -> bool:
    """:func:`asks_for_several` of a message (its speaker label set aside)."""
    return asks_for_several(split_speaker(text)[1])


def _asks(sentence: str) -> float:
    """0.5 for a sentence that asks (ends with "?"), else 0."""
    return 0.5 if sentence.endswith("?") else 0.0


def _has_answer_kind(question: Question, text: str) -> bool:
    if question.wants == "who":
        return _CAPITALISED.search(text) is not None
    if question.wants == "count":
        return _NUMBER.search(text) is not None
    return True


@lru_cache(maxsize=2048)
def _terms(text: str) -> frozenset[str]:
    """The index terms of ``text`` (cached: the same memories come back question after
    question)."""
    return frozenset(analyze(text))


@lru_cache(maxsize=1024)
def _profile(
    content: str,
) -> tuple[str | None, str, frozenset[str], frozenset[str], tuple[str, ...]]:
    """A memory's speaker, body, expanded terms, speaker terms and sentences (cached)."""
    speaker, body = split_speaker(content)
    parts = tuple(sentences(body) or [body])
    speaker_terms = _terms(speaker) if speaker else frozenset()
    # the union of the sentences' terms (each cached, the answer step reads them again)
    all_terms = frozenset(_expand(set(speaker_terms)).union(*map(_expanded, parts)))
    return speaker, body, all_terms, speaker_terms, parts


@lru_cache(maxsize=1024)
def _asked_terms(context: str) -> frozenset[str]:
    """The expanded terms of the question a memory answered, its vocatives left out."""
    return _expanded(_VOCATIVE.sub(" ", split_speaker(context)[1]))


@lru_cache(maxsize=2048)
def _expanded(text: str) -> frozenset[str]:
    """:func:`_terms` plus the synonyms of each term."""
    return frozenset(_expand(set(_terms(text))))


@lru_cache(maxsize=2048)
def _addressed_out(sentence: str) -> frozenset[str]:
    """:func:`_expanded` of ``sentence`` without the names it addresses."""
    return _expanded(_VOCATIVE.sub(" ", sentence))


def _expand(terms: set[str]) -> set[str]:
    out = set(terms)
    for t in terms:
        out |= _SYNONYMS.get(t, set())
    return out


def _short_names(entities: frozenset[str], speaker_terms: frozenset[str]) -> frozenset[str]:
    """The entities that are a short form of the speaker's name ("Mel" for Melanie)."""
    if not speaker_terms:
        return frozenset()
    return frozenset(e for e in entities if len(e) >= 3 and e not in speaker_terms
                     and any(s.startswith(e) for s in speaker_terms))


def _names_a_time(memory: dict[str, Any]) -> bool:
    """Whether a memory holds a time expression (resolved when stored; else looked for now):
    the answer to "when" is usually said with one."""
    dates = memory.get("dates")
    if isinstance(dates, list):
        return bool(dates)
    return _holds_a_time(str(memory.get("content", "")))


@lru_cache(maxsize=1024)
def _holds_a_time(text: str) -> bool:
    return bool(resolve(text, _TODAY))


#: First words of a sentence that goes on from the one before ("Basically, ...", "It was ...").
_CONTINUES: Final = frozenset((
    "it", "its", "it's", "this", "that", "these", "those", "they", "them", "so", "and", "but",
    "also", "basically", "anyway", "plus", "then", "which", "there", "he", "she", "his", "her",
    "we", "our",
))


def _continues(sentence: str) -> bool:
    first = _RAW_WORD.match(sentence.lstrip("\"'([ "))
    return first is not None and first.group(0).lower().replace("\u2019", "'") in _CONTINUES


def _window(parts: tuple[str, ...], index: int, says_little: bool) -> str:
    """The answering sentence with the ones after it, and the one before when it goes on from
    it ("Basically, ...", "It was ..."), while the passage stays short: the question's words
    find the place, the answer is the new information said around it. A sentence that says
    little beyond the question always takes the next one."""
    first = last = index
    words = len(parts[index].split())
    if says_little and last + 1 < len(parts):
        last += 1
        words += len(parts[last].split())
    while True:
        grown = False
        if last + 1 < len(parts) and words + len(parts[last + 1].split()) <= _WINDOW_WORDS:
            last += 1
            words += len(parts[last].split())
            grown = True
        if (first > 0 and _continues(parts[first])
                and words + len(parts[first - 1].split()) <= _WINDOW_WORDS):
            first -= 1
            words += len(parts[first].split())
            grown = True
        if not grown:
            return " ".join(parts[first:last + 1])


@dataclass(slots=True)
class Evidence:
    """The best answering clause found in the memories and how well it covers the question."""

    clause: str
    coverage: float
    relevance: float
    memory: dict[str, Any]
    speaker: str | None
    sentence: str
    share: float = 1.0
    said_by_entity: bool = False
    rank: float = 0.0
    #: A person the question names was taken to be the one spoken to (not named in it).
    listener_assumed: bool = False
    #: Said in the period the question names (True when it names none).
    dated: bool = True


def find_evidence(
    question: Question, memories: list[dict[str, Any]]
) -> tuple[list[Evidence], list[Evidence]]:
    """Memories that answer ``question``, best first, each with its answering text: those with
    enough evidence, and those that only come close (one pass computes both).

    Enough evidence: every entity covered, at least half of the other terms (or some of them
    in a memory that retrieval ranked at the top), no compound of the question naming another
    thing of the same kind, and the kind of answer asked for. Close: every entity and some of
    the other terms. In a transcript memory (``"Name: text"``) an entity counts only when the
    speaker is it or the answering sentence names it (a name used to address someone is not
    what the turn is about); when the speaker is one of the people the question names, the
    others are whom they talk to and need not be named ("What did Evan suggest Sam try?"),
    and a short form of the speaker's name counts as it ("Mel" for Melanie). The reply quotes
    the answering passage (see :func:`_window`).
    """
    if not question.terms:
        return [], []
    attributes = question.terms - question.entities
    strict: list[tuple[float, Evidence]] = []
    near: list[tuple[float, Evidence]] = []
    for position, memory in enumerate(memories):
        content = str(memory.get("content", ""))
        speaker, body, all_terms, speaker_set, parts = _profile(content)
        speaker_set = speaker_set | _short_names(question.entities, speaker_set)
        said_by_entity = bool(speaker_set & question.entities)
        # the speaker named, the other people named are whom they talk to (named or not)
        required = (question.entities - (question.names - speaker_set) if said_by_entity
                    else question.entities)
        if not required <= all_terms | speaker_set:
            continue
        compound_clash = any(
            head in all_terms and modifier not in all_terms and modifier not in speaker_set
            for modifier, head in question.compounds
        )
        memory_terms = set(all_terms)
        context = memory.get("context")  # the question it answered, when there was one
        if isinstance(context, str):
            memory_terms |= _asked_terms(context) - question.entities
        # memories come best first; without a relevance, their order stands for it
        relevance = float(memory.get("relevance", 1.0 if position == 0 else 0.5))
        share = len(attributes & memory_terms) / len(attributes) if attributes else 1.0
        if share == 0.0:
            continue
        # a sentence that asks something is not the answer (the next turn usually is)
        scored = [(len(question.terms & _expanded(sentence)) - _asks(sentence), -index, sentence)
                  for index, sentence in enumerate(parts)]
        best, neg_index, sentence = max(scored)
        if speaker and not required <= _addressed_out(sentence) | speaker_set:
            continue
        novel = _terms(sentence) - question.terms - speaker_set
        answer = _window(parts, -neg_index, len(novel) < 3)
        if (isinstance(context, str) and not answer.startswith(parts[0])
                and attributes & _asked_terms(context)):
            # it answered a question asking this: its answer is said first ("Max and Daisy.")
            answer = f"{parts[0]} {answer}"
        covered = question.terms & (memory_terms | question.entities)
        coverage = len(covered) / len(question.terms)
        dated = not question.periods or in_periods(memory, question.periods)
        rank = (0.6 * relevance + 0.4 * coverage + (0.2 if said_by_entity else 0.0)
                + 0.2 * best / len(question.terms) + (0.0 if dated else -0.3)
                + (0.2 if question.when and _names_a_time(memory) else 0.0))
        evidence = Evidence(answer, coverage, relevance, memory, speaker, sentence, share,
                            said_by_entity, rank,
                            bool(question.entities - required - all_terms), dated)
        enough = (
            dated
            and not _asks(sentence)
            and (share >= 0.5 or relevance >= 1.0)
            and not compound_clash
            and _has_answer_kind(question, body)
        )
        (strict if enough else near).append((rank, evidence))
    strict.sort(key=lambda item: item[0], reverse=True)
    near.sort(key=lambda item: item[0], reverse=True)
    return [e for _, e in strict], [e for _, e in near]


# -- replies ------------------------------------------------------------------------------


def _date_of(evidence: Evidence) -> tuple[str | None, bool]:
    """A date label for a "when" answer and whether it came from a resolved expression."""
    raw = evidence.memory.get("dates")
    if not isinstance(raw, list):  # not resolved when stored: against the day it was said
        said = reference_date(evidence.memory.get("said_on")) or datetime.now(UTC).date()
        raw = [ref.to_dict() for ref in resolve(str(evidence.memory.get("content", "")), said)]
    dates = [d for d in raw if isinstance(d, dict)]
    in_clause = [d for d in dates if str(d.get("text", "")).lower() in evidence.sentence.lower()]
    chosen = (in_clause or dates)[:1]
    if chosen:
        return str(chosen[0].get("label") or chosen[0].get("date")), True
    said_text = evidence.memory.get("said_on")
    if isinstance(said_text, str):
        try:
            return format_day(date.fromisoformat(said_text[:10])), False
        except ValueError:
            return None, False
    return None, False


def _said(evidence: Evidence) -> str:
    clause = flip_perspective(evidence.clause.rstrip(" ,;"), evidence.speaker)
    return clause if clause[-1:] in ".!?" else clause + "."


def _confidence(evidence: Evidence) -> float:
    """How sure the answer is, from what the bench shows predicts a right answer: the share of
    the asked attribute covered, whether retrieval ranked the memory first (BM25 weighs rare
    words, which coverage alone does not) and whether the person asked about said it."""
    top = evidence.relevance >= 0.999
    confidence = 0.05 + 0.25 * evidence.share
    confidence += 0.3 if top else 0.05 * evidence.relevance
    confidence += 0.15 if evidence.said_by_entity or evidence.speaker is None else 0.0
    confidence -= 0.1 if evidence.listener_assumed else 0.0  # who was spoken to is a guess
    return min(confidence, 0.4) if evidence.share < 0.5 else confidence


def _said_on(evidence: Evidence) -> str | None:
    said = evidence.memory.get("said_on")
    if not isinstance(said, str):
        return None
    try:
        return format_day(date.fromisoformat(said[:10]))
    except ValueError:
        return None


def _dated(question: Question, evidence: Evidence, text: str) -> tuple[str, float]:
    """For "When ...?": the text led by the resolved date (and a confidence factor)."""
    if not question.when:
        return text, 1.0
    label, resolved = _date_of(evidence)
    if label and resolved:
        said = _said_on(evidence)
        return f"{label}: {text}" + (f" (said on {said})" if said else ""), 1.0
    if label:
        return f"Around {label}: {text}", 0.8
    return text, 0.6


#: A second memory ranked within this of the best is quoted too.
_CLOSE_RANK: Final = 0.1


def compose(question: Question, found: list[Evidence]) -> tuple[str, float]:
    """The reply text and its confidence (from the best evidence): the best clause, and the
    second one as well when it ranks about as high (both, rather than a guess between them).
    Questions asking for several things are answered by ``_gather.list_reply``."""
    evidence = found[0]
    clause = _said(evidence)
    others = [e for e in found[1:] if not _asks(e.sentence)]
    more = [e for e in others[:1] if e.rank >= evidence.rank - _CLOSE_RANK]
    if more:
        clause = " ".join([clause, "Also:", *(_said(e) for e in more)])
    text, factor = _dated(question, evidence, clause)
    return text, min(1.0, _confidence(evidence) * factor)


def tentative(question: Question, found: list[Evidence]) -> tuple[str, float]:
    """A don't-know reply that shows the nearest memories (entity covered, attribute in part;
    statements before questions), two when the second ranks about as high."""
    ordered = sorted(found, key=lambda e: _asks(e.sentence) > 0)  # stable: rank order kept
    evidence = ordered[0]
    text, _ = _dated(question, evidence, _said(evidence))
    second = [e for e in ordered[1:2] if not _asks(e.sentence)
              and e.rank >= evidence.rank - _CLOSE_RANK]
    if second:
        text = f"{text} Or: {_said(second[0])}"
    return f"{NOT_SURE} {text}", round(0.15 + 0.2 * evidence.coverage, 4)
