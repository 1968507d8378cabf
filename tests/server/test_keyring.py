"""The key ring and keys file, exactly: digests and ids, every refused entry named, matching.

Found by mutation testing: the keys-file checks (hash scheme and length, role, per-key limits),
the error messages naming the entry, and which principal a key maps to were loosely tested.
"""

from __future__ import annotations

import hashlib
import locale
from pathlib import Path

import pytest

from deep_tree_echo.errors import ConfigurationError
from deep_tree_echo.server.principals import (
    KeyRing,
    Principal,
    append_key,
    key_digest,
    key_id,
    load_keys_file,
    parse_key_entry,
)

HASH = "sha256:" + hashlib.sha256(b"file-key").hexdigest()


def write(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def test_digest_and_id_are_sha256_of_the_utf8_key() -> None:
    assert key_digest("clé") == hashlib.sha256("clé".encode()).digest()
    assert key_id("clé") == hashlib.sha256("clé".encode()).hexdigest()[:16]
    assert len(key_id("x")) == 16


def test_key_entries_split_on_the_first_colon() -> None:
    assert parse_key_entry("acme:a:b") == ("acme", "a:b")
    assert parse_key_entry("plain") == ("default", "plain")
    with pytest.raises(ConfigurationError) as info:
        parse_key_entry("acme:")
    assert str(info.value) == "api_keys: an entry 'tenant:' has an empty key"
    with pytest.raises(ConfigurationError) as bad:
        parse_key_entry("no/pe:key")
    assert str(bad.value).startswith("api_keys: tenant must be")


def test_a_keys_file_entry_becomes_a_principal(tmp_path: Path) -> None:
    path = write(tmp_path / "k.toml", f"""
[[keys]]
hash = "{HASH}"
tenant = "acme"
role = "admin"
rate_limit_requests = 7
rate_limit_window = 30

[[keys]]
hash = "{HASH.upper().replace("SHA256:", "sha256:")}"
""")
    first, second = load_keys_file(path)
    digest = hashlib.sha256(b"file-key").digest()
    assert first.digest == digest
    assert first.principal == Principal(digest.hex()[:16], "acme", "admin", (7, 30.0))
    assert second.principal == Principal(digest.hex()[:16], "default", "user", None)


def test_a_per_key_limit_has_a_default_window_of_a_minute(tmp_path: Path) -> None:
    path = write(tmp_path / "k.toml", f'[[keys]]\nhash = "{HASH}"\nrate_limit_requests = 1\n')
    (entry,) = load_keys_file(path)
    assert entry.principal.rate_limit == (1, 60.0)


def test_a_missing_keys_file_has_no_keys_and_an_empty_one_too(tmp_path: Path) -> None:
    assert load_keys_file(tmp_path / "absent.toml") == []
    assert load_keys_file(write(tmp_path / "empty.toml", "")) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("keys = 3\n", "{path}: 'keys' must be an array of tables ([[keys]])"),
        ("keys = [3]\n", "{path}: keys[0] must be a table"),
        ("[[keys]]\ntenant = 'acme'\n", "{path}: keys[0]: 'hash' must be 'sha256:<64 hex digits>'"),
        ("[[keys]]\nhash = 5\n", "{path}: keys[0]: 'hash' must be 'sha256:<64 hex digits>'"),
        (f"[[keys]]\nhash = '{HASH.replace('sha256:', 'md5:')}'\n",
         "{path}: keys[0]: 'hash' must be 'sha256:<64 hex digits>'"),
        (f"[[keys]]\nhash = '{HASH[:-2]}'\n",
         "{path}: keys[0]: 'hash' must be 'sha256:<64 hex digits>'"),
        (f"[[keys]]\nhash = '{HASH}00'\n",
         "{path}: keys[0]: 'hash' must be 'sha256:<64 hex digits>'"),
        (f"[[keys]]\nhash = '{HASH[:-1]}g'\n",
         "{path}: keys[0]: 'hash' must be 'sha256:<64 hex digits>'"),
        (f"[[keys]]\nhash = '{HASH}'\nrole = 'cluster'\n",
         "{path}: keys[0]: 'role' must be one of user, admin"),
    ],
)
def test_each_broken_entry_is_named(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path / "k.toml", body)
    with pytest.raises(ConfigurationError) as info:
        load_keys_file(path)
    assert str(info.value) == message.format(path=path)


def test_the_entry_number_is_the_failing_one(tmp_path: Path) -> None:
    other = "sha256:" + "ab" * 32
    path = write(tmp_path / "k.toml", f"[[keys]]\nhash = '{other}'\n[[keys]]\nhash = 'x'\n")
    with pytest.raises(ConfigurationError) as info:
        load_keys_file(path)
    assert str(info.value).startswith(f"{path}: keys[1]: ")


