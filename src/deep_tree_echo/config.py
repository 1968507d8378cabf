"""Settings for the gateway and the service, from a dict, a TOML file or ``DTE_*`` variables.

One pydantic-settings model serves both the library (``AARGateway(config)``) and the
``deep-tree-echo serve`` command, so a setting means the same thing everywhere.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from deep_tree_echo.errors import ConfigurationError


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def read_toml_table(path: str | Path) -> dict[str, Any]:
    """The settings table of a TOML file: its ``[echo]`` table, else its top level.

    :class:`ConfigurationError` when the file cannot be read or parsed, or ``echo`` is not a table.
    """
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc}") from exc
    table = raw.get("echo", raw)
    if not isinstance(table, dict):
        raise ConfigurationError(f"config file {path}: [echo] must be a table")
    return table


class EchoSettings(BaseSettings):
    """Every knob of deep-tree-echo; environment variables use the ``DTE_`` prefix."""

    model_config = SettingsConfigDict(env_prefix="DTE_", extra="ignore", validate_default=True)

    # service
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path | None = None
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="client keys, comma-separated `tenant:key` or `key`"
    )
    api_keys_file: Path | None = Field(
        None, description="TOML file of hashed keys with tenant, role and rate limit"
    )
    cluster_key: str | None = Field(
        None, description="credential of peer nodes on /v1/replica (absent: no replica routes)"
    )
    max_clock_drift: float | None = Field(
        60.0, gt=0, allow_inf_nan=False,
        description="seconds a peer's version may be ahead of the local clock (None: unbounded)",
    )
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    rate_limit_requests: int = Field(600, ge=0, description="per client per window; 0 disables")
    rate_limit_window: float = Field(60.0, gt=0)
    ws_queue_size: int = Field(256, gt=0)
    ws_ping_interval: float = Field(20.0, gt=0)
    ws_max_subscriptions: int = Field(100, gt=0, description="session ids one socket may follow")
    log_level: str = "info"
    metrics_public: bool = Field(False, description="serve /metrics without an API key")
    alert_webhook_url: str | None = Field(
        None, description="POST integration alerts as JSON here (they always go to the bus)"
    )

    # scale out: worker processes and the event outbox every worker tails
    workers: int = Field(1, ge=1, le=64, description="worker processes serving one port")
    event_retention: float = Field(
        3600.0, gt=0, allow_inf_nan=False,
        description="seconds the event outbox keeps events for resuming WebSocket clients",
    )
    event_poll_interval: float = Field(
        0.02, gt=0, le=5, description="seconds between SQLite outbox change checks",
    )

    # events across nodes (NATS); off unless nats_url is set
    nats_url: str | None = Field(
        None, description="nats:// URL(s), comma-separated, of the bus shared between nodes"
    )
    nats_token: str | None = Field(None, description="NATS auth token of this node")

    # core
    node_id: str | None = None
    memory_store: Literal["memory", "sqlite", "redis", "postgres"] | None = None
    redis_url: str | None = Field(
        None, description="redis:// URL of the shared memory store (memory_store='redis')"
    )
    database_url: str | None = Field(
        None,
        description="postgresql:// (or postgresql+asyncpg://) URL of the shared memory store "
        "(memory_store='postgres')",
    )
    database_pool_size: int = Field(5, gt=0, description="connections per process (postgres)")
    search_cache: int | None = Field(
        None,
        ge=0,
        description="postings of frequent terms each process holds for search (sqlite, "
        "postgres; 0: off; unset: the store's default, 1,500,000 sqlite, 1,000,000 postgres)",
    )
    search_cache_min_df: int = Field(
        1024, gt=0, description="memories a term must be in to be cached"
    )
    session_history: int = Field(50, gt=0)
    max_sessions: int = Field(10_000, gt=0)
    handler_timeout: float = Field(5.0, gt=0)
    memories_per_answer: int = Field(5, gt=0)
    tombstone_ttl: float = Field(
        7 * 24 * 3600.0,
        ge=0,
        allow_inf_nan=False,
        description="seconds tombstones and expired memories are kept before they are purged",
    )

    # engine
    engine: Literal["embedded", "openai"] = "embedded"
    openai_base_url: str = "http://localhost:2242/v1"
    openai_model: str = "default"
    openai_api_key: str | None = None
    openai_timeout: float = Field(30.0, gt=0)
    openai_max_retries: int = Field(2, ge=0)
    openai_failure_threshold: int = Field(5, gt=0, description="failed calls that open the breaker")

    # plugins: entry-point names allowed to load; "*" allows all; empty loads none
    plugins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    plugin_config: dict[str, dict[str, Any]] = Field(default_factory=dict)

    # test mode: in-memory store, no data dir
    test_mode: bool = False

    _split_keys = field_validator("api_keys", "plugins", mode="before")(_split_csv)

    @property
    def store_kind(self) -> Literal["memory", "sqlite", "redis", "postgres"]:
        """The store actually used: explicit choice, else SQLite when a data dir is set."""
        if self.memory_store is not None:
            return self.memory_store
        if self.test_mode or self.data_dir is None:
            return "memory"
        return "sqlite"

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> EchoSettings:
        """Settings from a TOML file (top-level keys or an ``[echo]`` table), then overrides."""
        table = read_toml_table(path)
        return cls.coerce({**table, **{k: v for k, v in overrides.items() if v is not None}})

    @classmethod
    def coerce(cls, config: Mapping[str, Any] | EchoSettings | None) -> EchoSettings:
        """Accept a dict (unknown keys ignored), a settings object or None."""
        if config is None:
            return cls()
        if isinstance(config, EchoSettings):
            return config
        if not isinstance(config, Mapping):
            raise ConfigurationError(
                f"config must be a mapping or EchoSettings, not {type(config).__name__}"
            )
        try:
            return cls.model_validate(dict(config))
        except ValueError as exc:
            raise ConfigurationError(f"invalid configuration: {exc}") from exc
