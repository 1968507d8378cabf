"""Dialogue acts by the form of the sentence: statement, question, remember request, command,
greeting/small talk.

A message is split into sentences; each gets an act from its form (a final '?', a wh-word
followed by a verb, an auxiliary before its subject, an imperative verb first, a "remember
that / note: / don't forget / FYI" lead, or a greeting formula). The message's act is the
strongest one: a remember request, else any statement (a fact to keep), else a question or
command, else a greeting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Act = Literal["statement", "question", "remember", "command", "greeting"]

def _set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_SENTENCE: Final = re.compile(r"(?<=[.!?;])\s+|\n+")
_WORD: Final = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
#: "Caroline: ..." — a speaker label ahead of the words (one to three capitalised words).
_SPEAKER: Final = re.compile(r"^\s*([A-Z][\w.'-]*(?: [A-Z][\w.'-]*){0,2}):\s+(?=\S)")
_REMEMBER: Final = re.compile(
    r"^\s*(?:please\s*,?\s*)?(?:remember|note|note down|make a note|take note|keep in mind|"
    r"bear in mind|don'?t forget|do not forget|never forget|fyi|for your information|"
    r"just so you know|for the record|memo)\b(?:\s+(?:that|of|this))?\s*[:,\-]?\s*",
    re.IGNORECASE,
)
_WH: Final = _set(
    "what who whom whose when where why how which what's who's where's when's how's whats"
)
_AUX: Final = _set(
    "is are was were am do does did can could will would shall should may might must have "
    "has had isn't aren't wasn't weren't don't doesn't didn't can't couldn't won't "
    "wouldn't shouldn't haven't hasn't"
)
_SUBJECT: Final = _set(
    "i you he she it we they my your his her our their the this that these those "
    "there anyone someone somebody anybody anything something me"
)
_AFTER_WH: Final = _AUX | _set(
    "'s 's many much old long often far big kind sort type time year day color colour"
)
_IMPERATIVE: Final = _set(
    "tell show list give name describe remind find recall say explain summarize summarise "
    "repeat look search"
)
_SMALL_TALK: Final = re.compile(
    r"^(?:(?:hi|hello|hey|hiya|howdy|yo|greetings|good (?:morning|afternoon|evening|day|night)"
    r"|morning|evening|bye|goodbye|good ?bye|see you(?: later| soon)?|cheers|thanks|thank you"
    r"(?: (?:so|very) much)?|thx|ok|okay|cool|great|nice|awesome|sure|yes|no|yeah|nope|wow"
    r"|how are you(?: doing)?(?: today)?|how(?:'s| is) it going|how have you been|what's up"
    r"|whats up|sup|nice to (?:meet|see) you|good to (?:see|hear from) you|long time no see"
    r"|you too|me too|take care|have a (?:nice|good|great) (?:day|one|evening|weekend))"
    r"(?:[\s,]+(?:there|echo|again|all|everyone|friend|buddy|for now|(?-i:[A-Z][a-z]+)))*"
    r"[\s!.,?]*)+$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class DialogueAct:
    """A message's act, the text to store as a fact (remember requests lose their lead) and the
    speaker label when the message had one."""

    act: Act
    content: str
    speaker: str | None = None

    @property
    def is_question(self) -> bool:
        return self.act in ("question", "command")


def split_speaker(text: str) -> tuple[str | None, str]:
    """``"Caroline: I went..."`` → ``("Caroline", "I went...")``; no label → ``(None, text)``."""
    m = _SPEAKER.match(text)
    if m is None or _REMEMBER.match(text):
        return None, text
    return m.group(1), text[m.end():]


def sentences(text: str) -> list[str]:
    """Trimmed, non-empty sentences of ``text``."""
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def _words(sentence: str) -> list[str]:
    return [w.lower().replace("\u2019", "'") for w in _WORD.findall(sentence)]


def sentence_act(sentence: str) -> Act:
    """The act of one sentence, from its form."""
    if _SMALL_TALK.match(sentence):
        return "greeting"
    words = _words(sentence)
    if not words:
        return "greeting"
    asks = sentence.rstrip().endswith("?")
    if _REMEMBER.match(sentence) and not asks:
        return "remember"
    first, second = words[0], words[1] if len(words) > 1 else ""
    if first in _WH and (asks or second in _AFTER_WH or first.endswith("'s")
                         or (first in ("what", "which") and second not in _SUBJECT
                              and second not in ("a", "an"))):
        return "question"
    if first in _AUX and (second in _SUBJECT or (second[:1].isalpha() and _capitalised(
            sentence, 1))):
        return "question"
    if asks:
        return "question"
    if first == "please" and second:
        first = second
    if first in _IMPERATIVE or (first in ("do", "can", "could", "would") and "you" in words[:2]):
        return "command"
    return "statement"


def _capitalised(sentence: str, index: int) -> bool:
    found = _WORD.findall(sentence)
    return len(found) > index and found[index][:1].isupper()


def classify(text: str) -> DialogueAct:
    """The act of a whole message and what of it would be stored."""
    speaker, body = split_speaker(text)
    parts = sentences(body) or [body]
    acts = [sentence_act(s) for s in parts]
    if "remember" in acts:
        kept = []
        for sentence, act in zip(parts, acts, strict=True):
            if act == "remember":
                sentence = _REMEMBER.sub("", sentence, count=1).strip()
                sentence = sentence[:1].upper() + sentence[1:]
            if act in ("remember", "statement") and sentence:
                kept.append(sentence)
        return DialogueAct("remember", " ".join(kept) or body, speaker)
    if "statement" in acts:
        return DialogueAct("statement", text, speaker)
    if "question" in acts:
        return DialogueAct("question", text, speaker)
    if "command" in acts:
        return DialogueAct("command", text, speaker)
    return DialogueAct("greeting", text, speaker)
