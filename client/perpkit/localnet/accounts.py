"""Account fixtures for ``perpkit localnet``: the JSON files of ``solana account --output json``.

The format is the one ``solana-test-validator --account ADDRESS FILE`` and
``--account-dir DIR`` read (agave's ``CliAccount``)::

    {"pubkey": "...", "account": {"lamports": 1, "data": ["<base64>", "base64"],
     "owner": "...", "executable": false, "rentEpoch": 0, "space": 0}}

As in agave's ``add_accounts_from_json_files``: with ``--account ADDRESS FILE``
the given ADDRESS wins over the file's ``pubkey`` (``-`` takes the file's);
``--account-dir`` loads every ``*.json`` file of the directory at the file's
``pubkey``.  A file that cannot be read raises :class:`AccountFileError`
naming it and what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from solders.account import Account
from solders.pubkey import Pubkey

from perpkit.errors import AccountFileError as AccountFileError  # defined in perpkit.errors, re-exported here

MAX_ACCOUNT_DATA = 10 * 1024 * 1024
"""MAX_PERMITTED_DATA_LENGTH: the largest account a Solana cluster holds (10 MiB)."""
U64_MAX = 2**64 - 1


def account_json(address: Pubkey, account: Account) -> dict[str, Any]:
    """The ``solana account --output json`` object of one account."""
    data = bytes(account.data)
    return {
        "pubkey": str(address),
        "account": {
            "lamports": account.lamports,
            "data": [base64.b64encode(data).decode(), "base64"],
            "owner": str(account.owner),
            "executable": account.executable,
            "rentEpoch": account.rent_epoch,
            "space": len(data),
        },
    }


def write_account_file(path: Path | str, address: Pubkey, account: Account) -> Path:
    """Write ``account`` at ``address`` as a fixture both ``perpkit localnet`` and
    ``solana-test-validator`` load (``--account ADDRESS FILE`` / ``--account-dir``)."""
    path = Path(path)
    path.write_text(json.dumps(account_json(address, account)))
    return path


def _u64(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise ValueError(f"{what} must be an unsigned 64-bit integer")
    return value


def _pubkey(value: Any, what: str) -> Pubkey:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a base58 address")
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise ValueError(f"{what} is not a valid address: {value!r}") from None


def parse_account_json(obj: Any) -> tuple[Pubkey, Account]:
    """(pubkey, account) of a ``solana account --output json`` object; ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object with 'pubkey' and 'account'")
    if "pubkey" not in obj or "account" not in obj:
        raise ValueError("missing 'pubkey' or 'account'")
    pubkey = _pubkey(obj["pubkey"], "pubkey")
    ui = obj["account"]
    if not isinstance(ui, dict):
        raise ValueError("'account' must be an object")
    for name in ("lamports", "data", "owner"):
        if name not in ui:
            raise ValueError(f"account.{name} is missing")
    lamports = _u64(ui["lamports"], "account.lamports")
    owner = _pubkey(ui["owner"], "account.owner")
    executable = ui.get("executable", False)
    if not isinstance(executable, bool):
        raise ValueError("account.executable must be true or false")
    rent_epoch = _u64(ui.get("rentEpoch", 0), "account.rentEpoch")
    raw = ui["data"]
    if isinstance(raw, list) and len(raw) == 2 and all(isinstance(x, str) for x in raw):
        text, encoding = raw
    else:
        raise ValueError('account.data must be ["<data>", "<encoding>"]')
    try:
        if encoding == "base64":
            data = base64.b64decode(text, validate=True)
        elif encoding == "base58":
            from perpkit.base58 import b58decode

            data = b58decode(text)
        else:
            raise ValueError(f"account.data encoding {encoding!r} is not supported (base64 or base58)")
    except (binascii.Error, ValueError) as exc:
        if "encoding" in str(exc):
            raise
        raise ValueError(f"account.data is not valid {encoding}") from None
    if len(data) > MAX_ACCOUNT_DATA:
        raise ValueError(f"account.data is {len(data):,} bytes, over the {MAX_ACCOUNT_DATA:,}-byte account limit")
    space = ui.get("space")
    if space is not None and space != len(data):
        raise ValueError(f"account.space is {space} but the data is {len(data)} bytes")
    return pubkey, Account(lamports, data, owner, executable, rent_epoch)


def read_account_file(path: Path | str) -> tuple[Pubkey, Account]:
    """(the file's pubkey, its account); AccountFileError names the file and the reason."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise AccountFileError(f"account file {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise AccountFileError(f"account file {path}: not JSON ({exc})") from None
    try:
        return parse_account_json(obj)
    except ValueError as exc:
        raise AccountFileError(f"account file {path}: {exc}") from None


def account_dir_files(directory: Path | str) -> list[Path]:
    """The ``*.json`` files of an ``--account-dir`` directory, sorted."""
    directory = Path(directory)
    try:
        entries = list(directory.iterdir())
    except OSError as exc:
        raise AccountFileError(f"account directory {directory}: cannot read it ({exc.strerror or exc})") from None
    return sorted(p for p in entries if p.suffix == ".json" and p.is_file())


def load_accounts(
    accounts: Sequence[tuple[str, Path]] = (), account_dirs: Iterable[Path] = ()
) -> list[tuple[Pubkey, Account]]:
    """The accounts of ``--account ADDRESS FILE`` (ADDRESS ``-``: the file's pubkey) and
    ``--account-dir DIR`` flags, in order; a later one at the same address wins."""
    loaded: list[tuple[Pubkey, Account]] = []
    for address, path in accounts:
        pubkey, account = read_account_file(path)
        if address != "-":
            try:
                pubkey = Pubkey.from_string(address)
            except ValueError:
                raise AccountFileError(f"--account {address} {path}: {address!r} is not a valid address") from None
        loaded.append((pubkey, account))
    for directory in account_dirs:
        loaded.extend(read_account_file(path) for path in account_dir_files(directory))
    return loaded
