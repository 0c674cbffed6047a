"""End to end on LiteSVM: markets and the test oracle, and refusals that change nothing."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from perpkit import Client, MarketParams, book_account_size, pda, program_errors
from perpkit import instructions as ix
from perpkit.deploy import deploy_program
from perpkit.errors import InvalidInput, ProgramError
from perpkit.idl import perps_idl
from perpkit.pytest_plugin import START_TIME
from perpkit.risk import U64_MAX
from perpkit.runtime import embedded_runtime
from perpkit.spl_token import TOKEN_PROGRAM_ID
from perpkit.testing import changed_accounts, create_mint, create_oracle, setup_market, snapshot, with_account


def keys_of(instructions: list[Instruction]) -> list[Pubkey]:
    return [meta.pubkey for i in instructions for meta in i.accounts]


async def assert_refused(
    client: Client,
    instructions: list[Instruction],
    error: type[ProgramError],
    *,
    account: str | None = None,
    signers: tuple[Keypair, ...] = (),
) -> ProgramError:
    """Send, expect ``error`` (on ``account``), and check no account changed except the fee payer's."""
    keys = [k for k in keys_of(instructions) if k != client.payer.pubkey()]
    before = await snapshot(client, keys)
    with pytest.raises(error) as caught:
        await client.send(instructions, signers)
    assert caught.value.account == account, caught.value.logs
    assert changed_accounts(before, await snapshot(client, keys)) == []
    return caught.value


async def test_market_and_oracle_round_trip(perps_client: Client) -> None:
    c = perps_client
    start = await c.now()
    oracle = await create_oracle(c, price=2_500_000_000, conf=1_250_000, oracle_id=3)
    o = await c.fetch_oracle(oracle)
    assert (o.price, o.conf, o.expo, o.oracle_id) == (2_500_000_000, 1_250_000, -6, 3)
    assert o.authority == c.payer.pubkey()
    assert o.publish_time == start
    assert oracle == pda.oracle_address(c.payer.pubkey(), 3)

    await c.advance_time(90)
    await c.set_oracle_price(oracle, price=2_612_345_678, conf=3_000_000)
    o = await c.fetch_oracle(oracle)
    assert (o.price, o.conf, o.publish_time) == (2_612_345_678, 3_000_000, start + 90)
    # the test oracle holds any value; the market's oracle checks refuse bad ones on read
    await c.set_oracle_price(oracle, price=-5, conf=U64_MAX, publish_time=-1)
    o = await c.fetch_oracle(oracle)
    assert (o.price, o.conf, o.publish_time) == (-5, U64_MAX, -1)

    mint = await create_mint(c)
    params = MarketParams(
        skew_scale=5_000_000_000_000,
        max_funding_rate_bps_per_day=250,
        max_staleness_s=30,
        ewma_window_s=300,
        initial_margin_bps=2000,
        maintenance_margin_bps=1000,
        taker_fee_bps=5,
        liquidation_reward_bps=1500,
        price_band_bps=700,
        max_conf_bps=150,
    )
    market = await c.create_market(quote_mint=mint, oracle=oracle, market_id=42, params=params, book_capacity=100)
    m = await c.fetch_market(market)
    assert market == pda.market_address(c.payer.pubkey(), 42)
    assert m.params == params
    assert (m.admin, m.quote_mint, m.oracle, m.market_id) == (c.payer.pubkey(), mint, oracle, 42)
    assert m.vault == pda.vault_address(market)
    assert (m.book_capacity, m.paused, m.created_at) == (100, False, start + 90)

    vault = await c.backend.get_account(m.vault)
    assert vault is not None and vault.owner == TOKEN_PROGRAM_ID
    data = bytes(vault.data)
    assert Pubkey(data[0:32]) == mint
    assert Pubkey(data[32:64]) == pda.market_authority_address(market)  # the authority PDA owns the vault
    assert await c.token_balance(m.vault) == 0

    book = await c.fetch_book_header(m.book)
    assert (book.market, book.capacity) == (market, 100)
    book_account = await c.backend.get_account(m.book)
    assert book_account is not None and len(book_account.data) == book_account_size(100)
    assert book_account.owner == c.program_id


