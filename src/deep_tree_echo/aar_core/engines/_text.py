"""Tiny text helpers shared by the engines: tokens, sentences, question detection."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "should",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "tell",
        "about",
        "please",
        "recall",
        "remember",
        "know",
    ]
)


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return _WORD.findall(text.lower())


def content_tokens(text: str) -> set[str]:
    """Tokens that carry meaning (stopwords removed)."""
    return {t for t in tokens(text) if t not in STOPWORDS}


def sentences(text: str) -> list[str]:
    """Split ``text`` into trimmed, non-empty sentences."""
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def is_question(text: str) -> bool:
    """True for a question or a command asking for something (by sentence form, see
    ``_dialogue``); statements, remember requests and greetings are not questions."""
    from deep_tree_echo.aar_core.engines._dialogue import classify

    return classify(text).is_question
