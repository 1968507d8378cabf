"""Key rotation without a restart: the server follows its keys file (create, revoke, limits),
keeps its keys when the file breaks, and never opens up when the last key goes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from _server_helpers import make_settings, running_app
from typer.testing import CliRunner

from deep_tree_echo.cli import app as cli_app
from deep_tree_echo.server.app import create_app
from deep_tree_echo.server.principals import KeyRing, append_key, key_id

OLD = "old-" + "o" * 30


def _cli(*args: str) -> str:
    result = CliRunner().invoke(cli_app, ["keys", *args])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_keys_created_and_revoked_take_effect_without_a_restart(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.toml"
    append_key(keys_file, OLD, tenant="acme")
    app = create_app(make_settings(api_keys_file=keys_file))
    app.state.keyring.recheck_seconds = 0.0  # look at the file before every request
    async with running_app(app) as c:
        assert (await c.get("/v1/memories", headers=_bearer(OLD))).status_code == 200
        new = _cli("create", "--tenant", "acme", "--rate-limit", "2", "--rate-window", "3600",
                   "--file", str(keys_file))
        assert (await c.put("/v1/memories/m", json={"content": "x"}, headers=_bearer(new))
                ).status_code in (200, 201)
        seen = await c.get("/v1/memories/m", headers=_bearer(OLD))  # same tenant: acme
        assert seen.status_code == 200
        assert (await c.get("/v1/memories", headers=_bearer(new))).status_code == 200
        assert (await c.get("/v1/memories", headers=_bearer(new))).status_code == 429  # own: 2
        listed = _cli("list", "--file", str(keys_file)).splitlines()
        assert listed == [f"{key_id(OLD)} acme user", f"{key_id(new)} acme user 2/3600s"]
        assert new not in keys_file.read_text()
        _cli("revoke", key_id(OLD), "--file", str(keys_file))
        r = await c.get("/v1/memories", headers=_bearer(OLD))
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert _cli("list", "--file", str(keys_file)) == f"{key_id(new)} acme user 2/3600s"
    assert keys_file.stat().st_mode & 0o077 == 0  # rewritten, still private
    bad = CliRunner().invoke(cli_app, ["keys", "revoke", key_id(OLD), "--file", str(keys_file)])
    assert bad.exit_code == 2 and "no key with id" in bad.output


async def test_a_broken_keys_file_keeps_the_keys_until_it_is_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys_file = tmp_path / "keys.toml"
    append_key(keys_file, OLD, tenant="acme")
    good = keys_file.read_text()
    app = create_app(make_settings(api_keys_file=keys_file))
    app.state.keyring.recheck_seconds = 0.0
    async with running_app(app) as c:
        keys_file.write_text(good + "[[keys]]\nhash = 'sha256:not-hex'\n")
        with caplog.at_level(logging.ERROR, logger="deep_tree_echo.server"):
            assert (await c.get("/v1/memories", headers=_bearer(OLD))).status_code == 200
        assert "keys file not reloaded" in caplog.text and OLD not in caplog.text
        keys_file.write_text("")  # fixed, and empty: every client key is gone ...
        r = await c.get("/v1/memories", headers=_bearer(OLD))
        assert r.status_code == 401
        assert (await c.get("/v1/memories")).status_code == 401  # ... and auth stays on


async def test_a_configured_keys_file_keeps_auth_on_even_when_missing(tmp_path: Path) -> None:
    app = create_app(make_settings(api_keys_file=tmp_path / "none-yet.toml"))
    async with running_app(app) as c:
        r = await c.get("/v1/memories")
        assert r.status_code == 401  # not "auth off": the operator asked for keys
        assert (await c.get("/healthz")).status_code == 200


def test_the_file_is_looked_at_no_more_often_than_asked(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.toml"
    append_key(keys_file, OLD, tenant="acme")
    ring = KeyRing.from_settings([], keys_file=keys_file)
    ring.recheck_seconds = 3600.0
    append_key(keys_file, "second-" + "s" * 30, tenant="acme")
    ring.refresh()
    assert ring.match("second-" + "s" * 30) is None  # not looked at yet
    assert ring.refresh(force=True) is True
    assert ring.match("second-" + "s" * 30) is not None and ring.match(OLD) is not None
    assert ring.refresh(force=True) is False  # unchanged: nothing reloaded
