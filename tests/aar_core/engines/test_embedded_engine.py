"""The embedded engine's answer selection and confidence, without the gateway."""

from __future__ import annotations

from deep_tree_echo.aar_core.engines import EmbeddedEngine, EngineQuery
from deep_tree_echo.aar_core.engines._text import is_question


async def test_statements_are_acknowledged() -> None:
    answer = await EmbeddedEngine().generate(EngineQuery("the sky is green", False))
    assert answer.confidence == 1.0
    assert "remember" in answer.text.lower()


async def test_best_covering_sentence_wins() -> None:
    memories = [
        {"id": "a", "content": "Lunch was late. The vault code is 7741.", "score": 2.5},
        {"id": "b", "content": "The vault is in the basement.", "score": 2.0},
    ]
    answer = await EmbeddedEngine().generate(EngineQuery("what is the vault code?", True,
                                                         memories))
    assert answer.text == "The vault code is 7741."
    assert answer.details["source_memory"] == "a"
    assert 0.5 < answer.confidence <= 1.0


async def test_unrelated_memories_give_no_answer() -> None:
    memories = [{"id": "a", "content": "cats like fish", "score": 1.0}]
    answer = await EmbeddedEngine().generate(EngineQuery("what is the vault code?", True,
                                                         memories))
    assert answer.confidence == 0.0


def test_question_detection() -> None:
    assert is_question("what is it")
    assert is_question("It is 5?")
    assert not is_question("the vault code is 7741")
