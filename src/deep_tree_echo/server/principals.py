"""Who is calling: API keys resolved to principals (tenant + role), and the keys file.

Keys come from ``DTE_API_KEYS`` (``tenant:key`` or a bare ``key`` of tenant ``default``), from
the TOML keys file (``DTE_API_KEYS_FILE``, keys stored as SHA-256 hashes only) and from
``DTE_CLUSTER_KEY`` (the peers' credential). A presented key is hashed once and compared with
every known hash by :func:`hmac.compare_digest`, without an early exit, so the time taken
does not depend on which key (if any) matched. Keys are never logged; only their short id is.

SHA-256 rather than scrypt/argon2: the keys this module creates carry 256 random bits, so a
stolen hash cannot be brute-forced whatever the hash speed, while a slow KDF would cost tens of
milliseconds of CPU on every request and turn auth into a denial-of-service lever.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from deep_tree_echo.errors import ConfigurationError
from deep_tree_echo.tenants import DEFAULT_TENANT, InvalidTenantError, validate_tenant

Role = Literal["user", "admin", "cluster"]
ROLES: tuple[Role, ...] = ("user", "admin")
"""Roles a client key may have (``cluster`` belongs to ``DTE_CLUSTER_KEY`` alone)."""

KEY_PREFIX = "dte_"
_HASH_SCHEME = "sha256:"


def key_digest(key: str) -> bytes:
    """The SHA-256 digest of a key (what the keys file stores, hex-encoded)."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def key_id(key: str) -> str:
    """A short, non-reversible id of a key: for rate-limit buckets, logs and metrics."""
    return key_digest(key).hex()[:16]


def generate_key() -> str:
    """A new random API key (256 bits, URL-safe)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the key's id (never the key), its tenant, role and own limit."""

    key_id: str
    tenant: str
    role: Role
    rate_limit: tuple[int, float] | None = None  # (requests, window seconds)


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    principal: Principal


def parse_key_entry(entry: str) -> tuple[str, str]:
    """``"tenant:key"`` → ``(tenant, key)``; a bare ``"key"`` belongs to tenant ``default``."""
    tenant, sep, key = entry.partition(":")
    if not sep:
        return DEFAULT_TENANT, entry
    if not key:
        raise ConfigurationError("api_keys: an entry 'tenant:' has an empty key")
    try:
        return validate_tenant(tenant), key
    except InvalidTenantError as exc:
        raise ConfigurationError(f"api_keys: {exc.message}") from None


def _file_entry(path: Path, raw: Any, n: int) -> _Entry:
    where = f"{path}: keys[{n}]"
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where} must be a table")
    hashed = raw.get("hash")
    if not isinstance(hashed, str) or not hashed.startswith(_HASH_SCHEME):
        raise ConfigurationError(f"{where}: 'hash' must be 'sha256:<64 hex digits>'")
    try:
        digest = bytes.fromhex(hashed.removeprefix(_HASH_SCHEME))
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise ConfigurationError(f"{where}: 'hash' must be 'sha256:<64 hex digits>'")
    try:
        tenant = validate_tenant(raw.get("tenant", DEFAULT_TENANT))
    except InvalidTenantError as exc:
        raise ConfigurationError(f"{where}: {exc.message}") from None
    role = raw.get("role", "user")
    if role not in ROLES:
        raise ConfigurationError(f"{where}: 'role' must be one of {', '.join(ROLES)}")
    limit: tuple[int, float] | None = None
    if "rate_limit_requests" in raw:
        requests, window = raw["rate_limit_requests"], raw.get("rate_limit_window", 60.0)
        if (
            isinstance(requests, bool) or not isinstance(requests, int) or requests < 1
            or isinstance(window, bool) or not isinstance(window, int | float) or not window > 0
        ):
            raise ConfigurationError(
                f"{where}: rate_limit_requests must be an integer >= 1 and "
                "rate_limit_window a number of seconds > 0"
            )
        limit = (requests, float(window))
    return _Entry(digest, Principal(digest.hex()[:16], tenant, role, limit))


def load_keys_file(path: str | Path) -> list[_Entry]:
    """The ``[[keys]]`` of a keys file; :class:`ConfigurationError` naming what is wrong."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read keys file {path}: {exc}") from exc
    keys = raw.get("keys", [])
    if not isinstance(keys, list):
        raise ConfigurationError(f"{path}: 'keys' must be an array of tables ([[keys]])")
    return [_file_entry(path, item, n) for n, item in enumerate(keys)]


def append_key(
    path: str | Path,
    key: str,
    *,
    tenant: str,
    role: Role = "user",
    rate_limit: tuple[int, float] | None = None,
) -> Principal:
    """Add the hash of ``key`` to the keys file (created with mode 0600 when missing)."""
    path = Path(path)
    tenant = validate_tenant(tenant)
    load_keys_file(path)  # refuse to append to a file that is already broken
    digest = key_digest(key).hex()
    lines = [
        "",
        "[[keys]]",
        f'hash = "{_HASH_SCHEME}{digest}"',
        f'tenant = "{tenant}"',
        f'role = "{role}"',
    ]
    if rate_limit is not None:
        lines += [f"rate_limit_requests = {rate_limit[0]}",
                  f"rate_limit_window = {float(rate_limit[1])}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.touch(mode=0o600)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return Principal(digest[:16], tenant, role, rate_limit)


class KeyRing:
    """Every credential the server accepts, as digests, with the principal each one means."""

    def __init__(self, entries: Iterable[_Entry] = ()) -> None:
        self._entries: list[_Entry] = []
        for entry in entries:
            self._add(entry)

    def _add(self, entry: _Entry) -> None:
        for known in self._entries:
            if hmac.compare_digest(known.digest, entry.digest):
                raise ConfigurationError(
                    f"the same key is configured twice (key id {entry.principal.key_id})"
                )
        self._entries.append(entry)

    @classmethod
    def from_settings(
        cls,
        api_keys: Sequence[str],
        *,
        keys_file: str | Path | None = None,
        cluster_key: str | None = None,
    ) -> KeyRing:
        """Keys of ``DTE_API_KEYS`` (role user), of the keys file and the cluster key."""
        ring = cls()
        for item in api_keys:
            if not item:
                continue
            tenant, key = parse_key_entry(item)
            digest = key_digest(key)
            ring._add(_Entry(digest, Principal(digest.hex()[:16], tenant, "user")))
        if keys_file is not None:
            for entry in load_keys_file(keys_file):
                ring._add(entry)
        if cluster_key:
            digest = key_digest(cluster_key)
            ring._add(_Entry(digest, Principal(digest.hex()[:16], DEFAULT_TENANT, "cluster")))
        return ring

    @property
    def clients_configured(self) -> bool:
        """Whether any user or admin key exists (client auth on)."""
        return any(e.principal.role != "cluster" for e in self._entries)

    @property
    def cluster_configured(self) -> bool:
        return any(e.principal.role == "cluster" for e in self._entries)

    def principals(self) -> list[Principal]:
        return [e.principal for e in self._entries]

    def match(self, presented: str | None) -> Principal | None:
        """The principal of ``presented``, or None; constant time in which key matched."""
        if not presented:
            return None
        digest = key_digest(presented)
        found: Principal | None = None
        for entry in self._entries:  # no early exit
            if hmac.compare_digest(digest, entry.digest):
                found = entry.principal
        return found

    def __len__(self) -> int:
        return len(self._entries)
