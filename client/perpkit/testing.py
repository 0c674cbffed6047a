"""Helpers for tests that prove the program's rules: account snapshots and a ready market."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from perpkit.accounts import MarketParams
from perpkit.client import Client
from perpkit.errors import InvalidInput
from perpkit.idl import perps_idl


@dataclass(frozen=True)
class AccountState:
    """Everything about an account that an instruction could change."""

    lamports: int
    owner: Pubkey
    executable: bool
    data: bytes


async def snapshot(client: Client, addresses: Iterable[Pubkey]) -> dict[Pubkey, AccountState | None]:
    """The state of each account (None where it does not exist)."""
    keys = list(dict.fromkeys(addresses))
    accounts = await client.backend.get_multiple_accounts(keys)
    return {
        key: None if acc is None else AccountState(acc.lamports, acc.owner, acc.executable, bytes(acc.data))
        for key, acc in zip(keys, accounts, strict=True)
    }


def changed_accounts(
    before: dict[Pubkey, AccountState | None], after: dict[Pubkey, AccountState | None]
) -> list[Pubkey]:
    """Keys whose state differs between two snapshots."""
    return [key for key in before if before[key] != after.get(key)]


def with_account(
    instruction: Instruction,
    name: str,
    key: Pubkey | None = None,
    *,
    signer: bool | None = None,
    writable: bool | None = None,
) -> Instruction:
    """A copy of a perps instruction with its account ``name`` (IDL name) replaced or re-flagged.

    For proving validation: pass the wrong account, drop a signature, make a
    writable account read-only.
    """
    idl = perps_idl()
    by_disc = {bytes(i["discriminator"]): i["name"] for i in idl.raw["instructions"]}
    ix_name = by_disc.get(bytes(instruction.data[:8]))
    if ix_name is None:
        raise InvalidInput("not a perps instruction (unknown discriminator)")
    names = [a.name for a in idl.instruction_accounts(ix_name)]
    if name not in names:
        raise InvalidInput(f"{ix_name} has no account {name!r}; it has {names}")
    metas = list(instruction.accounts)
    i = names.index(name)
    old = metas[i]
    metas[i] = AccountMeta(
        key if key is not None else old.pubkey,
        old.is_signer if signer is None else signer,
        old.is_writable if writable is None else writable,
    )
    return Instruction(instruction.program_id, instruction.data, metas)


@dataclass(frozen=True)
class MarketSetup:
    """A market with its oracle and quote mint, as most scenarios start."""

    market: Pubkey
    oracle: Pubkey
    quote_mint: Pubkey


async def setup_market(
    client: Client,
    *,
    price: int = 100_000_000,
    conf: int = 0,
    market_id: int = 0,
    params: MarketParams | None = None,
    book_capacity: int = 64,
) -> MarketSetup:
    """Create a test oracle at ``price``, a 6-decimal quote mint and a market on them."""
    oracle = await client.create_oracle(price=price, conf=conf, oracle_id=market_id)
    mint = await client.create_mint()
    market = await client.create_market(
        quote_mint=mint, oracle=oracle, market_id=market_id, params=params, book_capacity=book_capacity
    )
    return MarketSetup(market=market, oracle=oracle, quote_mint=mint)
