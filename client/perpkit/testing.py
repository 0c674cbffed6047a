"""Helpers for tests that prove the program's rules: account snapshots, a ready market, a Pyth feed double."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from solana.constants import LAMPORTS_PER_SOL
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.rent import Rent
from solders.sysvar import RENT

from perpkit import instructions as ix
from perpkit import pda, spl_token
from perpkit.accounts import MarketParams, decode_users
from perpkit.client import Client
from perpkit.errors import AccountNotFound, InvalidInput
from perpkit.errors import ConservationError as ConservationError  # defined in perpkit.errors, re-exported here
from perpkit.idl import perps_idl
from perpkit.oracles import OracleKind, OracleSource
from perpkit.pyth import FEED_IDS, FULL, PRICE_UPDATE_V2_LEN, RECEIVER_PROGRAM_ID, PriceUpdateV2, VerificationLevel


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
async def create_mint(
    client: Client, *, decimals: int = 6, authority: Keypair | None = None, mint: Keypair | None = None
) -> Pubkey:
    """A new SPL mint (default: 6 decimals, the client's payer as mint authority, a fresh address)."""
    mint = mint or Keypair()
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


class PythFeed:
    """A test double of a Pyth price feed: a ``PriceUpdateV2`` account written with ``client.set_account``.

    It works wherever ``set_account`` does (the embedded runtime, ``perpkit localnet``, surfpool).
    ``address`` defaults to a fresh random address; for the address Pyth sponsors on devnet and mainnet,
    pass ``address=perpkit.pyth.price_feed_address(feed_id)``.  The account is owned by ``receiver``
    (the real receiver by default; pass another to test the owner check) and ``write_authority``
    defaults to the address itself, as the push oracle's accounts are.
    """

    def __init__(
        self,
        client: Client,
        feed_id: bytes,
        *,
        address: Pubkey | None = None,
        receiver: Pubkey = RECEIVER_PROGRAM_ID,
        write_authority: Pubkey | None = None,
    ) -> None:
        if not isinstance(feed_id, bytes) or len(feed_id) != 32:
            raise InvalidInput(f"feed_id must be 32 bytes, got {feed_id!r}")
        self.client = client
        self.feed_id = feed_id
        self.address: Pubkey = address if address is not None else Keypair().pubkey()
        self.receiver = receiver
        self.write_authority: Pubkey = write_authority if write_authority is not None else self.address
        self.last: PriceUpdateV2 | None = None
        """The update last published through this object."""

    async def publish(
        self,
        price: int,
        conf: int,
        exponent: int,
        publish_time: int,
        *,
        verification: VerificationLevel = FULL,
        posted_slot: int | None = None,
        ema_price: int | None = None,
        ema_conf: int | None = None,
    ) -> PriceUpdateV2:
        """Rewrite the account in place with this update (rent-exempt for 134 bytes under the Rent sysvar); return it.

        ``posted_slot`` defaults to the cluster's current slot, ``prev_publish_time`` is the previous
        update's ``publish_time`` (this one's on the first publish), and the EMA defaults to price and conf.
        """
        if posted_slot is None:
            posted_slot = (await self.client.clock()).slot
        update = PriceUpdateV2(
            write_authority=self.write_authority,
            verification=verification,
            feed_id=self.feed_id,
            price=price,
            conf=conf,
            exponent=exponent,
            publish_time=publish_time,
            prev_publish_time=self.last.publish_time if self.last is not None else publish_time,
            ema_price=price if ema_price is None else ema_price,
            ema_conf=conf if ema_conf is None else ema_conf,
            posted_slot=posted_slot,
        )
        lamports = await self._rent_exempt_lamports()
        await self.client.set_account(self.address, Account(lamports, update.encode(), self.receiver, False, 0))
        self.last = update
        return update

    async def _rent_exempt_lamports(self) -> int:
        """Rent exemption for 134 bytes under the cluster's Rent sysvar (the default rent if it is unreadable)."""
        sysvar = await self.client.account(RENT)
        rent = Rent.from_bytes(bytes(sysvar.data)) if sysvar is not None else Rent.default()
        return rent.minimum_balance(PRICE_UPDATE_V2_LEN)

    async def set_price(
        self, price: int, conf: int = 0, *, exponent: int = -8, publish_time: int | None = None
    ) -> None:
        """Publish a 6-decimal ``price``/``conf`` (as ``Client.set_oracle_price`` takes them) at ``exponent``
        (at most -6: exact), published now by the cluster's clock unless ``publish_time`` is given."""
        if exponent > -6:
            raise InvalidInput(f"set_price converts exactly to exponents of -6 and below, got {exponent}")
        scale = 10 ** (-6 - exponent)
        when = publish_time if publish_time is not None else await self.client.now()
        await self.publish(price * scale, conf * scale, exponent, when)

    async def read(self) -> PriceUpdateV2:
        """The account as the chain holds it, decoded (AccountNotFound before the first publish)."""
        account = await self.client.account(self.address)
        if account is None:
            raise AccountNotFound(self.address, "Pyth price feed")
        return PriceUpdateV2.decode(bytes(account.data))


@dataclass(frozen=True)
class MarketSetup:
    """A market with its oracle and quote mint, as most scenarios start."""

    market: Pubkey
    oracle: Pubkey
    quote_mint: Pubkey
    feed: PythFeed | None = None
    """The Pyth test double behind ``oracle`` on a Pyth-priced market; None on the test oracle."""

    async def set_price(self, client: Client, price: int, conf: int = 0) -> None:
        """Publish a 6-decimal price on the market's oracle, whichever kind it is."""
        await _set_price(client, self.oracle, self.feed, price, conf)


async def _set_price(client: Client, oracle: Pubkey, feed: PythFeed | None, price: int, conf: int) -> None:
    if feed is None:
        await client.set_oracle_price(oracle, price=price, conf=conf)
    else:
        await feed.set_price(price, conf)


async def setup_market(
    client: Client,
    *,
    price: int = 100_000_000,
    conf: int = 0,
    market_id: int = 0,
    params: MarketParams | None = None,
    book_capacity: int = 64,
    oracle_kind: OracleKind = OracleKind.TEST,
    feed: PythFeed | None = None,
    mint: Keypair | None = None,
) -> MarketSetup:
    """Create an oracle at ``price``, a 6-decimal quote mint (at ``mint``'s address if given) and a market.

    The oracle is the program's test oracle, or with ``oracle_kind=OracleKind.PYTH`` a
    :class:`PythFeed` of SOL/USD publishing at exponent -8.  Given a ``feed`` (one preloaded from a
    fixture file, say), the market is created on it as it stands: nothing is published.
    """
    if feed is None and oracle_kind == OracleKind.PYTH:
        feed = PythFeed(client, FEED_IDS["SOL/USD"])
        await feed.set_price(price, conf)
    if feed is not None:
        oracle, source = feed.address, OracleSource.pyth(feed.feed_id, receiver=feed.receiver)
    else:
        oracle = await create_oracle(client, price=price, conf=conf, oracle_id=market_id)
        source = OracleSource.test()
    quote_mint = await create_mint(client, mint=mint)
    market = await client.create_market(quote_mint=quote_mint, oracle=oracle, market_id=market_id, params=params,
                                        book_capacity=book_capacity, oracle_source=source)  # fmt: skip
    return MarketSetup(market=market, oracle=oracle, quote_mint=quote_mint, feed=feed)


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
    feed: PythFeed | None = None
    """The Pyth test double behind ``oracle`` on a Pyth-priced market; None on the test oracle."""

    async def set_price(self, client: Client, price: int, conf: int = 0) -> None:
        """Publish a 6-decimal price on the market's oracle, whichever kind it is."""
        await _set_price(client, self.oracle, self.feed, price, conf)


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
    oracle_kind: OracleKind = OracleKind.TEST,
    feed: PythFeed | None = None,
) -> TradingSetup:
    """A market at ``price`` with its pool funded and ``traders`` traders who each deposited ``deposit``.

    Amounts are quote atoms (6 decimals): the defaults are 10,000 per trader and a pool of 1,000,000.
    ``oracle_kind`` and ``feed`` as :func:`setup_market` takes them.
    """
    setup = await setup_market(client, price=price, params=params, book_capacity=book_capacity, market_id=market_id,
                               oracle_kind=oracle_kind, feed=feed)  # fmt: skip
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
    return TradingSetup(setup.market, setup.oracle, setup.quote_mint, keys, setup.feed)
