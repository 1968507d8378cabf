"""Real servers for the test suite: redis-server, PostgreSQL and nats-server on loopback.

A missing binary fails the run with the command to install it; nothing here skips.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from deep_tree_echo.testing._process import free_port, require_binary, start_process

_APT_HINT = (
    "install it with `make test-deps` (apt-get install -y redis-server postgresql nats-server)"
)


@contextmanager
def redis_server() -> Iterator[str]:
    """Yield ``redis://127.0.0.1:PORT`` for a throwaway redis-server."""
    binary = require_binary("redis-server", _APT_HINT)
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="dte-redis-")
    proc = start_process(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--protected-mode", "yes"],
        ready=r"Ready to accept connections",
    )
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield ``postgresql://postgres@127.0.0.1:PORT/postgres`` for a throwaway cluster.

    initdb and postgres refuse to run as root, so as root they run as the ``postgres`` user.
    """
    initdb = require_binary("initdb", _APT_HINT)
    postgres = require_binary("postgres", _APT_HINT)
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="dte-pg-")
    datadir = os.path.join(workdir, "data")
    prefix: list[str] = []
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    init = start_process(
        [*prefix, initdb, "-D", datadir, "-U", "postgres", "--auth=trust", "--no-sync",
         "-E", "UTF8"],
        ready=r"Success|syncing data to disk|initdb: error",
        timeout=120,
    )
    init.proc.wait(timeout=120)
    if init.proc.returncode != 0:
        raise RuntimeError(f"initdb failed:\n{init.output()}")
    proc = start_process(
        [*prefix, postgres, "-D", datadir, "-p", str(port), "-k", workdir,
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
         "-c", "full_page_writes=off"],
        ready=r"database system is ready to accept connections",
        timeout=60,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def nats_server(
    *, port: int | None = None, token: str | None = None, max_payload: int | None = None
) -> Iterator[str]:
    """Yield ``nats://127.0.0.1:PORT`` for a throwaway nats-server (no JetStream, no cluster).

    ``token`` turns on token auth; ``max_payload`` raises the server's message size limit
    (default 1 MiB), written to a config file since there is no flag for it.
    """
    binary = require_binary("nats-server", _APT_HINT)
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="dte-nats-")
    cmd = [binary, "-p", str(port), "-a", "127.0.0.1"]
    if token is not None:
        cmd += ["--auth", token]
    if max_payload is not None:
        config = os.path.join(workdir, "nats.conf")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f"max_payload: {max_payload}\n")
        cmd += ["-c", config]
    proc = start_process(cmd, ready=r"Server is ready")
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)
