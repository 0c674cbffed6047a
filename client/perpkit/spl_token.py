"""SPL Token instructions perpkit needs around a market: mints, accounts, minting, burning, closing, balances."""

from __future__ import annotations

from typing import Any

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_PROGRAM_ID

from perpkit.errors import AccountDecodeError

# spl.token.instructions is imported where it is used, not here: on solana-py
# 0.41 it pulls in pydantic models, 0.12 s of every `import perpkit` for
# builders that only set-up code and the token-account address need.


def _params() -> tuple[Any, Any]:
    """(InitializeMintParams, MintToParams) where this solana-py keeps them.

    solana-py 0.41 moved them to ``spl.token.models`` (pydantic); 0.36, the
    anchorpy lane's, has them in ``spl.token.instructions``.  Same fields.
    """
    try:
        from spl.token.models import InitializeMintParams, MintToParams  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # solana < 0.40
        from spl.token.instructions import (  # type: ignore[attr-defined,no-redef,unused-ignore]
            InitializeMintParams,
            MintToParams,
        )
    return InitializeMintParams, MintToParams


MINT_SIZE = 82
TOKEN_ACCOUNT_SIZE = 165

__all__ = [
    "MINT_SIZE",
    "TOKEN_ACCOUNT_SIZE",
    "TOKEN_PROGRAM_ID",
    "associated_token_address",
    "burn_instruction",
    "close_account_instruction",
    "create_associated_account_instruction",
    "initialize_mint_instruction",
    "mint_to_instruction",
    "token_amount",
]


def initialize_mint_instruction(*, mint: Pubkey, authority: Pubkey, decimals: int) -> Instruction:
    """InitializeMint of a freshly allocated ``MINT_SIZE``-byte account."""
    from spl.token.instructions import initialize_mint

    InitializeMintParams, _ = _params()
    return initialize_mint(
        InitializeMintParams(decimals=decimals, program_id=TOKEN_PROGRAM_ID, mint=mint, mint_authority=authority)
    )


def associated_token_address(owner: Pubkey, mint: Pubkey) -> Pubkey:
    from spl.token.instructions import get_associated_token_address

    return get_associated_token_address(owner, mint)


def create_associated_account_instruction(*, payer: Pubkey, owner: Pubkey, mint: Pubkey) -> Instruction:
    from spl.token.instructions import create_associated_token_account

    return create_associated_token_account(payer, owner, mint)


def mint_to_instruction(*, mint: Pubkey, destination: Pubkey, authority: Pubkey, amount: int) -> Instruction:
    from spl.token.instructions import mint_to

    _, MintToParams = _params()
    return mint_to(
        MintToParams(program_id=TOKEN_PROGRAM_ID, mint=mint, dest=destination, mint_authority=authority, amount=amount)
    )


# Burn and CloseAccount are built here rather than through spl.token.instructions: their
# parameter classes moved between solana-py 0.36 and 0.41 (see _params), and each is a fixed
# layout of one tag byte (plus a u64 for Burn) over three accounts.
_BURN, _CLOSE_ACCOUNT = 8, 9


def burn_instruction(*, account: Pubkey, mint: Pubkey, owner: Pubkey, amount: int) -> Instruction:
    """Burn ``amount`` atoms from ``account`` (its ``owner`` signs)."""
    return Instruction(
        TOKEN_PROGRAM_ID,
        bytes([_BURN]) + amount.to_bytes(8, "little"),
        [AccountMeta(account, False, True), AccountMeta(mint, False, True), AccountMeta(owner, True, False)],
    )


def close_account_instruction(*, account: Pubkey, destination: Pubkey, owner: Pubkey) -> Instruction:
    """Close an empty token ``account``; its rent goes to ``destination`` (its ``owner`` signs)."""
    return Instruction(
        TOKEN_PROGRAM_ID,
        bytes([_CLOSE_ACCOUNT]),
        [AccountMeta(account, False, True), AccountMeta(destination, False, True), AccountMeta(owner, True, False)],
    )


def token_amount(data: bytes) -> int:
    """The ``amount`` of an SPL token account's data."""
    if len(data) < TOKEN_ACCOUNT_SIZE:
        raise AccountDecodeError(f"{len(data)} bytes is not an SPL token account")
    return int.from_bytes(data[64:72], "little")
