"""The surfpool cheatcodes a risk-engine harness uses, beyond ``surfnet_setAccount``/``surfnet_timeTravel``.

- ``surfnet_setTokenAccount(owner, mint, update, tokenProgram?)``: write the
  owner's associated token account for ``mint`` (created if missing, rent-exempt),
  with ``update`` = ``{amount, delegate, state, delegatedAmount, closeAuthority}``,
  each optional; ``delegate``/``closeAuthority`` take a base58 address, or
  ``"null"`` (or JSON null) to clear it; ``state`` is ``initialized`` or ``frozen``.
- ``surfnet_resetAccount(address, {includeOwnedAccounts?})``: surfpool refetches
  the account from its remote (mainnet).  Here there is no remote: the account
  goes back to what it was when the localnet started (an ``--account`` /
  ``--account-dir`` fixture, or the program), or is deleted if it did not exist
  then.  ``includeOwnedAccounts`` resets the accounts it owns too.
- ``surfnet_getSurfnetInfo``: surfpool's shape, ``{"runbookExecutions": []}``:
  perpkit runs no runbooks, so nothing is ever pending (readiness loops pass).
"""

from __future__ import annotations

import struct
from typing import Any

from solders.account import Account
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID

from perpkit.localnet.rpc import TOKEN_2022_PROGRAM_ID, Params, RpcMethods, invalid, parse_pubkey
from perpkit.spl_token import TOKEN_ACCOUNT_SIZE, TOKEN_PROGRAM_ID

U64_MAX = 2**64 - 1
ASSOCIATED_TOKEN_PROGRAM_ID = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
TOKEN_STATES = {"uninitialized": 0, "initialized": 1, "frozen": 2}


def associated_token_address(owner: Pubkey, mint: Pubkey, token_program: Pubkey) -> Pubkey:
    seeds = [bytes(owner), bytes(token_program), bytes(mint)]
    return Pubkey.find_program_address(seeds, ASSOCIATED_TOKEN_PROGRAM_ID)[0]


def _u64(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise invalid(f"Invalid params: {what} must be an unsigned 64-bit integer")
    return value


def _optional_key(value: Any, what: str) -> Pubkey | None:
    if value is None or value == "null":
        return None
    return parse_pubkey(value, what)


def _coption_key(key: Pubkey | None) -> bytes:
    return struct.pack("<I", 0) + bytes(32) if key is None else struct.pack("<I", 1) + bytes(key)


def token_account_data(
    *,
    mint: Pubkey,
    owner: Pubkey,
    amount: int,
    delegate: Pubkey | None = None,
    state: int = 1,
    is_native: int | None = None,
    delegated_amount: int = 0,
    close_authority: Pubkey | None = None,
) -> bytes:
    """The 165-byte SPL Token account layout."""
    native = struct.pack("<IQ", 0, 0) if is_native is None else struct.pack("<IQ", 1, is_native)
    return (
        bytes(mint)
        + bytes(owner)
        + struct.pack("<Q", amount)
        + _coption_key(delegate)
        + bytes([state])
        + native
        + struct.pack("<Q", delegated_amount)
        + _coption_key(close_authority)
    )


def _read_coption_key(data: bytes, at: int) -> Pubkey | None:
    return Pubkey.from_bytes(data[at + 4 : at + 36]) if struct.unpack_from("<I", data, at)[0] else None


class Cheatcodes:
    def __init__(self, methods: RpcMethods) -> None:
        self.methods = methods
        self.chain = methods.chain

    def set_token_account(self, p: Params) -> Any:
        owner = p.pubkey(0)
        mint = p.pubkey(1)
        update = p._get(2, "token account update", False) or {}
        if not isinstance(update, dict):
            raise invalid("Invalid params: the token account update must be an object")
        program_text = p._get(3, "token program", False)
        token_program = TOKEN_PROGRAM_ID if program_text is None else parse_pubkey(program_text, "token program")
        if token_program not in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID):
            raise invalid(f"Invalid params: {token_program} is not a token program")
        address = associated_token_address(owner, mint, token_program)
        current = self.chain.get_account(address)
        fields: dict[str, Any] = {"amount": 0, "delegate": None, "state": 1, "is_native": None}
        fields.update(delegated_amount=0, close_authority=None)
        if current is not None and current.owner == token_program and len(current.data) >= TOKEN_ACCOUNT_SIZE:
            data = bytes(current.data)
            fields["amount"] = struct.unpack_from("<Q", data, 64)[0]
            fields["delegate"] = _read_coption_key(data, 72)
            fields["state"] = data[108]
            tag, value = struct.unpack_from("<IQ", data, 109)
            fields["is_native"] = value if tag else None
            fields["delegated_amount"] = struct.unpack_from("<Q", data, 121)[0]
            fields["close_authority"] = _read_coption_key(data, 129)
        if "amount" in update:
            fields["amount"] = _u64(update["amount"], "amount")
        if "delegate" in update:
            fields["delegate"] = _optional_key(update["delegate"], "delegate")
        if "state" in update:
            if update["state"] not in TOKEN_STATES:
                raise invalid(f"Invalid params: state must be one of {', '.join(TOKEN_STATES)}")
            fields["state"] = TOKEN_STATES[update["state"]]
        if "delegatedAmount" in update:
            fields["delegated_amount"] = _u64(update["delegatedAmount"], "delegatedAmount")
        if "closeAuthority" in update:
            fields["close_authority"] = _optional_key(update["closeAuthority"], "closeAuthority")
        data = token_account_data(mint=mint, owner=owner, **fields)
        lamports = max(
            current.lamports if current is not None else 0,
            self.chain.minimum_balance_for_rent_exemption(len(data)),
        )
        self.chain.set_account(address, Account(lamports, data, token_program, False, 0))
        return self.methods._with_context(None)

    def reset_account(self, p: Params) -> Any:
        address = p.pubkey(0)
        config = p._get(1, "config", False) or {}
        if not isinstance(config, dict):
            raise invalid("Invalid params: the config must be an object")
        targets = [address]
        if config.get("includeOwnedAccounts"):
            targets += [owned for owned, _ in self.chain.accounts_owned_by(address)]
        for target in targets:
            original = self.chain.loaded_at_start.get(target)
            self.chain.set_account(target, original or Account(0, b"", SYSTEM_PROGRAM_ID, False, 0))
        return self.methods._with_context(None)

    def get_surfnet_info(self, p: Params) -> Any:
        return self.methods._with_context({"runbookExecutions": []})


def install(methods: RpcMethods) -> None:
    """Add the cheatcodes to an :class:`RpcMethods`."""
    cheats = Cheatcodes(methods)
    methods.handlers["surfnet_setTokenAccount"] = cheats.set_token_account
    methods.handlers["surfnet_resetAccount"] = cheats.reset_account
    methods.handlers["surfnet_getSurfnetInfo"] = cheats.get_surfnet_info
