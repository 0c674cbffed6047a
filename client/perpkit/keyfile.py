"""Keypair files as the Solana CLI writes them (a JSON array of the 64 secret-key bytes): make and read them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from perpkit.errors import InvalidInput

if TYPE_CHECKING:
    from solders.keypair import Keypair

DEFAULT_KEYPAIR = Path.home() / ".config" / "solana" / "id.json"
"""The Solana CLI's default keypair, and the ``--keypair`` default of every ``perpkit`` command."""


def write_keypair(path: Path, *, force: bool = False) -> Keypair:
    """A new keypair saved at ``path`` (mode 0600, parents created), as ``solana-keygen new`` saves one;
    an existing file is kept unless ``force``."""
    from solders.keypair import Keypair

    if path.exists() and not force:
        raise InvalidInput(f"{path} already exists: pass --force to overwrite it, or --outfile another path")
    keypair = Keypair()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(list(bytes(keypair)), separators=(",", ":")))
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from None
    return keypair


def load_keypair(path: Path) -> Keypair:
    """The keypair in ``path``; a missing file points to ``perpkit keygen``."""
    from solders.keypair import Keypair

    if not path.exists():
        hint = "`perpkit keygen`" if path == DEFAULT_KEYPAIR else f"`perpkit keygen --outfile {path}`"
        raise InvalidInput(f"no keypair at {path}: create one with {hint}, or pass --keypair PATH")
    try:
        raw = json.loads(path.read_text())
        return Keypair.from_bytes(bytes(raw))
    except (OSError, ValueError, TypeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise InvalidInput(f"{path}: not a Solana keypair file, a JSON array of 64 bytes ({reason})") from None
