"""``python -m perpkit.bot`` as a subprocess, for the tests and the benchmarks that drive the bot from outside."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time


class BotProcess:
    """``python -m perpkit.bot`` with its stdout lines (and the time each arrived) collected by a thread.

    Each line is queued with the :func:`time.perf_counter` time it was read, so a caller can time
    the bot's reaction from a moment it took with the same clock.
    """

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "perpkit.bot", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put((time.perf_counter(), line.rstrip("\n")))

    def wait_for(self, word: str, timeout: float = 20.0) -> tuple[float, str]:
        """(arrival time, line) of the first line from now on that contains ``word``.

        Raises AssertionError, with the last lines seen and the bot's stderr if it exited, when no such
        line arrives within ``timeout`` seconds or the bot exits first.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                at, line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if word in line:
                return at, line
        err = self.process.stderr.read() if self.process.poll() is not None and self.process.stderr else ""
        raise AssertionError(f"no {word!r} line within {timeout} s; saw {self.seen[-20:]} {err[-2000:]}")

    def drain(self) -> list[str]:
        """Move every queued line to ``seen``; returns ``seen``."""
        while True:
            try:
                self.seen.append(self.lines.get_nowait()[1])
            except queue.Empty:
                return self.seen

    def terminate(self, timeout: float = 30.0) -> tuple[int, str]:
        """SIGTERM, wait for the exit, and return (exit code, stderr); the last stdout lines go to ``seen``."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=timeout)
        assert self.process.stderr is not None
        err = self.process.stderr.read()
        time.sleep(0.2)  # the reader thread takes the last lines
        self.drain()
        return self.process.returncode, err

    def kill(self) -> None:
        """SIGKILL if it is still running (for ``finally`` blocks)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()
