"""Helpers for tests that prove the program's rules: account snapshots and a ready market."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from solana.constants import LAMPORTS_PER_SOL
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from perpkit import instructions as ix
from perpkit import pda, spl_token
from perpkit.accounts import MarketParams, decode_users
from perpkit.client import Client
from perpkit.errors import ConservationError as ConservationError  # defined in perpkit.errors, re-exported here
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
    accounts = await client.accounts(keys)
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


# -- set-up conveniences: a mint, token accounts, a test oracle ---------------------------------------
async def create_mint(client: Client, *, decimals: int = 6, authority: Keypair | None = None) -> Pubkey:
    """A new SPL mint (default: 6 decimals, the client's payer as mint authority)."""
    mint = Keypair()
    authority_key = (authority or client.payer).pubkey()
    await client.send(
        [
            await client.create_account_instruction(mint.pubkey(), spl_token.MINT_SIZE, spl_token.TOKEN_PROGRAM_ID),
            spl_token.initialize_mint_instruction(mint=mint.pubkey(), authority=authority_key, decimals=decimals),
        ],
        [mint],
    )
    return mint.pubkey()


async def create_token_account(client: Client, mint: Pubkey, owner: Pubkey) -> Pubkey:
    """The associated token account of ``owner`` for ``mint`` (created; the payer pays)."""
    payer = client.payer.pubkey()
    await client.send([spl_token.create_associated_account_instruction(payer=payer, owner=owner, mint=mint)])
    return spl_token.associated_token_address(owner, mint)


async def mint_to(
    client: Client, mint: Pubkey, destination: Pubkey, amount: int, authority: Keypair | None = None
) -> None:
    """Mint ``amount`` atoms to ``destination`` (the payer is the default mint authority)."""
    if amount < 0:
        raise InvalidInput(f"amount must not be negative, got {amount}")
    signer = authority or client.payer
    instruction = spl_token.mint_to_instruction(mint=mint, destination=destination, authority=signer.pubkey(),
                                                amount=amount)  # fmt: skip
    await client.send([instruction], [signer])


async def create_oracle(
    client: Client, *, price: int, conf: int = 0, oracle_id: int = 0, authority: Keypair | None = None
) -> Pubkey:
    """A program-owned test oracle at ``price`` (6 decimals), published now."""
    signer = authority or client.payer
    build = ix.initialize_oracle(authority=signer.pubkey(), oracle_id=oracle_id, price=price, conf=conf,
                                 program_id=client.program_id)  # fmt: skip
    await client.send([build], [signer])
    return pda.oracle_address(signer.pubkey(), oracle_id, client.program_id)


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
    oracle = await create_oracle(client, price=price, conf=conf, oracle_id=market_id)
    mint = await create_mint(client)
    market = await client.create_market(
        quote_mint=mint, oracle=oracle, market_id=market_id, params=params, book_capacity=book_capacity
    )
    return MarketSetup(market=market, oracle=oracle, quote_mint=mint)


@dataclass(frozen=True)
class Conservation:
    """Both sides of SPEC 7, summed over the accounts themselves (not the market's running totals)."""

    vault: int
    free_collateral: int
    position_collateral: int
    insurance: int
    pool: int

    @property
    def backed(self) -> int:
        return self.free_collateral + self.position_collateral + self.insurance + self.pool


async def conservation(client: Client, market: Pubkey) -> Conservation:
    """Read the vault, every user account of the market and every live position, and check SPEC 7."""
    m = await client.fetch_market(market)
    vault = await client.token_balance(m.vault)
    users = await client.program_accounts(account_type="User", memcmp=[(8, bytes(market))])
    free = decode_users([(address, account.data) for address, account in users]).total_free_collateral
    book = await client.fetch_book(market)
    live = book.live_mask()
    positions = int(book.slots["collateral"][live].sum(dtype=object))
    state = Conservation(vault, free, positions, m.insurance_balance, m.pool_balance)
    problems = []
    if state.vault != state.backed:
        problems.append(f"vault {state.vault} != free {free} + positions {positions} + insurance "
                        f"{m.insurance_balance} + pool {m.pool_balance} = {state.backed}")  # fmt: skip
    if m.total_free_collateral != free:
        problems.append(f"market.total_free_collateral {m.total_free_collateral} != sum over users {free}")
    if m.total_position_collateral != positions:
        problems.append(f"market.total_position_collateral {m.total_position_collateral} != sum over book {positions}")
    if problems:
        raise ConservationError("; ".join(problems))
    return state


class ConservationChecker:
    """Checks SPEC 7 after every transaction a client sends (attach it once the market exists)."""

    def __init__(self, client: Client, market: Pubkey) -> None:
        self.client = client
        self.market = market
        self.checks = 0

    async def check(self) -> None:
        await conservation(self.client, self.market)
        self.checks += 1

    def attach(self) -> ConservationChecker:
        self.client.after_send.append(self.check)
        return self


@dataclass(frozen=True)
class TradingSetup:
    """A market whose pool is funded, with traders that hold free collateral."""

    market: Pubkey
    oracle: Pubkey
    quote_mint: Pubkey
    traders: list[Keypair]


async def setup_trading(
    client: Client,
    *,
    price: int = 100_000_000,
    params: MarketParams | None = None,
    traders: int = 2,
    deposit: int = 10_000_000_000,
    pool: int = 1_000_000_000_000,
    insurance: int = 0,
    book_capacity: int = 64,
    market_id: int = 0,
) -> TradingSetup:
    """A market at ``price`` with its pool funded and ``traders`` traders who each deposited ``deposit``.

    Amounts are quote atoms (6 decimals): the defaults are 10,000 per trader and a pool of 1,000,000.
    """
    setup = await setup_market(client, price=price, params=params, book_capacity=book_capacity, market_id=market_id)
    admin_token = await create_token_account(client, setup.quote_mint, client.payer.pubkey())
    await mint_to(client, setup.quote_mint, admin_token, pool + insurance)
    await client.fund_pool(setup.market, pool)
    if insurance:
        await client.fund_insurance(setup.market, insurance)
    keys = []
    for _ in range(traders):
        trader = Keypair()
        await client.airdrop(trader.pubkey(), LAMPORTS_PER_SOL)
        account = await create_token_account(client, setup.quote_mint, trader.pubkey())
        await mint_to(client, setup.quote_mint, account, deposit)
        await client.create_user(setup.market, owner=trader)
        await client.deposit(setup.market, deposit, owner=trader)
        keys.append(trader)
    return TradingSetup(setup.market, setup.oracle, setup.quote_mint, keys)
