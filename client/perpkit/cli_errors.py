"""Exceptions as the one ``perpkit: error: ...`` line of the command line: what went wrong and what to do."""

from __future__ import annotations

import errno


def root_reason(exc: BaseException) -> str:
    """The innermost cause's message (``All connection attempts failed``, ``Name or service not known``),
    which transport wrappers replace with their own; the exception's class name if none has a message."""
    reason = ""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).strip()
        if text:
            reason = text
        current = current.__cause__ or current.__context__
    return reason or type(exc).__name__


def unreachable(url: str, exc: BaseException) -> str:
    return f"cannot reach {url}: {root_reason(exc)} (start one with `perpkit localnet`, or pass --url)"


def os_error(exc: OSError, port: int | None = None) -> str:
    """A port taken, or another operating-system refusal, in one line."""
    if exc.errno == errno.EADDRINUSE:
        where = f"port {port}" if port is not None else "the address"
        return f"{where} is already in use (another `perpkit localnet`?): stop it, or pass --port N (0: any free port)"
    if exc.errno == errno.EACCES and port is not None:
        return f"no permission to listen on port {port}: pass --port above 1023"
    return f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}"


def one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())
