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

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from _server_helpers import make_settings
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS

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


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    """A fresh app (and gateway) per operation: schemathesis ends the lifespan after each."""
    keys_file = tmp_path / "keys.toml"
    append_key(keys_file, ADMIN_KEY, tenant="ops", role="admin")
    return _app(keys_file)


def _auth(path: str) -> dict[str, str]:
    key = CLUSTER_KEY if path.startswith("/v1/replica/") else ADMIN_KEY
    return {"Authorization": f"Bearer {key}"}


def test_every_check_is_on() -> None:
    names = CHECKS.get_all_names()
    assert {"not_a_server_error", "status_code_conformance", "response_schema_conformance",
            "negative_data_rejection", "positive_data_acceptance", "unsupported_method",
            "ignored_auth"} <= set(names)
    checks = schema.config.checks_config_for(operation=None, phase=None)
    assert all(checks.get_by_name(name=name).enabled for name in names)


@schema.parametrize()
@settings(max_examples=8, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_the_server_does_what_its_schema_says(case: Any, app: FastAPI) -> None:
    bound = {"timeout": STREAM_SECONDS} if case.path == "/v1/events" else {}
    case.call_and_validate(headers=_auth(case.path), app=app, **bound)
