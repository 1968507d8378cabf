"""PluginManager: entry-point discovery, allowlist, lifecycle, failures; the example package."""

from __future__ import annotations

import logging
import tomllib
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.config import EchoSettings
from deep_tree_echo.plugins import ENTRY_POINT_GROUP, PluginManager

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "echo_plugin_example"

PLUGIN_MODULE = '''
from deep_tree_echo.plugins.base import BasePlugin

LOG = []

class Good(BasePlugin):
    name = "good"
    version = "1.2.3"
    async def initialize(self, config=None, gateway=None):
        await super().initialize(config, gateway)
        LOG.append(("init", type(self).__name__, dict(self.config)))
    async def shutdown(self):
        LOG.append(("stop", type(self).__name__))
        await super().shutdown()

class Other(Good):
    name = "other"

class FailsInit(Good):
    async def initialize(self, config=None, gateway=None):
        raise RuntimeError("database password missing")

class FailsShutdown(Good):
    async def shutdown(self):
        raise RuntimeError("stuck")

NotAPlugin = object
'''


def _install(root: Path, dist: str, entry_points: dict[str, str], module: str | None = None,
             source: str = "") -> None:
    """Write ``module.py`` and a throwaway ``<dist>.dist-info`` with entry points into root."""
    if module is not None:
        (root / f"{module}.py").write_text(source)
    info = root / f"{dist}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n")


