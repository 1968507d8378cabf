"""One owner per data directory: an advisory ``fcntl.flock`` on ``DATA_DIR/.lock``.

``deep-tree-echo serve`` holds it exclusively for its lifetime and writes its URL into the
file; in-process CLI commands hold it shared while they run. So a CLI command refuses to
write behind a running server's back (whose in-memory index would go stale) and points at
the server's URL instead, and a second server refuses to start on the same directory.
The kernel drops the lock when its holder exits, even on SIGKILL.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from deep_tree_echo.server.errors import DataDirLockedError

__all__ = ["LOCK_NAME", "DataDirLock", "server_url"]

LOCK_NAME = ".lock"
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def server_url(host: str, port: int) -> str:
    """The URL a local client uses to reach a server bound to ``host:port``."""
    if host in _WILDCARD_HOSTS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


class DataDirLock:
    """``flock`` on ``data_dir/.lock``: exclusive for a server, shared for CLI commands.

    Non-blocking: :meth:`acquire` raises :class:`DataDirLockedError` with a message that
    says who holds the directory and what to do instead.
    """

    def __init__(self, data_dir: Path, *, exclusive: bool, url: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_NAME
        self.exclusive = exclusive
        self.url = url
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> DataDirLock:
        """Take the lock or raise :class:`DataDirLockedError` (never waits)."""
        if self._file is not None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+", encoding="utf-8")  # never truncates another holder's note
        try:
            fcntl.flock(fh.fileno(), (fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
                        | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                error = self._locked_error(fh)
            finally:
                fh.close()
            raise error from None
        except BaseException:
            fh.close()
            raise
        self._file = fh
        if self.exclusive:
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps({"pid": os.getpid(), "url": self.url}))
            fh.flush()
        return self

    def release(self) -> None:
        """Drop the lock (a server first clears its note, so it never points at a dead URL)."""
        fh, self._file = self._file, None
        if fh is None:
            return
        try:
            if self.exclusive:
                fh.seek(0)
                fh.truncate()
                fh.flush()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        finally:
            fh.close()

    def _locked_error(self, fh: IO[str]) -> DataDirLockedError:
        """Why the lock is busy: a server (exclusive holder) or CLI commands (shared)."""
        server_holds = True
        if self.exclusive:  # a shared probe succeeds iff only CLI commands hold it
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                server_holds = False
        if not server_holds:
            return DataDirLockedError(
                f"{self.data_dir} is in use by a deep-tree-echo CLI command; "
                "wait for it to finish or use another --data-dir",
                data_dir=str(self.data_dir),
            )
        note = _read_note(fh)
        url = note.get("url")
        url = url if isinstance(url, str) and url else "http://HOST:PORT"
        if not self.exclusive:
            return DataDirLockedError(
                f"a server is running on {self.data_dir}; use --url {url}",
                data_dir=str(self.data_dir),
                url=url,
            )
        pid = note.get("pid")
        pid_text = f"pid {pid}, " if isinstance(pid, int) else ""
        return DataDirLockedError(
            f"a server ({pid_text}{url}) is already running on {self.data_dir}; "
            "stop it or use another --data-dir",
            data_dir=str(self.data_dir),
            url=url,
        )

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_note(fh: IO[str]) -> dict[str, Any]:
    """What the exclusive holder wrote (``{}`` when nothing usable is there yet)."""
    try:
        fh.seek(0)
        note = json.loads(fh.read() or "{}")
    except (OSError, ValueError):
        return {}
    return note if isinstance(note, dict) else {}
