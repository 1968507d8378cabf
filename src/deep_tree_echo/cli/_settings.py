"""Settings for a command: CLI flags over ``DTE_*`` environment over the ``--config`` file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deep_tree_echo.config import EchoSettings, read_toml_table
from deep_tree_echo.errors import ConfigurationError

DEFAULT_DATA_DIR = Path(".echo")


def build_settings(config: Path | None = None, **flags: Any) -> EchoSettings:
    """Settings with precedence CLI flags > ``DTE_*`` environment > config file > defaults.

    Flags that are None are "not given". ``data_dir`` defaults to ``.echo``.
    """
    file_values = read_toml_table(config) if config is not None else {}
    try:
        from_env = EchoSettings.coerce(None)  # reads DTE_* variables
    except ValueError as exc:
        raise ConfigurationError(f"invalid DTE_* environment setting: {exc}") from exc
    env_values = from_env.model_dump(include=set(from_env.model_fields_set))
    values: dict[str, Any] = {k: v for k, v in file_values.items() if k not in env_values}
    values.update(env_values)
    values.update({k: v for k, v in flags.items() if v is not None})
    values.setdefault("data_dir", DEFAULT_DATA_DIR)
    try:
        return EchoSettings(**values)
    except ValueError as exc:
        raise ConfigurationError(f"invalid configuration: {exc}") from exc
