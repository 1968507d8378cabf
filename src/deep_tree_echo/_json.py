"""JSON in and out: the one compact encoder shared by every JSON answer (HTTP bodies,
WebSocket frames), and the decoder of every JSON request, which keeps to I-JSON.

``json.dumps`` with non-default options builds a new ``JSONEncoder`` per call; this one is
built once. Values JSON cannot hold are written as ``str(value)``. Python's ``json.loads``
accepts lone surrogates (``"\\ud800"``), which are not Unicode text: no JSON-schema validator
can read them, no store can write them as UTF-8. :func:`loads_text` refuses them up front, so
a string that reaches the service is text (RFC 7493 §2.1).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

__all__ = ["COMPACT_ENCODER", "LoneSurrogateError", "is_unicode_text", "loads_text"]

COMPACT_ENCODER: Final = json.JSONEncoder(default=str, separators=(",", ":"))
_SURROGATE_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, check_circular=False)
# what a lone surrogate can look like in a body: an escape of one, or its raw UTF-8 bytes
# (json.loads decodes bytes with 'surrogatepass'); a match only means "look closer". Each
# regex runs only after a one-byte test (memchr-fast) found the byte it starts with.
_ESCAPE_BYTES: Final = re.compile(rb"\\u[dD][89a-fA-F]")
_RAW_BYTES: Final = re.compile(rb"\xed[\xa0-\xbf]")
_ESCAPE_TEXT: Final = re.compile(r"\\u[dD][89a-fA-F]")


class LoneSurrogateError(ValueError):
    """A JSON string holds a lone surrogate: the text is not Unicode (not I-JSON)."""


def _might_hold_surrogates(body: bytes | str) -> bool:
    if isinstance(body, str):
        if "\\" in body and _ESCAPE_TEXT.search(body) is not None:
            return True
        return not body.isascii() and not is_unicode_text(body)
    if b"\x00" in body[:4] or body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return True  # UTF-16/32 (json.loads detects them): no cheap scan, always look closer
    return (b"\\" in body and _ESCAPE_BYTES.search(body) is not None) or (
        b"\xed" in body and _RAW_BYTES.search(body) is not None
    )


def is_unicode_text(value: str) -> bool:
    """Whether ``value`` is Unicode text (no lone surrogates), i.e. encodable as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def loads_text(body: bytes | str) -> Any:
    """``json.loads(body)``, refusing lone surrogates with :class:`LoneSurrogateError` (a
    ``ValueError``, as every other malformed-JSON error). Valid surrogate pairs
    (``"\\ud83d\\ude00"``) are one character and fine; the full check runs only when a quick
    scan of ``body`` finds something surrogate-like."""
    value = json.loads(body)
    if _might_hold_surrogates(body):
        try:
            _SURROGATE_ENCODER.encode(value).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise LoneSurrogateError(
                "a string holds a lone surrogate (JSON text must be Unicode, RFC 7493)"
            ) from exc
    return value
