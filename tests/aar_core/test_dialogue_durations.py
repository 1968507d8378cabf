""""How long ...?" answered with the duration said, in digits, and since when where the date
is known; through the real gateway and engine, and the lead on its own."""

from __future__ import annotations

from typing import Any

import pytest

from deep_tree_echo.aar_core.engines._duration import asks_how_long, duration_lead
from deep_tree_echo.aar_core.gateway import AARGateway


def say(text: str, day: str = "2023-05-08") -> dict[str, Any]:
    return {"type": "text", "content": text,
            "context": {"session_id": "d", "timestamp": f"{day}T12:00:00Z",
                        "memory_scope": "tenant"}}


async def test_how_long_gets_the_duration_and_since_when() -> None:
    async with AARGateway({"test_mode": True}) as gw:
        for fact in ("I started learning the piano four months ago.",
                     "We have been married for seven years now.",
                     "Our old dog Rex was part of the family for twelve years."):
            await gw.process_cognitive_input(say(fact))
        result = await gw.process_cognitive_input(say("How long have I been learning the piano?"))
        assert result["cognitive_response"]["text"].startswith("4 months (since January 2023):")
        result = await gw.process_cognitive_input(say("How long have we been married?"))
        assert result["cognitive_response"]["text"].startswith("7 years (since 2016):")
        # not "has gone on until now": no "since"
        result = await gw.process_cognitive_input(say("How long was Rex part of the family?"))
        assert result["cognitive_response"]["text"].startswith("12 years:")
        # never told: no duration made up
        result = await gw.process_cognitive_input(say("How long have I played golf?"))
        assert result["cognitive_response"]["text"].startswith("I don't know that yet")


@pytest.mark.parametrize(
    ("question", "passage", "lead"),
    [("How long has Tim played?", "Tim has been playing for about four months now.",
      "about 4 months"),
     ("How long has John played?", "John has played for just under a year.",
      "just under 1 year"),
     ("How long ago was her birthday?", "Her birthday was ten years ago.", "10 years ago"),
     ("How long has Jo surfed?", "Jo started surfing 5 years ago.", "5 years (since 2018)"),
     ("How long did the trip take?", "It took a few days.", None),
     ("What did Jo do for 5 years?", "Jo surfed for 5 years.", None)],
)
def test_duration_lead(question: str, passage: str, lead: str | None) -> None:
    assert duration_lead(question, passage, "2023-05-08") == lead


def test_how_long_questions_by_their_form() -> None:
    assert asks_how_long("How long has Tim played the piano?")
    assert asks_how_long("how long ago was it?")
    assert not asks_how_long("How many times has Tim played?")