def test_a_bad_tenant_in_the_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "k.toml", f"[[keys]]\nhash = '{HASH}'\ntenant = 'no/pe'\n")
    with pytest.raises(ConfigurationError) as info:
        load_keys_file(path)
    assert str(info.value).startswith(f"{path}: keys[0]: tenant must be")


@pytest.mark.parametrize(
    "limit",
    [
        "rate_limit_requests = 0",
        "rate_limit_requests = true",
        "rate_limit_requests = 2.0",
        "rate_limit_requests = 2\nrate_limit_window = 0",
        "rate_limit_requests = 2\nrate_limit_window = -1.5",
        "rate_limit_requests = 2\nrate_limit_window = true",
        "rate_limit_requests = 2\nrate_limit_window = '60'",
    ],
)
def test_each_bad_per_key_limit_is_refused(tmp_path: Path, limit: str) -> None:
    path = write(tmp_path / "k.toml", f"[[keys]]\nhash = '{HASH}'\n{limit}\n")
    with pytest.raises(ConfigurationError) as info:
        load_keys_file(path)
    assert str(info.value) == (
        f"{path}: keys[0]: rate_limit_requests must be an integer >= 1 and "
        "rate_limit_window a number of seconds > 0"
    )


def test_the_smallest_per_key_limit_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "k.toml",
                 f"[[keys]]\nhash = '{HASH}'\nrate_limit_requests = 1\nrate_limit_window = 0.5\n")
    (entry,) = load_keys_file(path)
    assert entry.principal.rate_limit == (1, 0.5)


def test_an_unreadable_keys_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = write(tmp_path / "k.toml", "[[keys]\n")
    with pytest.raises(ConfigurationError) as info:
        load_keys_file(path)
    assert str(info.value).startswith(f"cannot read keys file {path}: ")


def test_the_ring_maps_each_key_to_its_principal(tmp_path: Path) -> None:
    keys_file = tmp_path / "k.toml"
    append_key(keys_file, "file-key", tenant="ops", role="admin")
    ring = KeyRing.from_settings(["", "acme:one", "two"], keys_file=keys_file,
                                 cluster_key="peer")
    assert len(ring) == 4  # the empty entry is skipped
    assert ring.principals() == [
        Principal(key_id("one"), "acme", "user"),
        Principal(key_id("two"), "default", "user"),
        Principal(key_id("file-key"), "ops", "admin"),
        Principal(key_id("peer"), "default", "cluster"),
    ]
    assert ring.match("file-key") == Principal(key_id("file-key"), "ops", "admin")
    assert ring.match("peer") == Principal(key_id("peer"), "default", "cluster")
    assert ring.match("two") == Principal(key_id("two"), "default", "user")
    assert ring.match("tw") is None and ring.match("two2") is None and ring.match("") is None


def test_a_key_matching_the_last_entry_is_found() -> None:
    ring = KeyRing.from_settings([f"t{n}:key-{n}" for n in range(5)])
    for n in range(5):
        found = ring.match(f"key-{n}")
        assert found is not None and found.tenant == f"t{n}"


def test_which_kinds_of_keys_are_configured() -> None:
    assert (KeyRing().clients_configured, KeyRing().cluster_configured) == (False, False)
    cluster_only = KeyRing.from_settings([], cluster_key="peer")
    assert (cluster_only.clients_configured, cluster_only.cluster_configured) == (False, True)
    clients_only = KeyRing.from_settings(["a"])
    assert (clients_only.clients_configured, clients_only.cluster_configured) == (True, False)
    assert KeyRing.from_settings([], cluster_key="").cluster_configured is False


def test_a_key_configured_twice_is_refused_naming_its_id(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        KeyRing.from_settings(["acme:same", "other:same"])
    assert str(info.value) == (
        f"the same key is configured twice (key id {key_id('same')})"
    )
    keys_file = tmp_path / "k.toml"
    append_key(keys_file, "dup", tenant="ops")
    with pytest.raises(ConfigurationError, match="configured twice"):
        KeyRing.from_settings(["dup"], keys_file=keys_file)
    with pytest.raises(ConfigurationError, match="configured twice"):
        KeyRing.from_settings([], keys_file=keys_file, cluster_key="dup")


def test_the_keys_file_is_utf8_whatever_the_locale(tmp_path: Path) -> None:
    path = write(tmp_path / "k.toml", f"# clé de Léa\n[[keys]]\nhash = '{HASH}'\n")
    saved = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")  # a server started with LANG=C: ASCII by default
    try:
        (entry,) = load_keys_file(path)
    finally:
        locale.setlocale(locale.LC_CTYPE, saved)
    assert entry.principal.key_id == key_id("file-key")