@pytest.fixture
def plugin_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    module = f"dte_fake_plugins_{uuid.uuid4().hex[:8]}"
    _install(
        tmp_path, f"fake_{module}",
        {"good": f"{module}:Good", "other": f"{module}:Other", "fails_init": f"{module}:FailsInit",
         "fails_shutdown": f"{module}:FailsShutdown", "not_a_plugin": f"{module}:NotAPlugin",
         "missing_module": "dte_no_such_module_xyz:Plugin"},
        module, PLUGIN_MODULE,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    return module, importlib.import_module(module)


async def test_allowlist_star_loads_all_and_reports_failures(
    plugin_env: tuple[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    _, mod = plugin_env
    async with AARGateway({"test_mode": True}) as gw:
        settings = EchoSettings(plugins=["*"], plugin_config={"good": {"level": 3}})
        manager = PluginManager(gw, settings)
        names = [name for name, _ in manager.discover()]
        assert {"good", "other", "fails_init", "fails_shutdown"} <= set(names)
        manager.failed.clear()
        with caplog.at_level(logging.ERROR):
            loaded = await manager.start()
        assert set(loaded) >= {"good", "other", "fails_shutdown"}
        assert "fails_init" not in loaded
        assert manager.failed["fails_init"] == (
            "initialize failed: RuntimeError: database password missing")
        assert "not a BasePlugin subclass" in manager.failed["not_a_plugin"]
        assert "ModuleNotFoundError" in manager.failed["missing_module"]
        assert "database password missing" in caplog.text
        assert ("init", "Good", {"level": 3}) in mod.LOG
        assert loaded["good"].aar_gateway is gw
        order = [n for n in loaded if n in ("good", "other", "fails_shutdown")]
        mod.LOG.clear()
        with caplog.at_level(logging.ERROR):
            await manager.stop()
        assert "stuck" in caplog.text  # logged, and the others still stopped
        stopped = [entry[1] for entry in mod.LOG if entry[0] == "stop"]
        expected = [{"good": "Good", "other": "Other"}[n] for n in reversed(order)
                    if n != "fails_shutdown"]  # its shutdown raises before logging
        assert stopped == expected
        assert manager.loaded == {}
        assert gw.initialized


async def test_allowlist_names_only_and_empty_loads_none(plugin_env: tuple[str, Any]) -> None:
    async with AARGateway({"test_mode": True}) as gw:
        manager = PluginManager(gw, {"plugins": "other,not_installed"})
        await manager.start()
        assert list(manager.loaded) == ["other"]
        assert manager.failed == {
            "not_installed": f"no entry point named 'not_installed' in group '{ENTRY_POINT_GROUP}'"}
        await manager.stop()

        nothing = PluginManager(gw, EchoSettings())
        assert nothing.discover() == []
        assert await nothing.start() == {}
        assert nothing.failed == {}


def _install_example(root: Path) -> None:
    """A throwaway dist-info built from the example's own pyproject.toml entry points."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    eps = project["entry-points"][ENTRY_POINT_GROUP]
    _install(root, project["name"].replace("-", "_"), eps)


async def test_example_plugin_package_is_discovered_and_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_example(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    async with AARGateway({"test_mode": True}) as gw:
        manager = PluginManager(gw, {"plugins": ["echo_example"],
                                     "plugin_config": {"echo_example": {"suffix": "!"}}})
        [(name, cls)] = manager.discover()
        assert (name, cls.__name__, cls.__module__) == (
            "echo_example", "ReversePlugin", "echo_plugin_example")
        await manager.start()
        assert manager.failed == {}
        result = await gw.process_cognitive_input({"type": "reverse", "content": "stressed"})
        assert result["cognitive_response"]["text"] == "desserts!"
        assert result["cognitive_response"]["agent"] == "reverse"
        await manager.stop()
        assert gw.agents.get("reverse") is None


async def test_the_service_starts_the_example_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's app lifespan runs PluginManager; the plugin's agent answers over HTTP."""
    from deep_tree_echo.server.app import create_app

    _install_example(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    app = create_app(EchoSettings(test_mode=True, plugins=["echo_example"]))
    async with app.router.lifespan_context(app):
        plugins = app.state.plugins
        assert list(plugins.loaded) == ["echo_example"] and plugins.failed == {}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.post("/v1/process", json={"message_type": "reverse", "data": "abc"})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["text"] == "cba"


def test_example_pyproject_registers_the_entry_point() -> None:
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    assert project["entry-points"][ENTRY_POINT_GROUP] == {
        "echo_example": "echo_plugin_example:ReversePlugin"}


INSTALLED_CHECK = '''
import asyncio, json, sys

import httpx

import echo_plugin_example
from deep_tree_echo.server.app import create_app

async def main() -> None:
    app = create_app()  # settings from DTE_* variables, as ``deep-tree-echo serve`` does
    async with app.router.lifespan_context(app):
        plugins = app.state.plugins
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.post("/v1/process", json={"message_type": "reverse", "data": "abc"})
        print(json.dumps({
            "module": echo_plugin_example.__file__,
            "loaded": sorted(plugins.loaded),
            "failed": sorted(plugins.failed),
            "status": r.status_code,
            "body": r.json(),
        }))

asyncio.run(main())
'''


@pytest.mark.slow
def test_the_example_package_installed_by_pip_is_served(tmp_path: Path) -> None:
    """pip builds and installs the example (no hand-made dist-info); the service loads it."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    source = tmp_path / "src"  # build from a copy: setuptools writes build/ next to the source
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    site = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--no-input", "--no-cache-dir", "--disable-pip-version-check",
         "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stdout + pip.stderr
    [dist_info] = site.glob("echo_plugin_example-*.dist-info")
    assert "echo_example = echo_plugin_example:ReversePlugin" in (
        dist_info / "entry_points.txt"
    ).read_text()

    env = {k: v for k, v in os.environ.items() if not k.startswith("DTE_")}
    env.update(
        PYTHONPATH=str(site),
        DTE_PLUGINS="echo_example",
        DTE_TEST_MODE="1",
        DTE_PLUGIN_CONFIG=json.dumps({"echo_example": {"suffix": "!"}}),
    )
    run = subprocess.run(
        [sys.executable, "-c", INSTALLED_CHECK], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(report["module"]).is_relative_to(site)  # the installed copy, not the source tree
    assert report["loaded"] == ["echo_example"] and report["failed"] == []
    assert report["status"] == 200, report["body"]
    assert report["body"]["data"]["text"] == "cba!"
