"""Questions asking for several things, answered from facts told across several sessions:
the reply lists one short clause per item, only items of the person asked about, and says
it does not know when nothing was told; through the real gateway, engine and store."""

from __future__ import annotations

from typing import Any

import pytest

from deep_tree_echo.aar_core._echo_recall import MAX_PEOPLE, people_named
from deep_tree_echo.aar_core.engines._gather import LIST_CAP
from deep_tree_echo.aar_core.gateway import AARGateway

#: (speaker turn, day): Melanie's camping trips told over six sessions among other talk.
TOLD: list[tuple[str, str]] = [
    ("Melanie: We went camping at the beach with the kids, they loved it.", "2023-05-08"),
    ("Caroline: I went camping in the desert once, it was freezing at night.", "2023-05-08"),
    ("Melanie: The pottery class was fun, I made a bowl.", "2023-05-20"),
    ("Melanie: Last week I took the family camping in the mountains.", "2023-06-02"),
    ("Caroline: My support group meets every Tuesday.", "2023-06-02"),
    ("Melanie: We even went on another camping trip in the forest.", "2023-06-27"),
    ("Melanie: I painted a sunset over the lake yesterday.", "2023-07-10"),
    ("Melanie: Camping by the river was the highlight of our summer.", "2023-08-14"),
    ("Melanie: My brother and I camped on an island in the lake.", "2023-09-01"),
    ("Caroline: Melanie, your camping photos are lovely!", "2023-09-01"),
]

ITEMS = ("beach", "mountains", "forest", "river", "island")


def say(text: str, session: str, day: str = "2023-10-01", **context: Any) -> dict[str, Any]:
    return {"type": "text", "content": text,
            "context": {"session_id": session, "timestamp": f"{day}T12:00:00Z", **context}}


@pytest.fixture
async def gw() -> Any:
    async with AARGateway({"test_mode": True}) as gateway:
        for k, (turn, day) in enumerate(TOLD):
            await gateway.process_cognitive_input(say(turn, f"session-{k}", day))
        yield gateway


async def test_an_aggregate_question_lists_every_item_told_across_sessions(gw: Any) -> None:
    result = await gw.process_cognitive_input(
        say("Where has Melanie camped?", "qa", memory_scope="tenant"))
    text = result["cognitive_response"]["text"]
    for item in ITEMS:
        assert item in text, (item, text)
    # what another person said is not an item of Melanie's list
    assert "desert" not in text, text
    assert "support group" not in text and "sunset" not in text, text
    # an answer, not a guess; below the main search's top (Caroline's turn addressed to
    # Melanie ranks first there), as the items come from Melanie's own memories
    assert 0.4 <= result["confidence"] < 0.5
    # one short clause per item, not whole turns: at most LIST_CAP clauses after "Also:"
    assert text.count("Also:") == 1
    assert len(text.split()) <= 20 * LIST_CAP, text


async def test_a_list_in_session_scope_reads_the_sessions_own_memories() -> None:
    async with AARGateway({"test_mode": True}) as gateway:
        for turn, day in TOLD:
            await gateway.process_cognitive_input(say(turn, "one-session", day))
        await gateway.process_cognitive_input(
            say("Melanie: We camped in a canyon too.", "another-session"))
        result = await gateway.process_cognitive_input(
            say("Where has Melanie camped?", "one-session"))
        text = result["cognitive_response"]["text"]
        for item in ITEMS:
            assert item in text, (item, text)
        assert "canyon" not in text, text  # another session's memory stays out of scope


async def test_a_never_told_aggregate_question_gets_dont_know(gw: Any) -> None:
    for question in ("What instruments does Melanie play?",
                     "Which countries has Caroline visited?"):
        result = await gw.process_cognitive_input(say(question, "qa", memory_scope="tenant"))
        text = result["cognitive_response"]["text"]
        assert text.startswith("I don't know that yet"), (question, text)
        assert result["confidence"] < 0.5


async def test_items_saying_the_same_are_listed_once() -> None:
    async with AARGateway({"test_mode": True}) as gateway:
        for k, turn in enumerate((
                "Maria: I volunteer at the homeless shelter on Mondays.",
                "Maria: I volunteered at the homeless shelter again on Monday.",
                "Maria: I just started volunteering at a local dog shelter.")):
            await gateway.process_cognitive_input(say(turn, f"s{k}", f"2023-0{k + 1}-10"))
        result = await gateway.process_cognitive_input(
            say("What shelters does Maria volunteer at?", "qa", memory_scope="tenant"))
        text = result["cognitive_response"]["text"]
        assert "dog shelter" in text and "homeless shelter" in text, text
        assert text.count("homeless shelter") == 1, text


@pytest.mark.parametrize(
    ("question", "people"),
    [("Where has Melanie camped?", ["Melanie"]),
     ("What are Maria's dogs' names?", ["Maria"]),
     ("What subject have Caroline and Melanie both painted?", ["Caroline"]),
     ("What books have I read?", []),
     ("What European countries has Maria been to?", ["Maria"]),
     ("Which LGBTQ events did Caroline attend?", ["Caroline"]),
     ("Which games did John, Tim and James play?", ["John"])],
)
def test_people_named_in_a_question(question: str, people: list[str]) -> None:
    assert people_named(question) == people[:MAX_PEOPLE]
    assert len(people_named(question)) <= MAX_PEOPLE  # each one costs a search


async def test_a_reply_to_the_question_asked_starts_with_its_first_sentence() -> None:
    async with AARGateway({"test_mode": True}) as gateway:
        for turn in ("Sam: What are your dogs called?",
                     "James: Max and Daisy. Walking to the dog park is the best part of my day."):
            await gateway.process_cognitive_input(say(turn, "talk", "2023-04-02"))
        result = await gateway.process_cognitive_input(
            say("What are the names of James's dogs?", "qa", memory_scope="tenant"))
        text = result["cognitive_response"]["text"]
        # "dog park" is where the question's words are; the answer was said first
        assert text.startswith("Max and Daisy."), text
