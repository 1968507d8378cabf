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
import logging
import os
import secrets
import time
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from deep_tree_echo.errors import ConfigurationError
from deep_tree_echo.tenants import DEFAULT_TENANT, InvalidTenantError, validate_tenant

logger = logging.getLogger("deep_tree_echo.server")

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


def _entry_lines(digest_hex: str, tenant: str, role: str,
                 rate_limit: tuple[int, float] | None) -> list[str]:
    lines = ["", "[[keys]]", f'hash = "{_HASH_SCHEME}{digest_hex}"', f'tenant = "{tenant}"',
             f'role = "{role}"']
    if rate_limit is not None:
        lines += [f"rate_limit_requests = {rate_limit[0]}",
                  f"rate_limit_window = {float(rate_limit[1])}"]
    return lines


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
    lines = _entry_lines(digest, tenant, role, rate_limit)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.touch(mode=0o600)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return Principal(digest[:16], tenant, role, rate_limit)


def revoke_key(path: str | Path, key_id_: str) -> Principal:
    """Remove the key whose id is ``key_id_`` from the keys file (rewritten atomically, mode
    0600); :class:`ConfigurationError` when no key has that id. Running servers drop it within
    :data:`RECHECK_SECONDS`."""
    path = Path(path)
    entries = load_keys_file(path)
    gone = [e for e in entries if e.principal.key_id == key_id_]
    if not gone:
        raise ConfigurationError(f"{path}: no key with id {key_id_!r}")
    lines: list[str] = []
    for e in entries:
        if e not in gone:
            p = e.principal
            lines += _entry_lines(e.digest.hex(), p.tenant, p.role, p.rate_limit)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n" if lines else "")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, path)
    return gone[0].principal


#: Seconds between two looks at the keys file's stat (a stat costs microseconds: not per request).
RECHECK_SECONDS = 1.0
_Signature = tuple[int, int, int]  # (inode, size, mtime in ns) of the keys file


def _signature(path: Path) -> _Signature | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:  # unreadable right now: a load would say why
        return (-1, -1, -1)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class KeyRing:
    """Every credential the server accepts, as digests, with the principal each one means.

    Built by :meth:`from_settings`, it follows the keys file: :meth:`refresh` (called by the
    auth middleware before each check, at most every :data:`RECHECK_SECONDS`) reloads every key
    when the file changed, so ``keys create`` and ``keys revoke`` take effect without a
    restart. A file that no longer loads leaves the keys as they were (logged as an error).
    """

    def __init__(self, entries: Iterable[_Entry] = ()) -> None:
        self._entries: list[_Entry] = []
        self._has_client = self._has_cluster = False
        for entry in entries:
            self._add(entry)
        self._source: tuple[tuple[str, ...], Path, str | None] | None = None
        self._signature: _Signature | None = None
        self._last_check = 0.0
        #: Seconds between looks at the keys file (0: before every request).
        self.recheck_seconds = RECHECK_SECONDS

    def _add(self, entry: _Entry) -> None:
        for known in self._entries:
            if hmac.compare_digest(known.digest, entry.digest):
                raise ConfigurationError(
                    f"the same key is configured twice (key id {entry.principal.key_id})"
                )
        self._entries.append(entry)
        self._has_client |= entry.principal.role != "cluster"
        self._has_cluster |= entry.principal.role == "cluster"

    @classmethod
    def from_settings(
        cls,
        api_keys: Sequence[str],
        *,
        keys_file: str | Path | None = None,
        cluster_key: str | None = None,
    ) -> KeyRing:
        """Keys of ``DTE_API_KEYS`` (role user), of the keys file and the cluster key."""
        path = None if keys_file is None else Path(keys_file)
        signature = None if path is None else _signature(path)
        ring = cls._built(tuple(api_keys), path, cluster_key)
        if path is not None:
            ring._source = (tuple(api_keys), path, cluster_key)
            ring._signature = signature
            ring._last_check = time.monotonic()
        return ring

    @classmethod
    def _built(cls, api_keys: Sequence[str], keys_file: Path | None,
               cluster_key: str | None) -> KeyRing:
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

    def refresh(self, *, force: bool = False) -> bool:
        """Reload the keys when the keys file changed (looked at no more often than every
        :attr:`recheck_seconds` unless ``force``); True when the keys were replaced."""
        if self._source is None:
            return False
        now = time.monotonic()
        if not force and now - self._last_check < self.recheck_seconds:
            return False
        self._last_check = now
        api_keys, path, cluster_key = self._source
        signature = _signature(path)
        if signature == self._signature:
            return False
        self._signature = signature  # a broken file is reported once, not every second
        try:
            fresh = self._built(api_keys, path, cluster_key)
        except ConfigurationError as exc:
            logger.error("keys file not reloaded, the %d keys loaded before stay: %s",
                         len(self._entries), exc.message)
            return False
        before = len(self._entries)
        # a check (same event loop, no await in between) sees the old keys or the new ones
        self._entries, self._has_client = fresh._entries, fresh._has_client
        logger.info("keys file %s reloaded: %d keys (%d before)", path, len(fresh), before)
        return True

    @property
    def clients_configured(self) -> bool:
        """Whether client auth is on: a user or admin key exists, or a keys file is configured
        (even empty or missing: revoking the last key must not open the service)."""
        return self._source is not None or self._has_client

    @property
    def cluster_configured(self) -> bool:
        """Whether the cluster key is set (it comes from the settings, never from the file)."""
        return self._has_cluster

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
