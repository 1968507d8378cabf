"""Replies in the listener's perspective: the user's "my sister" is "your sister", the user's
"you" (Echo) is "I"; in a transcript turn ("Caroline: I went ..."), the speaker's "I" is
their name."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

_TOKEN: Final = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*|[^\w\s]+|\s+|_")

_TO_LISTENER: Final = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself",
    "i'm": "you're", "i've": "you've", "i'll": "you'll", "i'd": "you'd", "am": "are",
    "your": "my", "yours": "mine", "yourself": "myself", "you're": "I'm", "you've": "I've",
    "you'll": "I'll", "you'd": "I'd", "we": "we", "our": "our",
}
_PAIRS: Final = re.compile(r"\b(I am|I was|you are|you were)\b", re.IGNORECASE)
_PAIR_FLIP: Final = {"i am": "you are", "i was": "you were", "you are": "I am",
                     "you were": "I was"}


def _speaker_map(name: str) -> dict[str, str]:
    return {"i": name, "me": name, "my": f"{name}'s", "mine": f"{name}'s", "myself": name,
            "i'm": f"{name} is", "i've": f"{name} has", "i'll": f"{name} will",
            "i'd": f"{name} would", "am": "is"}


@lru_cache(maxsize=1024)
def flip_perspective(text: str, speaker: str | None = None) -> str:
    """The user's first person as the listener's second ("my sister" → "your sister"), the
    user's "you" (Echo) as "I"; with a speaker label, their first person as their name."""
    if speaker is None:
        text = _PAIRS.sub(lambda m: "\0" + _PAIR_FLIP[m.group(1).lower()] + "\0", text)
        mapping = _TO_LISTENER
    else:
        text = _PAIRS.sub(lambda m: "\0" + (f"{speaker} is" if m.group(1).lower() == "i am"
                                             else f"{speaker} was" if m.group(1).lower() == "i was"
                                             else m.group(1)) + "\0", text)
        mapping = _speaker_map(speaker)
    out: list[str] = []
    protected = False
    prev_word = ""
    for token in _TOKEN.findall(text.replace("\0", " \0 ")):
        if token.strip() == "\0":
            protected = not protected
            continue
        if protected or not token[:1].isalnum():
            out.append(token)
            continue
        key = token.lower().replace("\u2019", "'")
        if key == "you" and speaker is None:
            new = "I" if prev_word in ("", "and", "that", "because", "if", "when", "so") else "me"
        else:
            new = mapping.get(key, token)
        if new != token and token[:1].isupper() and new[:1].islower():
            new = new[:1].upper() + new[1:]
        out.append(new)
        prev_word = key
    result = "".join(out)
    result = re.sub(r" {2,}", " ", result).strip()
    return result[:1].upper() + result[1:]