async def test_wrong_signer_is_refused(perps_client: Client) -> None:
    c = perps_client
    oracle = await create_oracle(c, price=100_000_000)
    mallory = Keypair()
    await c.backend.request_airdrop(mallory.pubkey(), 10**9)
    bad = ix.set_oracle_price(authority=mallory.pubkey(), oracle=oracle, price=1, conf=0, publish_time=0)
    err = await assert_refused(c, [bad], program_errors.Unauthorized, account="authority", signers=(mallory,))
    assert "AnchorError caused by account: authority. Error Code: Unauthorized. Error Number: 6015." in "".join(
        err.logs
    )
    assert (await c.fetch_oracle(oracle)).price == 100_000_000


async def test_missing_signature_is_refused(perps_client: Client) -> None:
    c = perps_client
    authority = Keypair()
    await c.backend.request_airdrop(authority.pubkey(), 10**9)
    oracle = await create_oracle(c, price=100_000_000, authority=authority)
    good = ix.set_oracle_price(authority=authority.pubkey(), oracle=oracle, price=1, conf=0, publish_time=0)
    unsigned = with_account(good, "authority", signer=False)
    await assert_refused(c, [unsigned], program_errors.MissingSigner, account="authority")
    read_only = with_account(good, "oracle", writable=False)
    await assert_refused(c, [read_only], program_errors.AccountNotWritable, account="oracle", signers=(authority,))


async def test_wrong_owner_is_refused(perps_client: Client) -> None:
    c = perps_client
    oracle = await create_oracle(c, price=100_000_000)
    mint = await create_mint(c)
    # A book owned by the system program instead of ours.
    book = Keypair()
    await c.send([await c.create_account_instruction(book.pubkey(), book_account_size(8), Pubkey.default())], [book])
    init = ix.initialize_market(
        admin=c.payer.pubkey(), quote_mint=mint, oracle=oracle, book=book.pubkey(), market_id=1,
        book_capacity=8, params=MarketParams(),
    )  # fmt: skip
    await assert_refused(c, [init], program_errors.InvalidAccountOwner, account="book")
    # An oracle that is not ours (the mint, owned by the token program).
    on_mint = ix.set_oracle_price(authority=c.payer.pubkey(), oracle=mint, price=1, conf=0, publish_time=0)
    await assert_refused(c, [on_mint], program_errors.InvalidAccountOwner, account="oracle")


async def test_garbage_instruction_data_is_refused(perps_client: Client) -> None:
    c = perps_client
    oracle = await create_oracle(c, price=100_000_000)
    metas = [AccountMeta(c.payer.pubkey(), True, True), AccountMeta(oracle, False, True)]

    def raw(data: bytes) -> Instruction:
        return Instruction(c.program_id, data, metas)

    set_price = bytes(perps_idl().instruction("set_oracle_price")["discriminator"])
    await assert_refused(c, [raw(b"")], program_errors.UnknownInstruction)
    await assert_refused(c, [raw(b"\x01\x02\x03")], program_errors.UnknownInstruction)
    await assert_refused(c, [raw(hashlib.sha256(b"global:steal").digest()[:8])], program_errors.UnknownInstruction)
    await assert_refused(c, [raw(set_price + bytes(23))], program_errors.InvalidInstructionData)
    await assert_refused(c, [raw(set_price + bytes(25))], program_errors.InvalidInstructionData)


def _args_size(name: str) -> int:
    """Borsh size of an instruction's arguments (all fixed-size types)."""
    sizes = {"u8": 1, "i8": 1, "bool": 1, "u16": 2, "i16": 2, "u32": 4, "i32": 4, "u64": 8, "i64": 8, "pubkey": 32}

    def size(ty: object) -> int:
        if isinstance(ty, str):
            return sizes[ty]
        assert isinstance(ty, dict)
        if "array" in ty:
            return size(ty["array"][0]) * int(ty["array"][1])
        fields = perps_idl().type_def(ty["defined"]["name"])["type"]["fields"]
        return sum(size(f["type"]) for f in fields)

    return sum(size(a["type"]) for a in perps_idl().instruction(name)["args"])


