"""API keys as principals: ``tenant:key`` entries, the hashed keys file, roles and own limits."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from _server_helpers import AppClient
from typer.testing import CliRunner

from deep_tree_echo.cli import app as cli_app
from deep_tree_echo.errors import ConfigurationError
from deep_tree_echo.server.principals import KeyRing, append_key, key_digest, parse_key_entry

KEY = "k-" + "a" * 30


def test_entries_name_their_tenant_and_bare_keys_are_default() -> None:
    assert parse_key_entry("acme:s3cret") == ("acme", "s3cret")
    assert parse_key_entry("s3cret") == ("default", "s3cret")
    ring = KeyRing.from_settings(["acme:one", "two"], cluster_key="three")
    one, two, three = ring.match("one"), ring.match("two"), ring.match("three")
    assert one is not None and (one.tenant, one.role) == ("acme", "user")
    assert two is not None and (two.tenant, two.role) == ("default", "user")
    assert three is not None and three.role == "cluster"
    for wrong in ("on", "one ", "acme:one", "", None):
        assert ring.match(wrong) is None
    with pytest.raises(ConfigurationError, match="tenant"):
        KeyRing.from_settings(["bad tenant:key"])
    with pytest.raises(ConfigurationError, match="twice"):
        KeyRing.from_settings(["same"], cluster_key="same")


def test_keys_create_prints_the_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.toml"
    result = CliRunner().invoke(
        cli_app, ["keys", "create", "--tenant", "acme", "--role", "admin",
                  "--file", str(keys_file)])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("dte_") and len(key) > 40
    text = keys_file.read_text()
    assert key not in text
    entry = tomllib.loads(text)["keys"][0]
    assert entry == {"hash": "sha256:" + key_digest(key).hex(), "tenant": "acme", "role": "admin"}
    assert keys_file.stat().st_mode & 0o077 == 0  # private to its owner
    principal = KeyRing.from_settings([], keys_file=keys_file).match(key)
    assert principal is not None and (principal.tenant, principal.role) == ("acme", "admin")

    bad = CliRunner().invoke(cli_app, ["keys", "create", "--tenant", "no/pe",
                                       "--file", str(keys_file)])
    assert bad.exit_code == 2
    assert CliRunner().invoke(cli_app, ["keys", "create", "--tenant", "x"]).exit_code == 2


def test_a_broken_keys_file_is_a_configuration_error(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text('[[keys]]\nhash = "sha256:abcd"\ntenant = "acme"\n')
    with pytest.raises(ConfigurationError, match="hash"):
        KeyRing.from_settings([], keys_file=keys_file)
    keys_file.write_text(f'[[keys]]\nhash = "sha256:{"0" * 64}"\nrole = "root"\n')
    with pytest.raises(ConfigurationError, match="role"):
        KeyRing.from_settings([], keys_file=keys_file)


@pytest.mark.parametrize(
    "authorization",
    [f"Basic {KEY}", f"Bearer {KEY[:-1]}", f"Bearer {KEY}x", f"Token {KEY}", KEY, "Bearer"],
)
async def test_other_schemes_and_key_prefixes_are_refused(
    app_client: AppClient, authorization: str
) -> None:
    async with app_client(api_keys=KEY) as c:
        r = await c.get("/v1/memories", headers={"Authorization": authorization})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        ok = await c.get("/v1/memories", headers={"Authorization": f"bearer {KEY}"})
        assert ok.status_code == 200


async def test_only_admins_name_another_tenant(app_client: AppClient, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.toml"
    append_key(keys_file, "admin-key", tenant="ops", role="admin")
    async with app_client(api_keys=f"acme:{KEY}", api_keys_file=keys_file) as c:
        user = {"Authorization": f"Bearer {KEY}"}
        admin = {"Authorization": "Bearer admin-key"}
        assert (await c.get("/v1/memories", headers=user)).status_code == 200
        same = await c.get("/v1/memories", headers={**user, "X-Echo-Tenant": "acme"})
        assert same.status_code == 200
        other = await c.get("/v1/memories", headers={**user, "X-Echo-Tenant": "ops"})
        assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden"
        r = await c.get("/v1/memories", headers={**admin, "X-Echo-Tenant": "acme"})
        assert r.status_code == 200
        r = await c.get("/v1/memories", headers={**admin, "X-Echo-Tenant": "bad tenant!"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_tenant"


async def test_a_key_with_its_own_rate_limit_uses_it(
    app_client: AppClient, tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys.toml"
    append_key(keys_file, "slow-key", tenant="acme", rate_limit=(2, 3600))
    async with app_client(api_keys=KEY, api_keys_file=keys_file) as c:
        slow = {"Authorization": "Bearer slow-key"}
        statuses = [(await c.get("/v1/memories", headers=slow)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        fast = {"Authorization": f"Bearer {KEY}"}  # no limit of its own; the global one is off
        assert all([(await c.get("/v1/memories", headers=fast)).status_code == 200
                    for _ in range(5)])
