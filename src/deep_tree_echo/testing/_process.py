"""Start a server process and wait for the line that says it is ready.

Readiness is read from the process's own output (an event), never guessed with sleeps.
Used by the test-suite fixtures (redis-server, postgres) and by the ``echo_server`` fixture.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from deep_tree_echo.testing.errors import ServerStartError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def require_binary(name: str, hint: str) -> str:
    """Path of ``name`` on PATH, or a loud :class:`ServerStartError` naming how to install it."""
    path = shutil.which(name)
    if path is None:
        extras = ["/usr/sbin", "/usr/local/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                                           reverse=True)]
        for extra in extras:
            candidate = os.path.join(extra, name)
            if os.access(candidate, os.X_OK):
                return candidate
        raise ServerStartError(f"required binary {name!r} not found; {hint}")
    return path


@dataclass
class ManagedProcess:
    """A child process plus the last lines it printed (for error messages)."""

    proc: subprocess.Popen[str]
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    #: the output lines that matched the ready pattern
    ready_lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "".join(self.tail)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Signal the process and reap it; escalates to SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.stop(signal.SIGKILL)


def start_process(
    cmd: Sequence[str],
    ready: str,
    *,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    ready_count: int = 1,
) -> ManagedProcess:
    """Run ``cmd`` and block until ``ready_count`` lines of its output match the regex ``ready``."""
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    managed = ManagedProcess(proc)
    pattern = re.compile(ready)
    seen = threading.Event()
    matches = 0

    def pump() -> None:
        nonlocal matches
        assert proc.stdout is not None
        for line in proc.stdout:
            managed.tail.append(line)
            if not seen.is_set() and pattern.search(line):
                managed.ready_lines.append(line)
                matches += 1
                if matches >= ready_count:
                    seen.set()
        seen.set()  # EOF: the process is gone; wake the waiter

    threading.Thread(target=pump, name=f"pump-{cmd[0]}", daemon=True).start()
    became_ready = seen.wait(timeout)
    if not became_ready or matches < ready_count:
        managed.kill()
        raise ServerStartError(
            f"{cmd[0]} did not become ready within {timeout}s:\n{managed.output()}"
        )
    return managed
