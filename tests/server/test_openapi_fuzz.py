"""schemathesis against the app in-process: every operation, all checks, zero failures.

The schema must say exactly what the server enforces (ids, bodies, auth, errors), so data the
schema calls valid is accepted and data it calls invalid is refused with a documented status.
Bounded and deterministic: a fixed number of examples per operation, derandomized. Every
built-in check is on (schemathesis' default configuration; asserted below). The clock-drift
bound is off here: "at most 60 s ahead of this node's clock" is a property of the moment, not
of the schema (tests/server/test_replication_routes.py covers it). Every schema pattern must
compile under jsonschema-rs too (tests/server/test_id_rules.py): schemathesis drops a pattern
it cannot compile and then draws values the server refuses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import msgpack
import pytest
import schemathesis
from _server_helpers import make_settings
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS
from schemathesis.config import ChecksConfig

from deep_tree_echo.aar_core.ids import TENANT
from deep_tree_echo.server.app import create_app
from deep_tree_echo.server.principals import append_key

ADMIN_KEY = "admin-" + "a" * 32
#: How long an event stream (GET /v1/events, endless by design) is read before the transport
#: cuts it: the ": connected" comment comes at once, and schemathesis' default of 10 s per
#: call made this one operation most of the run. A bound on reading, not a timing assertion.
STREAM_SECONDS = 2.0
CLUSTER_KEY = "cluster-" + "c" * 32


def _app(keys_file: Path | None = None) -> FastAPI:
    return create_app(make_settings(api_keys="acme:user-key", api_keys_file=keys_file,
                                    cluster_key=CLUSTER_KEY, rate_limit_requests=0,
                                    max_clock_drift=None))


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())  # the same routes and schema
# Reports show values as sent: the keys here are throwaway, and "session" is one of
# schemathesis' sensitive markers, so a failing session_id used to be printed as [Filtered].
schema.config.output.sanitization.update(enabled=False)
# A body over the cap (max_body_bytes, 1 MiB) is refused with 413, documented on every operation
# that takes one; schemathesis' default list of rejection statuses lacks 413.
_REJECTIONS = schema.config.checks.negative_data_rejection.expected_statuses
schema.config.checks = ChecksConfig.from_dict(
    {"negative_data_rejection": {"expected-statuses": [*_REJECTIONS, "413"]}}
)




def _fit_msgpack(value: object) -> object:
    """``value`` with integers MessagePack cannot carry (outside int64/uint64) as floats.

    A client has no other way to send them; the /v1/process schema types no field as an
    integer, so the body stays as valid (or as invalid) as drawn.
    """
    if isinstance(value, bool) or not isinstance(value, (int, dict, list)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else float(value)
    if isinstance(value, dict):
        return {k: _fit_msgpack(v) for k, v in value.items()}
    return [_fit_msgpack(v) for v in value]


@schemathesis.serializer("application/msgpack")
def _msgpack(ctx: Any, value: object) -> bytes:
    """MessagePack bodies are drawn from the JSON schema (the same data model) and packed."""
    packed: bytes = msgpack.packb(_fit_msgpack(value), use_bin_type=True)
    return packed


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    """A fresh app (and gateway) per operation: schemathesis ends the lifespan after each."""
    keys_file = tmp_path / "keys.toml"
    append_key(keys_file, ADMIN_KEY, tenant="ops", role="admin")
    return _app(keys_file)


def _auth(path: str) -> dict[str, str]:
    key = CLUSTER_KEY if path.startswith("/v1/replica/") else ADMIN_KEY
    return {"Authorization": f"Bearer {key}"}


def _valid_as_sent(case: Any) -> bool:
    """Whether a negative case's request, as it goes out on the wire, is valid for the schema.

    schemathesis judges a case by the structure it drew, not by the request sent, in two ways
    that matter here: a query parameter drawn as ``None`` is never sent (``requests`` drops it),
    yet marks the case invalid; and ``GET /v1/memories`` takes any other query name as a filter
    (its ``filters`` parameter is a form-style, exploded free-form object), which schemathesis
    draws in positive cases but calls invalid in negative ones (it closes the query object:
    ``additionalProperties: false``, schemathesis/specs/openapi/adapter/parameters.py). Such a
    case is not held to negative-data rejection; every case whose request is invalid is, and
    every other check runs on all cases.
    """
    for location, info in case.meta.components.items():
        if location.value not in ("query", "header") and info.mode.is_negative:
            return False  # path or body drawn invalid: judged as schemathesis says
    tenant = (case.headers or {}).get("X-Echo-Tenant")
    if tenant is not None and not TENANT.matches(tenant):
        return False  # (the Authorization header is always the test's own)
    params = case.operation.definition.raw.get("parameters", [])
    declared = {p["name"]: p["schema"] for p in params
                if p["in"] == "query" and p["name"] != "filters"}
    free_form = (case.method.upper(), case.path) == ("GET", "/v1/memories")
    for name, value in (case.query or {}).items():
        if value is None:
            continue  # never sent
        if name in declared:
            validator = jsonschema_rs.validator_for(declared[name])
            if not (validator.is_valid(value) or _json_reading_is_valid(validator, value)):
                return False
        elif not free_form or name == "filters":
            return False  # unknown here, or the filters object's own name (refused: 400)
        # else a filter: on the wire its value is text whatever was drawn (a number, a list or
        # a dict goes out as name=text pairs), which the filters object allows
    return True


def _json_reading_is_valid(validator: Any, value: object) -> bool:
    """Query values travel as text: "10" is the integer 10, "false" the boolean."""
    try:
        return isinstance(value, str) and bool(validator.is_valid(json.loads(value)))
    except ValueError:
        return False


def test_every_check_is_on() -> None:
    names = CHECKS.get_all_names()
    assert {"not_a_server_error", "status_code_conformance", "response_schema_conformance",
            "negative_data_rejection", "positive_data_acceptance", "unsupported_method",
            "ignored_auth"} <= set(names)
    checks = schema.config.checks_config_for(operation=None, phase=None)
    assert all(checks.get_by_name(name=name).enabled for name in names)
    assert "413" in checks.negative_data_rejection.expected_statuses


# A protobuf body is opaque bytes to OpenAPI (its shape is EchoRequest in echo.proto), so no
# case can be drawn for it; the codec has its own tests (tests/integration/test_proto_module.py,
# tests/server/test_http_api.py). Any other media type left undrawn still warns.
@pytest.mark.filterwarnings(
    "ignore:Skipped test cases with unsupported payload media types. application/x-protobuf\n"
)
@schema.parametrize()
@settings(max_examples=8, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_the_server_does_what_its_schema_says(case: Any, app: FastAPI) -> None:
    bound: dict[str, Any] = {"timeout": STREAM_SECONDS} if case.path == "/v1/events" else {}
    if case.meta.generation.mode.is_negative and _valid_as_sent(case):
        bound["excluded_checks"] = CHECKS.get_by_names(["negative_data_rejection"])
    case.call_and_validate(headers=_auth(case.path), app=app, **bound)
