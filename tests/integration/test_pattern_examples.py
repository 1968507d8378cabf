"""Each examples/*_pattern.py script runs as a subprocess and prints what it demonstrates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(script: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.slow
def test_gateway_example() -> None:
    assert _run("gateway_pattern.py") == [
        "direct: success = True | agent = echo",
        "json: 200 application/json success = True",
        "protobuf: 200 application/x-protobuf success = True",
        "msgpack in, json out: 200 application/json",
        "invalid: 422 invalid_request",
    ]


@pytest.mark.slow
def test_event_driven_example() -> None:
    lines = _run("event_driven_pattern.py")
    assert "to session room-1: type=agent_message" in lines
    assert "to session room-1: type=memory_update" in lines
    assert lines[-2:] == ["audit saw: login", "done"]


@pytest.mark.slow
def test_adapter_example() -> None:
    assert _run("adapter_pattern.py") == [
        "json: success json_input",
        "protobuf content: {'data': 'What is the capital of France?'}",
        "protobuf reply: CognitiveResponse agent = echo",
        "int64 as JSON: {'processedAtMs': '1700000000000'}",
        "msgpack: success",
    ]


@pytest.mark.slow
def test_plugin_example() -> None:
    assert _run("plugin_pattern.py") == [
        "rows: ['Neuromancer', 'Hyperion']",
        "refused: write_not_allowed",
        "error: No adapter found for format: graphql",
    ]
