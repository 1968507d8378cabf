"""Settings from TOML files: EchoSettings.from_toml and read_toml_table (used by the CLI too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deep_tree_echo.cli import build_settings
from deep_tree_echo.config import EchoSettings, read_toml_table
from deep_tree_echo.errors import ConfigurationError


def test_read_toml_table_prefers_the_echo_table(tmp_path: Path) -> None:
    nested = tmp_path / "nested.toml"
    nested.write_text('other = 1\n[echo]\nport = 9001\n')
    assert read_toml_table(nested) == {"port": 9001}
    flat = tmp_path / "flat.toml"
    flat.write_text("port = 9002\n")
    assert read_toml_table(flat) == {"port": 9002}
    assert EchoSettings.from_toml(nested).port == 9001
    assert EchoSettings.from_toml(flat, port=9003).port == 9003


def test_echo_that_is_not_a_table_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("echo = 3\n")
    with pytest.raises(ConfigurationError, match=r"\[echo\] must be a table"):
        read_toml_table(config)
    with pytest.raises(ConfigurationError, match=r"\[echo\] must be a table"):
        EchoSettings.from_toml(config)
    with pytest.raises(ConfigurationError, match=r"\[echo\] must be a table"):
        build_settings(config)


def test_unreadable_or_malformed_files_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read config file"):
        read_toml_table(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("port = \n")
    with pytest.raises(ConfigurationError, match="cannot read config file"):
        EchoSettings.from_toml(broken)