INSTRUCTIONS = {bytes(i["discriminator"]): i["name"] for i in perps_idl().raw["instructions"]}
garbage = st.one_of(
    st.binary(max_size=64).filter(lambda d: d[:8] not in INSTRUCTIONS),
    st.tuples(st.sampled_from(sorted(INSTRUCTIONS)), st.binary(max_size=64))
    .filter(lambda t: len(t[1]) != _args_size(INSTRUCTIONS[t[0]]))
    .map(lambda t: t[0] + t[1]),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=garbage)
async def test_random_instruction_data_never_changes_state(perps_client: Client, data: bytes) -> None:
    c = perps_client
    oracle = pda.oracle_address(c.payer.pubkey(), 0)
    if await c.backend.get_account(oracle) is None:
        await create_oracle(c, price=100_000_000)
    expected = program_errors.InvalidInstructionData if data[:8] in INSTRUCTIONS else program_errors.UnknownInstruction
    bad = Instruction(c.program_id, data, [AccountMeta(c.payer.pubkey(), True, True), AccountMeta(oracle, False, True)])
    await assert_refused(c, [bad], expected)


async def test_market_address_and_account_checks(perps_client: Client) -> None:
    c = perps_client
    setup = await setup_market(c, market_id=5, book_capacity=8)
    m = await c.fetch_market(setup.market)

    async def fresh_book(capacity: int, size: int | None = None) -> Keypair:
        book = Keypair()
        space = size if size is not None else book_account_size(capacity)
        await c.send([await c.create_account_instruction(book.pubkey(), space, c.program_id)], [book])
        return book

    def init(market_id: int, book: Pubkey, capacity: int = 8, **over: object) -> Instruction:
        kwargs: dict[str, object] = {
            "admin": c.payer.pubkey(), "quote_mint": setup.quote_mint, "oracle": setup.oracle, "book": book,
            "market_id": market_id, "book_capacity": capacity, "params": MarketParams(),
        }  # fmt: skip
        kwargs.update(over)
        return ix.initialize_market(**kwargs)  # type: ignore[arg-type]

    # the same market twice
    book = await fresh_book(8)
    await assert_refused(c, [init(5, book.pubkey())], program_errors.AccountAlreadyInitialized, account="market")
    # a book that already serves a market
    await assert_refused(c, [init(6, m.book)], program_errors.BookNotZeroed, account="book")
    # a book of the wrong size, and a capacity the program does not allow
    small = await fresh_book(8, size=book_account_size(8) - 1)
    await assert_refused(c, [init(6, small.pubkey())], program_errors.InvalidBookSize, account="book")
    await assert_refused(c, [init(6, book.pubkey(), capacity=0)], program_errors.InvalidBookSize, account="book")
    # market address that is not the PDA of (admin, market_id)
    wrong = with_account(init(6, book.pubkey()), "market", pda.market_address(c.payer.pubkey(), 7))
    await assert_refused(c, [wrong], program_errors.InvalidPda, account="market")
    wrong = with_account(init(6, book.pubkey()), "vault", Keypair().pubkey())
    await assert_refused(c, [wrong], program_errors.InvalidPda, account="vault")
    # a quote mint with 9 decimals
    nine = await create_mint(c, decimals=9)
    await assert_refused(c, [init(6, book.pubkey(), quote_mint=nine)], program_errors.InvalidMint, account="quote_mint")
    # an oracle account of another type (the market itself)
    await assert_refused(
        c, [init(6, book.pubkey(), oracle=setup.market)], program_errors.InvalidDiscriminator, account="oracle"
    )
    # parameters out of range
    for bad in (
        MarketParams(maintenance_margin_bps=1000, initial_margin_bps=1000),
        MarketParams(maintenance_margin_bps=0),
        MarketParams(initial_margin_bps=10_001),
        MarketParams(price_band_bps=0),
        MarketParams(skew_scale=0),
        MarketParams(max_staleness_s=0),
    ):
        await assert_refused(c, [init(6, book.pubkey(), params=bad)], program_errors.InvalidMarketParams)
    # an impostor token program
    spoof = with_account(init(6, book.pubkey()), "token_program", c.program_id)
    await assert_refused(c, [spoof], program_errors.InvalidAccountAddress, account="token_program")
    # and the book is still usable for a correct market
    await c.send([init(6, book.pubkey())])
    assert (await c.fetch_book_header(book.pubkey())).market == pda.market_address(c.payer.pubkey(), 6)


