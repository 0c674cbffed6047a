"""``perpkit localnet`` as a child process: for test sessions, benchmarks and scripts."""

from __future__ import annotations

import subprocess
import sys
import time
from types import TracebackType

from perpkit.errors import PerpkitError


def stop_process(process: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LocalnetProcess:
    """Start ``perpkit localnet`` (extra CLI arguments allowed) on a free port; ``url`` once it is ready."""

    def __init__(self, *args: str, timeout: float = 30.0) -> None:
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "perpkit.cli", "localnet", "--port", "0", "--no-default-payer", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ws_url: str | None = None
        """The PubSub endpoint (ws://), from the line after the ready line; None if it printed none."""
        self.url = self._wait_ready(timeout)
        self.ready_seconds = time.perf_counter() - started
        """Seconds from spawning the process to its ready line."""

    def _wait_ready(self, timeout: float) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            if " ready at " in line:
                pubsub = self.process.stdout.readline().split()
                if pubsub[:1] == ["pubsub"]:
                    self.ws_url = pubsub[1]
                return line.split(" ready at ", 1)[1].split()[0]
        err = self.process.stderr.read() if self.process.stderr else ""
        self.stop()
        raise PerpkitError(f"perpkit localnet did not start: {err.strip()[-800:]}")

    def stop(self) -> tuple[int, str, str]:
        """Stop it; (exit code, rest of stdout, stderr)."""
        stop_process(self.process)
        out, err = self.process.communicate()
        return self.process.returncode, out, err

    def __enter__(self) -> LocalnetProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
