"""The ``deep-tree-echo`` command, in-process on a data dir and over HTTP with ``--url``."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deep_tree_echo import __version__
from deep_tree_echo.cli import app, build_settings
from deep_tree_echo.testing._process import free_port, start_process
from deep_tree_echo.testing.live_server import EchoServer

BIN = Path(sys.executable).parent


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    return str(tmp_path / "echo-data")


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    data = tmp_path_factory.mktemp("served")
    managed = start_process(
        [str(BIN / "dte"), "serve", "--port", str(port), "--data-dir", str(data)],
        ready=r"Uvicorn running on",
        env={**os.environ, "DTE_API_KEYS": "cli-key", "DTE_RATE_LIMIT_REQUESTS": "0"},
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        managed.stop()


def test_version_via_console_scripts_and_module() -> None:
    for cmd in (
        [str(BIN / "deep-tree-echo"), "version"],
        [str(BIN / "dte"), "version"],
        [sys.executable, "-m", "deep_tree_echo", "version"],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
        assert done.stdout.strip() == f"deep-tree-echo {__version__}"


def test_memory_put_get_search_delete_in_process(data_dir: str, tmp_path: Path) -> None:
    code, out, err = run(
        "memory", "put", "m1", '{"content": "green tea", "session_id": "s"}', "--data-dir", data_dir
    )
    assert code == 0, err
    assert json.loads(out)["id"] == "m1"
    assert "created" in err
    body = tmp_path / "m2.json"
    body.write_text('{"content": "black coffee"}')
    assert run("memory", "put", "m2", "--file", str(body), "--data-dir", data_dir)[0] == 0

    code, out, _ = run("memory", "get", "m1", "--data-dir", data_dir)
    assert code == 0 and json.loads(out)["data"]["content"] == "green tea"

    code, out, _ = run("memory", "search", "tea", "--json", "--data-dir", data_dir)
    assert [r["id"] for r in json.loads(out)] == ["m1"]
    code, out, _ = run(
        "memory", "search", "coffee", "--filter", "session_id=s", "--json", "--data-dir", data_dir
    )
    assert json.loads(out) == []
    code, out, _ = run("memory", "search", "coffee", "--data-dir", data_dir)
    assert "m2" in out and "relevance" in out

    assert run("memory", "delete", "m1", "--data-dir", data_dir)[0] == 0
    code, _, err = run("memory", "get", "m1", "--data-dir", data_dir)
    assert code == 1 and "not found" in err


def test_memory_put_rejects_bad_input(data_dir: str) -> None:
    assert run("memory", "put", "x", "[1]", "--data-dir", data_dir)[0] == 2
    assert run("memory", "put", "x", "{oops", "--data-dir", data_dir)[0] == 2
    assert run("memory", "put", "x", "--data-dir", data_dir)[0] == 2
    code, _, err = run("memory", "put", "a/b", "{}", "--data-dir", data_dir)
    assert code == 1 and "invalid_memory" in err


def test_export_import_round_trip_with_bad_lines(data_dir: str, tmp_path: Path) -> None:
    for i in range(5):
        run("memory", "put", f"k{i}", json.dumps({"content": f"note {i}"}), "--data-dir", data_dir)
    export = tmp_path / "out.jsonl"
    code, _, err = run("memory", "export", "--out", str(export), "--data-dir", data_dir)
    assert code == 0 and "exported 5" in err
    records = [json.loads(line) for line in export.read_text().splitlines()]
    assert [r["id"] for r in records] == [f"k{i}" for i in range(5)]

    lines = export.read_text().splitlines()
    lines.insert(2, "{not json")
    lines.insert(4, json.dumps({"id": "no-data"}))
    lines.append(json.dumps({"id": "plain", "data": {"content": "simple form"}}))
    lines.append(json.dumps({"id": "gone", "data": {}, "deleted": True}))
    lines.append("")
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")

    strict_dir = str(tmp_path / "strict")
    code, _, err = run("memory", "import", str(source), "--strict", "--data-dir", strict_dir)
    assert code == 1 and "nothing imported" in err
    assert run("memory", "get", "k0", "--data-dir", strict_dir)[0] == 1

    other = str(tmp_path / "other")
    code, _, err = run("memory", "import", str(source), "--data-dir", other)
    assert code == 1  # some lines were bad ...
    assert f"{source}:3: not valid JSON" in err
    assert f"{source}:5: 'data' must be a JSON object" in err
    # the exported lines are restored with their versions, the plain one is a new write
    assert "1 created, 0 updated, 5 restored, 0 kept (same or newer here), 1 skipped" in err
    assert "2 invalid line(s)" in err
    # ... but everything else was imported intact
    for i in range(5):
        code, out, _ = run("memory", "get", f"k{i}", "--data-dir", other)
        assert code == 0 and json.loads(out)["data"] == {"content": f"note {i}"}
    assert json.loads(run("memory", "get", "plain", "--data-dir", other)[1])["data"] == {
        "content": "simple form"
    }
    assert run("memory", "get", "gone", "--data-dir", other)[0] == 1
    # importing the same export again changes nothing: the store holds those versions
    code, _, err = run("memory", "import", str(export), "--data-dir", other)
    assert code == 0 and "0 created, 0 updated, 0 restored, 5 kept" in err


def test_import_applies_lines_in_file_order_when_ids_repeat(data_dir: str, tmp_path: Path) -> None:
    rng = random.Random(7)
    ids = [f"r{rng.randrange(50)}" for _ in range(700)]  # each id many times, in any order
    source = tmp_path / "repeats.jsonl"
    source.write_text("".join(
        json.dumps({"id": memory_id, "data": {"content": f"line {n}"}}) + "\n"
        for n, memory_id in enumerate(ids, 1)
    ))
    code, _, err = run("memory", "import", str(source), "--data-dir", data_dir)
    distinct = len(set(ids))
    assert code == 0 and f"{distinct} created, {700 - distinct} updated, 0 restored" in err, err
    last = {memory_id: n for n, memory_id in enumerate(ids, 1)}
    for memory_id, n in last.items():
        got = json.loads(run("memory", "get", memory_id, "--data-dir", data_dir)[1])
        assert got["data"] == {"content": f"line {n}"}, memory_id


def test_backup_restores_records_as_they_were_and_never_over_newer_edits(
    data_dir: str, tmp_path: Path
) -> None:
    run("memory", "put", "a", json.dumps({"content": "alpha"}), "--data-dir", data_dir)
    run("memory", "put", "b", json.dumps({"content": "beta"}), "--ttl", "3600",
        "--data-dir", data_dir)
    code, out, err = run("memory", "export", "--out", "-", "--data-dir", data_dir)
    assert code == 0 and "exported 2" in err
    assert not (Path.cwd() / "-").exists()  # '-' is stdout, not a file named '-'
    backup = {r["id"]: r for r in map(json.loads, out.splitlines())}
    assert set(backup) == {"a", "b"} and backup["b"]["expires_at"] is not None
    backup["a"]["access_count"] = 7  # as if read 7 times: the count must survive a restore
    backup["a"]["last_access"] = backup["a"]["updated_at"] + 1
    source = tmp_path / "backup.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in backup.values()))

    # restored into an empty store: every field comes back as exported
    fresh = str(tmp_path / "fresh")
    code, _, err = run("memory", "import", str(source), "--data-dir", fresh)
    assert code == 0 and "2 restored" in err, err
    for memory_id, exported in backup.items():
        restored = json.loads(run("memory", "get", memory_id, "--data-dir", fresh)[1])
        for key in ("data", "version", "created_at", "updated_at", "access_count",
                    "expires_at", "last_access"):
            assert restored[key] == exported[key], key

    # an edit made after the backup survives restoring the backup over it
    run("memory", "put", "a", json.dumps({"content": "alpha v2"}), "--data-dir", data_dir)
    code, _, err = run("memory", "import", str(source), "--data-dir", data_dir)
    assert code == 0 and "0 restored, 2 kept" in err, err
    now = json.loads(run("memory", "get", "a", "--data-dir", data_dir)[1])
    assert now["data"] == {"content": "alpha v2"} and now["version"] > backup["a"]["version"]

    # a deleted memory comes back from the backup only if the backup is newer: it is not
    run("memory", "delete", "b", "--data-dir", data_dir)
    run("memory", "import", str(source), "--data-dir", data_dir)
    assert run("memory", "get", "b", "--data-dir", data_dir)[0] == 1


def test_ask_in_process(data_dir: str) -> None:
    code, out, err = run("ask", "what is tea?", "--session", "s1", "--data-dir", data_dir)
    assert code == 0, err
    assert out.strip()
    code, out, _ = run("ask", "hello", "--json", "--data-dir", data_dir)
    body = json.loads(out)
    assert body["success"] is True and set(body["metadata"]) == {"processing_time", "confidence"}


def test_commands_over_http(server_url: str, tmp_path: Path) -> None:
    remote = ("--url", server_url, "--api-key", "cli-key")
    code, _, err = run("memory", "get", "x", "--url", server_url)
    assert code == 1 and "401" in err
    code, out, err = run("memory", "put", "h1", '{"content": "over http"}', *remote)
    assert code == 0, err
    assert json.loads(out)["id"] == "h1"
    assert json.loads(run("memory", "get", "h1", *remote)[1])["data"]["content"] == "over http"
    code, out, _ = run("memory", "search", "http", "--json", *remote)
    assert [r["id"] for r in json.loads(out)] == ["h1"]
    code, out, _ = run("ask", "tell me about http", "--session", "cli", "--json", *remote)
    assert code == 0 and json.loads(out)["success"] is True
    # a core failure is an HTTP 400 with the external response shape, shown like in-process
    code, out, _ = run("ask", "x" * 100_001, "--json", *remote)
    assert code == 1 and json.loads(out)["error"]["code"] == "content_too_large"
    code, _, err = run("ask", "x" * 100_001, *remote)
    assert code == 1 and "content_too_large" in err

    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join(json.dumps({"id": f"b{i}", "data": {"content": f"bulk {i}"}}) for i in range(40))
        + "\n"
    )
    code, _, err = run("memory", "import", str(source), *remote)
    assert code == 0 and "40 created" in err
    export = tmp_path / "out.jsonl"
    assert run("memory", "export", "-o", str(export), *remote)[0] == 0
    ids = {json.loads(line)["id"] for line in export.read_text().splitlines()}
    assert {f"b{i}" for i in range(40)} | {"h1"} <= ids
    assert run("memory", "delete", "h1", *remote)[0] == 0
    assert run("memory", "get", "h1", *remote)[0] == 1


def test_settings_precedence_flags_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "echo.toml"
    config.write_text('[echo]\nport = 9001\nhost = "0.0.0.0"\nlog_level = "debug"\n')
    monkeypatch.setenv("DTE_PORT", "9002")
    settings = build_settings(config)
    assert (settings.port, settings.host, settings.log_level) == (9002, "0.0.0.0", "debug")
    assert settings.data_dir == Path(".echo") and settings.store_kind == "sqlite"
    settings = build_settings(config, port=9003, data_dir=tmp_path)
    assert settings.port == 9003 and settings.data_dir == tmp_path
    monkeypatch.setenv("DTE_API_KEYS", "a, b")
    assert build_settings(None).api_keys == ["a", "b"]


def test_serve_rejects_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("port = 'not a number'\n")
    code, _, err = run("serve", "--config", str(config))
    assert code == 2 and "invalid configuration" in err


def test_serve_refuses_workers_on_the_in_memory_store(tmp_path: Path) -> None:
    code, _, err = run("serve", "--workers", "2", "--data-dir", str(tmp_path),
                       "--port", str(free_port()), "--config", str(_memory_config(tmp_path)))
    assert code == 2 and "--workers needs a store the workers share" in err


def _memory_config(tmp_path: Path) -> Path:
    config = tmp_path / "echo.toml"
    config.write_text('memory_store = "memory"\n')
    return config


def test_help_shows_bracketed_text() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "(top level or [echo])" in result.stdout
    assert "[default: 127.0.0.1]" in result.stdout
    assert "(top level or )" not in result.stdout


def test_in_process_commands_refuse_while_a_server_owns_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "owned"
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "i1", "data": {"content": "imported"}}) + "\n")
    with EchoServer(data) as server:
        expected = f"a server is running on {data}; use --url {server.url}"
        for args in (
            ("memory", "put", "x", '{"content": "direct"}'),
            ("memory", "delete", "x"),
            ("memory", "import", str(source)),
            ("ask", "hello"),
        ):
            code, _, err = run(*args, "--data-dir", str(data))
            assert code == 2, (args, err)
            assert expected in " ".join(err.split()), err
        # through the server, the same write works and the server sees it at once
        code, _, err = run("memory", "put", "x", '{"content": "via http"}', "--url", server.url)
        assert code == 0, err
        assert json.loads(run("memory", "get", "x", "--url", server.url)[1])["data"] == {
            "content": "via http"
        }
        # a second server on the same data dir refuses to start
        done = subprocess.run(
            [str(BIN / "dte"), "serve", "--port", str(free_port()), "--data-dir", str(data)],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 2, done.stderr
        message = " ".join(done.stderr.split())
        assert f"a server (pid {server.process.pid}, {server.url}) is already running" in message
        assert server.running
    # once it stopped, in-process commands own the data dir again and see its writes
    code, out, err = run("memory", "get", "x", "--data-dir", str(data))
    assert code == 0, err
    assert json.loads(out)["data"] == {"content": "via http"}
    code, _, err = run("memory", "delete", "x", "--data-dir", str(data))
    assert code == 0, err


def test_a_running_cli_command_keeps_a_server_off_the_data_dir(tmp_path: Path) -> None:
    from deep_tree_echo.server.datadir_lock import DataDirLock

    data = tmp_path / "busy"
    with DataDirLock(data, exclusive=False):  # what an in-process CLI command holds
        done = subprocess.run(
            [str(BIN / "dte"), "serve", "--port", str(free_port()), "--data-dir", str(data)],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert "in use by a deep-tree-echo CLI command" in " ".join(done.stderr.split())
        # CLI commands share the lock with each other
        code, _, err = run("memory", "put", "y", '{"content": "shared"}', "--data-dir", str(data))
        assert code == 0, err


def test_search_filters_match_numbers_in_process(data_dir: str) -> None:
    assert run("memory", "put", "n", '{"content": "tea", "importance": 0.7}', "--data-dir",
               data_dir)[0] == 0
    assert run("memory", "put", "s", '{"content": "tea", "importance": "high"}', "--data-dir",
               data_dir)[0] == 0
    for value, expected in (("0.7", ["n"]), ("high", ["s"])):
        code, out, err = run("memory", "search", "tea", "--filter", f"importance={value}",
                             "--json", "--data-dir", data_dir)
        assert code == 0, err
        assert [r["id"] for r in json.loads(out)] == expected