async def test_prefunded_pda_addresses_still_initialize(perps_client: Client) -> None:
    """Lamports sent to a future PDA must not block its creation (CreateAccount would refuse).

    The gift is the rent-exempt minimum of an empty account: the mainnet
    feature set refuses a transfer that leaves a new account below it."""
    c = perps_client
    oracle = pda.oracle_address(c.payer.pubkey(), 9)
    await c.backend.request_airdrop(oracle, await c.backend.minimum_balance_for_rent_exemption(0))
    created = await create_oracle(c, price=7, oracle_id=9)
    assert created == oracle
    account = await c.backend.get_account(oracle)
    assert account is not None and account.owner == c.program_id
    assert account.lamports == await c.backend.minimum_balance_for_rent_exemption(len(account.data))


async def test_program_runs_at_any_address(perps_client: Client) -> None:
    """The program never assumes its own id: deployed at a new address, a whole market works there."""
    program = Keypair()
    await deploy_program(perps_client, embedded_runtime().program_path().read_bytes(), program)
    c = Client(perps_client.backend, perps_client.payer, program_id=program.pubkey())
    setup = await setup_market(c, market_id=1, book_capacity=4)
    market = await c.fetch_market(setup.market)
    assert setup.market == pda.market_address(c.payer.pubkey(), 1, program.pubkey())
    assert market.vault == pda.vault_address(setup.market, program.pubkey())
    book = await c.backend.get_account(market.book)
    assert book is not None and book.owner == program.pubkey()
    with pytest.raises(program_errors.InvalidAccountOwner):  # and the localnet copy rejects its accounts
        await perps_client.set_oracle_price(setup.oracle, price=1)


async def test_embedded_runtime_loads_the_program_anywhere() -> None:
    elsewhere = Keypair().pubkey()
    async with await Client.embedded(program_id=elsewhere, start_time=START_TIME) as c:
        setup = await setup_market(c, market_id=1, book_capacity=4)
        assert setup.market == pda.market_address(c.payer.pubkey(), 1, elsewhere)


async def test_sdk_refuses_bad_arguments_before_sending(perps_client: Client) -> None:
    c = perps_client
    with pytest.raises(InvalidInput, match=r"initialize_oracle\.price must be a i64"):
        ix.initialize_oracle(authority=c.payer.pubkey(), oracle_id=0, price=2**63, conf=0)
    with pytest.raises(InvalidInput, match="oracle_id must fit in a u32"):
        await create_oracle(c, price=1, oracle_id=-1)
    with pytest.raises(InvalidInput, match=r"params\.initial_margin_bps must be a u16"):
        ix.initialize_market(
            admin=c.payer.pubkey(), quote_mint=c.payer.pubkey(), oracle=c.payer.pubkey(), book=c.payer.pubkey(),
            market_id=0, book_capacity=1, params=MarketParams(initial_margin_bps=70_000),
        )  # fmt: skip
    with pytest.raises(InvalidInput, match="unknown accounts"):
        ix.build_instruction("set_oracle_price", {"authority": c.payer.pubkey(), "orcle": c.payer.pubkey()}, {})
    with pytest.raises(InvalidInput, match="cannot advance time by a negative amount"):
        await c.advance_time(-1)
