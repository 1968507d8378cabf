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

_QUESTION_STARTS = frozenset(
    [
        "what",
        "who",
        "when",
        "where",
        "why",
        "how",
        "which",
        "whose",
        "whom",
        "is",
        "are",
        "was",
        "were",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "tell",
        "recall",
        "remember",
        "have",
        "has",
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
    """A question ends with '?' or starts with an interrogative or auxiliary word."""
    stripped = text.strip()
    if stripped.endswith("?"):
        return True
    first = tokens(stripped[:40])
    return bool(first) and first[0] in _QUESTION_STARTS
