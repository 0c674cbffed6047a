"""Helpers for tests that prove the program's rules: account snapshots and a ready market."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from solders.pubkey import Pubkey

from perpkit.accounts import MarketParams
from perpkit.client import Client


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
