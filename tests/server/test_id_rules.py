"""Session ids, memory ids and tenant names: the OpenAPI schema and the server give the same
verdict on every value, under the validator schemathesis uses (jsonschema-rs) and JavaScript's.

Pins the disagreement schemathesis 4.x found on clean machines: the session id pattern held
``\\ud800-\\udfff``; Rust regex engines cannot compile a surrogate escape, so jsonschema-rs
rejected the pattern and the generator dropped it, then sent ``""`` and ids with control
characters as valid data, which the server refused with 422.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema_rs
import pytest
from _server_helpers import make_settings, running_app

from deep_tree_echo._json import LoneSurrogateError, loads_text
from deep_tree_echo.aar_core.ids import MEMORY_ID, SESSION_ID, TENANT, is_unicode_text
from deep_tree_echo.aar_core.memory.manager import validate_memory_id
from deep_tree_echo.aar_core.memory.tenancy import validate_tenant
from deep_tree_echo.aar_core.sessions import validate_session_id
from deep_tree_echo.server.app import create_app
from deep_tree_echo.testing._process import require_binary

#: The pattern the session id had before: valid for Python's re, not for Rust's.
OLD_SESSION_ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\ud800-\udfff]+(?![\s\S])"
#: Values schemathesis drew as "valid" with the old pattern (first three), and the edges.
VALUES = [
    "", "äp w£@\x05Ê\U00043132O", "Ë\U0007abb1d\x88X", "a", " ", " a ", "é", "𨉥", "\U0010fffd",
    "x\x01", "\x85", "\t", "tab\tin", "s\n", "s\n\n", "\x7f", "\x9f", "\xa0", "a/b", "/",
    "a.b-c_d", ".a", "-", "A" * 64, "A" * 65, "s" * 128, "s" * 129, "m" * 256, "m" * 257,
    "\u2028", "\ufeff", "zero\u200bwidth", "NUL\x00",
]


def _openapi() -> dict[str, Any]:
    app = create_app(make_settings(api_keys="k-" + "k" * 30, cluster_key="c-" + "c" * 30))
    return app.openapi()


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from _patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _patterns(item)


def _accepts(check: Callable[[str], object], value: str) -> bool:
    try:
        check(value)
    except ValueError:  # InvalidSessionIdError, InvalidMemoryError, InvalidTenantError
        return False
    return True


def test_the_old_surrogate_range_is_what_made_validators_drop_the_pattern() -> None:
    re.compile(OLD_SESSION_ID_PATTERN)  # Python reads it ...
    with pytest.raises(jsonschema_rs.ValidationError):  # ... the Rust validator cannot
        jsonschema_rs.validator_for({"pattern": OLD_SESSION_ID_PATTERN})


def test_every_schema_pattern_compiles_for_the_rust_validator() -> None:
    patterns = set(_patterns(_openapi()))
    assert {SESSION_ID.pattern, MEMORY_ID.pattern, TENANT.pattern} <= patterns
    for pattern in patterns:
        re.compile(pattern)
        jsonschema_rs.validator_for({"type": "string", "pattern": pattern})  # raises if not


def test_every_schema_pattern_compiles_as_ecma_262_with_and_without_u() -> None:
    node = require_binary("node", "install Debian's nodejs (make test-deps does)")
    patterns = sorted(set(_patterns(_openapi())))
    script = ("const ps = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "for (const p of ps) { new RegExp(p); new RegExp(p, 'u'); }"
              "console.log(ps.length);")
    done = subprocess.run([node, "-e", script], input=json.dumps(patterns), text=True,
                          capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(len(patterns))


@pytest.mark.parametrize(("where", "check"), [
    ("session_id", validate_session_id), ("memory_id", validate_memory_id),
    ("tenant", validate_tenant),
])
def test_the_schema_and_the_server_agree_on_every_value(
    where: str, check: Callable[[str], object]
) -> None:
    doc = _openapi()
    if where == "session_id":
        body = doc["paths"]["/v1/process"]["post"]["requestBody"]["content"]["application/json"]
        schema = body["schema"]["properties"]["session_id"]
    else:
        params = doc["paths"]["/v1/memories/{memory_id}"]["get"]["parameters"]
        name = "memory_id" if where == "memory_id" else "X-Echo-Tenant"
        schema = next(p["schema"] for p in params if p["name"] == name)
    validator = jsonschema_rs.validator_for(schema)
    verdicts = {value: _accepts(check, value) for value in VALUES}
    assert any(verdicts.values()) and not all(verdicts.values())  # the table tells apart
    for value, accepted in verdicts.items():
        assert validator.is_valid(value) == accepted, (where, value)
        assert (re.search(schema["pattern"], value) is not None
                and len(value) <= schema["maxLength"]) == accepted, (where, value)


def test_lone_surrogates_are_not_ids_and_not_json_text() -> None:
    for rule in (SESSION_ID, MEMORY_ID, TENANT):
        assert not rule.matches("a\ud800") and not rule.matches("\udfff")
    assert not is_unicode_text("\ud83d") and is_unicode_text("\U0001f600")
    for body in [b'{"s": "a\\ud800"}', '{"s": "\\udc00b"}', b'["\xed\xa0\x80"]',
                 '{"s\\ud800": 1}', '"\\ud83d"'.encode("utf-16")]:
        with pytest.raises(LoneSurrogateError):
            loads_text(body)
    assert loads_text(b'{"s": "\\ud83d\\ude00"}') == {"s": "\U0001f600"}  # a pair is fine
    assert loads_text('{"s": "\\u00e9 \\ud7ff \\ue000"}') == {"s": "é \ud7ff \ue000"}


async def test_a_lone_surrogate_in_a_request_is_a_400_naming_it() -> None:
    async with running_app(create_app(make_settings())) as c:
        for method, path, body in [
            ("POST", "/v1/process", b'{"data": "hi", "session_id": "a\\ud800"}'),
            ("PUT", "/v1/memories/m1", b'{"content": "x\\udfffy"}'),
        ]:
            r = await c.request(method, path, content=body,
                                headers={"content-type": "application/json"})
            assert r.status_code == 400, r.text
            assert "lone surrogate" in r.json()["error"]["message"]
        assert (await c.get("/v1/memories/m1")).status_code == 404
        r = await c.post("/v1/process", json={"data": "hi", "session_id": "s\U0001f600"})
        assert r.status_code == 200 and r.json()["success"] is True
