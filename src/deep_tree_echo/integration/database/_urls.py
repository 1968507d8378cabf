"""Database URLs: their scheme, and the async driver SQLAlchemy needs for a SQL URL."""

from __future__ import annotations

from deep_tree_echo.errors import ConfigurationError

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "postgresql+pg8000": "postgresql+asyncpg",
}
#: Schemes of NoSQL (Redis) URLs.
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def url_scheme(url: str) -> str:
    """The lower-cased scheme of ``url`` (``"postgresql+asyncpg"``), or ``""`` if it has none."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        scheme, sep, _ = url.partition(":")
    return scheme.lower() if sep else ""


def async_sql_url(url: str) -> str:
    """``url`` with its async driver: ``sqlite://`` → aiosqlite, ``postgresql://`` → asyncpg."""
    scheme = url_scheme(url)
    if not scheme:
        raise ConfigurationError(f"not a database URL: {url!r}")
    if scheme in REDIS_SCHEMES:
        raise ConfigurationError(f"{scheme}:// is a NoSQL URL; configure it as 'nosql_url'")
    replacement = _ASYNC_DRIVERS.get(scheme)
    if replacement is None:
        return url
    return replacement + url[len(scheme) :]
