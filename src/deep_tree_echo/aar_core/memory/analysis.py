"""Text analysis for memory search: the one place words become index terms.

``analyze(text)`` lowercases, splits unicode words (keeping numbers), drops possessive ``'s``
and contraction tails (``what's`` → ``what``, ``don't`` → ``do``), maps British spellings to
American ones (``favourite colour`` → ``favorite color``), removes stopwords and stems with
the Snowball English stemmer (PyStemmer), so "researching" finds "research". Every store's
search indexes and queries the output of :func:`deep_tree_echo.aar_core.memory._bm25.tokenize`,
which is this function.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

import Stemmer  # type: ignore[import-not-found]

#: Words with optional apostrophe tails (``sister's``, ``don't``); ``_`` is not a word char.
_WORD: Final = re.compile(r"[^\W_]+(?:'[^\W_]+)*", re.UNICODE)
#: The same words, faster to match; words holding "_" are split again.
_FAST_WORD: Final = re.compile(r"\w+(?:'\w+)*", re.UNICODE)
_APOSTROPHES: Final = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
#: Contraction and possessive tails dropped from a word (``n't`` leaves ``do``/``is``...).
_TAILS: Final = ("n't", "'s", "'re", "'ve", "'ll", "'d", "'m", "s'", "'")

#: A small English stopword list: question and function words that carry no topic.
# fmt: off
STOPWORDS: Final = frozenset(
    (
        "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are",
        "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but",
        "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for",
        "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself",
        "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself",
        "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on",
        "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same",
        "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them",
        "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too",
        "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
        "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself",
        "yourselves", "s", "t", "d", "ll", "m", "o", "re", "ve", "y", "ca", "wo", "sha",
    )
)
# fmt: on

#: British → American spellings of common words (stems differ, so they are mapped first).
# fmt: off
_UK_US: Final = {
    "colour": "color", "colours": "colors", "coloured": "colored", "favourite": "favorite",
    "favourites": "favorites", "flavour": "flavor", "flavours": "flavors", "honour": "honor",
    "labour": "labor", "neighbour": "neighbor", "neighbours": "neighbors",
    "neighbourhood": "neighborhood", "behaviour": "behavior", "humour": "humor",
    "rumour": "rumor", "harbour": "harbor", "odour": "odor", "vapour": "vapor",
    "armour": "armor", "savour": "savor", "endeavour": "endeavor", "centre": "center",
    "centres": "centers", "theatre": "theater", "theatres": "theaters", "metre": "meter",
    "metres": "meters", "litre": "liter", "litres": "liters", "fibre": "fiber",
    "kilometre": "kilometer", "kilometres": "kilometers", "grey": "gray", "mum": "mom",
    "mummy": "mommy", "programme": "program", "programmes": "programs", "catalogue": "catalog",
    "dialogue": "dialog", "cheque": "check", "tyre": "tire", "tyres": "tires",
    "jewellery": "jewelry", "aluminium": "aluminum", "pyjamas": "pajamas", "defence": "defense",
    "licence": "license", "offence": "offense", "practise": "practice", "travelled": "traveled",
    "travelling": "traveling", "traveller": "traveler", "cancelled": "canceled",
    "cancelling": "canceling", "modelling": "modeling", "labelled": "labeled",
    "organise": "organize", "organised": "organized", "organising": "organizing",
    "organisation": "organization", "realise": "realize", "realised": "realized",
    "recognise": "recognize", "recognised": "recognized", "apologise": "apologize",
    "analyse": "analyze", "analysed": "analyzed", "specialise": "specialize",
    "specialised": "specialized", "favour": "favor", "favours": "favors", "plough": "plow",
    "mould": "mold", "moustache": "mustache", "sceptical": "skeptical", "storey": "story",
    "maths": "math", "enrol": "enroll", "enrolment": "enrollment", "skilful": "skillful",
}
# fmt: on

_STEMMER: Final = Stemmer.Stemmer("english")
#: No PyStemmer cache: ``_TERMS`` and ``term``'s cache do that, and PyStemmer's keeps one
#: GC-tracked list per word (10,000 of them) for every full collection to scan.
_STEMMER.maxCacheSize = 0


@lru_cache(maxsize=1024)  # analyze() keeps its own dict; an lru entry is a GC-tracked list
def term(word: str) -> str:
    """The index term of one lowercased word with its tail dropped ("" for a stopword)."""
    word = _UK_US.get(word, word)
    if word in STOPWORDS:
        return ""
    if word.isdigit():
        return word
    stem: str = _STEMMER.stemWord(word)
    return stem


def strip_tail(word: str) -> str:
    """``sister's`` → ``sister``, ``don't`` → ``do``, ``we're`` → ``we``."""
    if "'" not in word:
        return word
    for tail in _TAILS:
        if word.endswith(tail) and len(word) > len(tail):
            return word[: -len(tail)]
    return word.split("'", 1)[0]


def words(text: str) -> list[str]:
    """Lowercased words with possessive and contraction tails dropped, stopwords kept."""
    lowered = text.lower().translate(_APOSTROPHES)
    return [strip_tail(w) for w in _WORD.findall(lowered)]


#: word (tail dropped) -> term; a plain dict read before the (slower) cached call.
_TERMS: dict[str, str] = {}
_TERMS_MAX: Final = 200_000


def analyze(text: str) -> list[str]:
    """Index terms of ``text`` in order: stemmed, US-spelled, stopwords out, numbers kept."""
    lowered = text.lower()
    if not lowered.isascii():
        lowered = lowered.translate(_APOSTROPHES)
    found = _FAST_WORD.findall(lowered)
    if "'" in lowered:
        found = [strip_tail(w) if "'" in w else w for w in found]
    if "_" in lowered:  # \w matches "_", which is no word character here
        found = [part for w in found for part in w.split("_") if part]
    known = _TERMS
    terms = [known.get(w) for w in found]
    if None in terms:
        for i, t in enumerate(terms):
            if t is None:
                w = found[i]
                terms[i] = t = term(w)
                if len(known) < _TERMS_MAX:
                    known[w] = t
    return [t for t in terms if t]
