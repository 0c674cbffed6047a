"""Pyth ``PriceUpdateV2``: layout, decoding refusals, the 6-decimal rescale, feed addresses, fixtures (issue 12)."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Driver
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.pubkey import Pubkey

from perpkit import program_errors
from perpkit.client import Client
from perpkit.errors import (
    AccountDecodeError,
    AccountNotFound,
    InvalidInput,
    PerpkitError,
    PythAccountError,
    PythPriceError,
)
from perpkit.localnet.accounts import account_json, read_account_file
from perpkit.pyth import (
    FEED_IDS,
    FIXTURE_PUBLISH_TIME,
    FULL,
    KNOWN_RECEIVERS,
    PRICE_UPDATE_V2_DISCRIMINATOR,
    PRICE_UPDATE_V2_LEN,
    PUSH_ORACLE_PROGRAM_ID,
    PUSH_ORACLE_PROGRAM_ID_PRO,
    RECEIVER_PROGRAM_ID,
    RECEIVER_PROGRAM_ID_PRO,
    Full,
    OraclePrice,
    Partial,
    PriceUpdateV2,
    find_price_feed,
    fixture_accounts,
    fixture_file_name,
    price_feed_address,
    read_price,
    rent_exempt_lamports,
    rescale,
)
from perpkit.testing import PythFeed

FIXTURES = ROOT / "fixtures" / "accounts" / "pyth"
U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1


def sample(verification: Full | Partial = FULL, **changes: object) -> PriceUpdateV2:
    fields: dict[str, object] = {
        "write_authority": Pubkey.new_unique(),
        "verification": verification,
        "feed_id": FEED_IDS["SOL/USD"],
        "price": 15_012_345_678,
        "conf": 7_654_321,
        "exponent": -8,
        "publish_time": 1_800_000_123,
        "prev_publish_time": 1_800_000_100,
        "ema_price": 14_999_000_000,
        "ema_conf": 8_000_000,
        "posted_slot": 0x0102030405060708,
    }
    fields.update(changes)
    return PriceUpdateV2(**fields)  # type: ignore[arg-type]


# -- layout ------------------------------------------------------------------------------------------
def test_the_discriminator_is_anchors() -> None:
    assert hashlib.sha256(b"account:PriceUpdateV2").digest()[:8] == PRICE_UPDATE_V2_DISCRIMINATOR
    assert bytes([34, 241, 35, 99, 157, 126, 244, 205]) == PRICE_UPDATE_V2_DISCRIMINATOR


@pytest.mark.parametrize("verification", [FULL, Partial(0), Partial(13), Partial(255)])
def test_round_trip(verification: Full | Partial) -> None:
    update = sample(verification)
    data = update.encode()
    assert len(data) == PRICE_UPDATE_V2_LEN
    assert PriceUpdateV2.decode(data) == update
    assert update.is_fully_verified == (verification == FULL)


# (field, struct format, offset under Partial, offset under Full): the research table
OFFSETS = [
    ("feed_id", "32s", 42, 41),
    ("price", "<q", 74, 73),
    ("conf", "<Q", 82, 81),
    ("exponent", "<i", 90, 89),
    ("publish_time", "<q", 94, 93),
    ("prev_publish_time", "<q", 102, 101),
    ("ema_price", "<q", 110, 109),
    ("ema_conf", "<Q", 118, 117),
    ("posted_slot", "<Q", 126, 125),
]


@pytest.mark.parametrize(("name", "fmt", "partial_at", "full_at"), OFFSETS)
def test_field_offsets_are_the_research_table(name: str, fmt: str, partial_at: int, full_at: int) -> None:
    for verification, at in ((Partial(7), partial_at), (FULL, full_at)):
        update = sample(verification)
        data = update.encode()
        assert data[:8] == PRICE_UPDATE_V2_DISCRIMINATOR
        assert data[8:40] == bytes(update.write_authority)
        (value,) = struct.unpack_from(fmt, data, at)
        assert value == getattr(update, name), (name, verification)


def test_the_verification_tag_and_trailing_byte() -> None:
    partial = sample(Partial(9)).encode()
    assert partial[40:42] == bytes([0, 9])
    full = sample(FULL).encode()
    assert full[40] == 1
    assert full[133] == 0  # encode leaves the unused byte zero
    assert partial[126:134] == (0x0102030405060708).to_bytes(8, "little")  # Partial fills all 134


def test_a_stale_byte_133_after_a_partial_to_full_rewrite_is_ignored() -> None:
    partial = sample(Partial(9)).encode()
    full = sample(FULL, posted_slot=5)
    rewritten = full.encode()[:133] + partial[133:]  # Anchor serialises over the start, keeps the tail
    assert rewritten[133] == 0x01  # the old last byte of posted_slot
    assert PriceUpdateV2.decode(rewritten) == full
    assert PriceUpdateV2.decode(rewritten + b"\xff" * 10) == full  # a longer account: the tail is ignored too


# -- refusals ----------------------------------------------------------------------------------------
def test_decode_refuses_short_data() -> None:
    data = sample(FULL).encode()
    for length in (0, 8, 133):
        with pytest.raises(PythAccountError, match=rf"is {length} bytes, expected at least 134"):
            PriceUpdateV2.decode(data[:length])


def test_decode_refuses_another_discriminator() -> None:
    data = b"\0" * 8 + sample(FULL).encode()[8:]
    with pytest.raises(PythAccountError, match=r"not a PriceUpdateV2 account: discriminator 0000000000000000"):
        PriceUpdateV2.decode(data)


@pytest.mark.parametrize("tag", [2, 3, 255])
def test_decode_refuses_an_unknown_verification_tag(tag: int) -> None:
    data = bytearray(sample(FULL).encode())
    data[40] = tag
    with pytest.raises(PythAccountError, match=rf"verification level tag is {tag}, expected 0 \(Partial\) or 1"):
        PriceUpdateV2.decode(bytes(data))


def test_the_errors_are_in_the_family() -> None:
    assert issubclass(PythAccountError, AccountDecodeError)
    assert issubclass(PythPriceError, PerpkitError)
    error = PythPriceError(error_name="OraclePriceOutOfRange", detail="x")
    assert error.error_name == "OraclePriceOutOfRange"
    assert str(error) == "OraclePriceOutOfRange: x"


@pytest.mark.parametrize(
    "changes",
    [
        {"feed_id": b"\0" * 31},
        {"price": 2**63},
        {"conf": -1},
        {"exponent": 2**31},
        {"posted_slot": 2**64},
        {"verification": 1},
        {"write_authority": "not a key"},
    ],
)
def test_construction_checks_ranges(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        sample(**changes)  # type: ignore[arg-type]


def test_partial_signatures_fit_in_a_u8() -> None:
    with pytest.raises(InvalidInput):
        Partial(256)


def test_ui_price_and_conf() -> None:
    update = sample(price=15_000_000_000, conf=7_500_000, exponent=-8)
    assert update.ui_price == Decimal("150")
    assert str(update.ui_price) == "150.00000000"
    assert update.ui_conf == Decimal("0.075")
    assert sample(price=-123, exponent=2).ui_price == Decimal(-12300)
    assert sample(price=1, exponent=-24).ui_price == Decimal("1e-24")


# -- rescale to 6 decimals ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("price", "conf", "exponent", "expected"),
    [
        (15_000_000_000, 7_500_000, -8, (150_000_000, 75_000)),
        (15_000_000_099, 7_500_001, -8, (150_000_000, 75_001)),  # price truncates, conf rounds up
        (150_000_000_000_000, 1, -12, (150_000_000, 1)),
        (150_000_000_000_000, 1_000_000, -12, (150_000_000, 1)),
        (150_000_000_000_000, 1_000_001, -12, (150_000_000, 2)),
        (150_000_000, 75_000, -6, (150_000_000, 75_000)),
        (1_500, 1, -1, (150_000_000, 100_000)),
        (150, 2, 0, (150_000_000, 2_000_000)),
        (3, 1, 2, (300_000_000, 100_000_000)),
        (1, 1, 12, (10**18, 10**18)),
        (10**18, 10**18 + 1, -24, (1, 2)),
        (10**18 - 1, 0, -24, (0, 0)),
        (-15_000_000_099, 0, -8, (-150_000_000, 0)),  # toward zero, not floor
        (-1, 1, -8, (0, 1)),
        (-5, 0, 12, (-5 * 10**18, 0)),
    ],
)
def test_rescale(price: int, conf: int, exponent: int, expected: tuple[int, int]) -> None:
    assert rescale(price, conf, exponent) == expected


@pytest.mark.parametrize("exponent", [-25, 13, -(2**31), 2**31 - 1])
def test_rescale_refuses_an_unsupported_exponent(exponent: int) -> None:
    with pytest.raises(PythPriceError, match="OracleExponentUnsupported") as caught:
        rescale(1, 0, exponent)
    assert caught.value.error_name == "OracleExponentUnsupported"


@pytest.mark.parametrize(("price", "exponent"), [(10, 12), (I64_MAX, 0), (-(2**63), -5), (9_223_372_036_855, 0)])
def test_rescale_refuses_a_price_out_of_i64(price: int, exponent: int) -> None:
    with pytest.raises(PythPriceError) as caught:
        rescale(price, 0, exponent)
    assert caught.value.error_name == "OraclePriceOutOfRange"


def test_rescale_at_the_i64_edge() -> None:
    assert rescale(9_223_372_036_854, 0, 0) == (9_223_372_036_854_000_000, 0)
    assert rescale(-9_223_372_036_854, 0, 0) == (-9_223_372_036_854_000_000, 0)
    assert rescale(I64_MAX, 0, -6) == (I64_MAX, 0)


def test_rescale_saturates_conf() -> None:
    assert rescale(1, U64_MAX, 0) == (1_000_000, U64_MAX)
    assert rescale(1, 2 * 10**7, 12) == (10**18, U64_MAX)
    assert rescale(1, U64_MAX, -6) == (1, U64_MAX)


def test_rescale_refuses_out_of_range_inputs() -> None:
    for args in ((2**63, 0, -8), (1, -1, -8), (1, 2**64, -8), (1, 0, 2**31)):
        with pytest.raises(InvalidInput):
            rescale(*args)


def reference(price: int, conf: int, exponent: int) -> tuple[int, int] | str:
    """An independent model: exact fractions, then the rounding SPEC 3 names."""
    if not -24 <= exponent <= 12:
        return "OracleExponentUnsupported"
    scale = Fraction(10) ** (exponent + 6)
    exact_price, exact_conf = price * scale, conf * scale
    price6 = int(exact_price)  # int() of a Fraction truncates toward zero
    conf6 = -((-exact_conf.numerator) // exact_conf.denominator)
    if abs(price6) > I64_MAX:  # on the magnitude, as the program checks: -2**63 is out too
        return "OraclePriceOutOfRange"
    return price6, min(conf6, U64_MAX)


@given(
    price=st.integers(-(2**63), I64_MAX) | st.integers(-(10**6), 10**6),
    conf=st.integers(0, U64_MAX) | st.integers(0, 10**6),
    exponent=st.integers(-30, 18),
)
def test_rescale_matches_exact_fractions(price: int, conf: int, exponent: int) -> None:
    expected = reference(price, conf, exponent)
    if isinstance(expected, str):
        with pytest.raises(PythPriceError) as caught:
            rescale(price, conf, exponent)
        assert caught.value.error_name == expected
    else:
        assert rescale(price, conf, exponent) == expected


# -- feed addresses ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("symbol", "shard", "program", "address"),
    [
        ("SOL/USD", 0, PUSH_ORACLE_PROGRAM_ID, "7UVimffxr9ow1uXYxsr4LHAcV58mLzhmwaeKvJ1pjLiE"),
        ("SOL/USD", 1, PUSH_ORACLE_PROGRAM_ID, "6bWEn5B8eJCRAek5acd3R7d4Sx3e7JWvt84srqqfYgt"),
        ("BTC/USD", 0, PUSH_ORACLE_PROGRAM_ID, "4cSM2e6rvbGQUFiJbqytoVMi5GgghSMr8LwVrT9VPSPo"),
        ("BTC/USD", 1, PUSH_ORACLE_PROGRAM_ID, "CQanas4srymHLigVyu56ynJhKZzKYJvBa45VAsTgXSvM"),
        ("ETH/USD", 0, PUSH_ORACLE_PROGRAM_ID, "42amVS4KgzR9rA28tkVYqVXjq9Qa8dcZQMbH5EYFX6XC"),
        ("SOL/USD", 0, PUSH_ORACLE_PROGRAM_ID_PRO, "7AviUf9nL62mcxNbQGKm4nKDQnPjswo6c5MX4D57HmyE"),
        ("BTC/USD", 0, PUSH_ORACLE_PROGRAM_ID_PRO, "APgzQGGdv2qCgBkX6aHVkrGePtBVDDg68GiqaM7rmtf5"),
    ],
)
def test_price_feed_addresses_are_the_sponsored_ones(symbol: str, shard: int, program: Pubkey, address: str) -> None:
    assert price_feed_address(FEED_IDS[symbol], shard, program) == Pubkey.from_string(address)


def test_price_feed_address_checks_its_arguments() -> None:
    with pytest.raises(InvalidInput):
        price_feed_address(b"\0" * 31)
    with pytest.raises(InvalidInput):
        price_feed_address(FEED_IDS["SOL/USD"], 2**16)


# -- fixtures ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("symbol", ["SOL/USD", "BTC/USD"])
def test_fixture_files_are_what_the_generator_writes(symbol: str) -> None:
    path: Path = FIXTURES / fixture_file_name(symbol)
    address, account = fixture_accounts()[symbol]
    assert json.loads(path.read_text()) == account_json(address, account), (
        f"{path} is stale: run .venv/bin/python fixtures/accounts/pyth/make_fixtures.py"
    )
    file_address, file_account = read_account_file(path)
    assert file_address == price_feed_address(FEED_IDS[symbol])
    assert file_account.owner == RECEIVER_PROGRAM_ID
    assert len(file_account.data) == PRICE_UPDATE_V2_LEN
    update = PriceUpdateV2.decode(bytes(file_account.data))
    assert update.is_fully_verified
    assert update.feed_id == FEED_IDS[symbol]
    assert update.write_authority == file_address
    assert update.publish_time == FIXTURE_PUBLISH_TIME
    assert update.ui_price == {"SOL/USD": Decimal(150), "BTC/USD": Decimal(95_000)}[symbol]


def test_the_fixture_directory_holds_only_those_accounts() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == ["btc-usd.json", "sol-usd.json"]


# -- the test double (on each backend --perps-backend selects: the embedded runtime, perpkit localnet) ------
async def test_pyth_feed_publishes_in_place(perps_client: Client) -> None:
    client = perps_client
    feed = PythFeed(client, FEED_IDS["BTC/USD"])
    first = await feed.publish(9_500_000_000_000, 2_500_000_000, -8, 1_800_000_000, verification=Partial(5))
    account = await client.account(feed.address)
    assert account is not None
    assert account.owner == RECEIVER_PROGRAM_ID
    assert account.lamports == 1_823_520 == rent_exempt_lamports()  # (134 + 128) * 6960
    assert PriceUpdateV2.decode(bytes(account.data)) == first
    assert first.write_authority == feed.address
    assert first.posted_slot <= (await client.clock()).slot

    second = await feed.publish(9_600_000_000_000, 1, -8, 1_800_000_060, posted_slot=42)
    assert await feed.read() == second
    assert second.prev_publish_time == 1_800_000_000
    assert second.is_fully_verified and second.posted_slot == 42
    assert second.rescaled() == (96_000_000_000, 1)


async def test_pyth_feed_at_the_sponsored_address_with_another_owner() -> None:
    async with await Client.embedded() as client:  # the plain embedded client, as a test without the plugin has
        owner = Pubkey.new_unique()
        address = price_feed_address(FEED_IDS["SOL/USD"])
        feed = PythFeed(client, FEED_IDS["SOL/USD"], address=address, receiver=owner)
        await feed.publish(15_000_000_000, 0, -8, 1_800_000_000)
        account = await client.account(address)
        assert account is not None and account.owner == owner
        assert (await feed.read()).feed_id == FEED_IDS["SOL/USD"]


# -- the program's read against the model (pyth.c on the host, ASan + UBSan) ----------------------------------


def native_answer(fn: Callable[[], Any]) -> str:
    """The model's answer in the native driver's format: the values, or ``err CODE``."""
    try:
        value = fn()
    except PythPriceError as exc:
        return f"err {CODES[exc.error_name]}"
    if isinstance(value, OraclePrice):
        return f"{value.price} {value.conf} {value.publish_time}"
    return " ".join(str(v) for v in value)


CODES = {cls.error_name: code for code, cls in program_errors.BY_CODE.items()}
exponents = st.one_of(st.integers(-30, 16), st.sampled_from([-24, -25, 12, 13, -(2**31), 2**31 - 1]))
i64s = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-(10**13), 10**13), st.sampled_from([0, 1, -1]))
u64s = st.one_of(st.integers(0, U64_MAX), st.integers(0, 10**12), st.sampled_from([0, 1, U64_MAX]))


@settings(max_examples=400, deadline=None)
@given(price=i64s, conf=u64s, exponent=exponents)
def test_the_programs_rescale_is_the_model(native: Driver, price: int, conf: int, exponent: int) -> None:
    assert native.ask("pyth_rescale", price, conf, exponent) == native_answer(lambda: rescale(price, conf, exponent))


FEED = FEED_IDS["SOL/USD"]


@st.composite
def price_updates(draw: st.DrawFn) -> bytes:
    """A PriceUpdateV2 account's bytes, sometimes damaged the ways an attacker or a bug would."""
    verification: Full | Partial = draw(st.sampled_from([FULL, FULL, FULL, Partial(13)]))
    update = PriceUpdateV2(
        write_authority=Pubkey.default(), verification=verification,
        feed_id=draw(st.sampled_from([FEED, FEED, FEED_IDS["BTC/USD"]])),
        price=draw(i64s), conf=draw(u64s), exponent=draw(st.integers(-26, 14)),
        publish_time=draw(st.integers(0, 2**40)), prev_publish_time=0, ema_price=0, ema_conf=0, posted_slot=7,
    )  # fmt: skip
    data = bytearray(update.encode())
    damage = draw(st.sampled_from(["none", "none", "short", "discriminator", "tag", "long"]))
    if damage == "short":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "discriminator":
        data[draw(st.integers(0, 7))] ^= 1 << draw(st.integers(0, 7))
    elif damage == "tag":
        data[40] = draw(st.integers(2, 255))
    elif damage == "long":
        data += bytes(draw(st.integers(1, 40)))
    return bytes(data)


@settings(max_examples=400, deadline=None)
@given(data=price_updates())
def test_the_programs_read_is_the_model(native: Driver, data: bytes) -> None:
    want = native_answer(lambda: read_price(data, FEED))
    assert native.ask("pyth_read", data.hex() or "-", FEED.hex()) == want  # "-": no bytes


async def test_find_price_feed_takes_the_fresher_sponsored_account(perps_client: Client) -> None:
    """Pyth's 2026 upgrade moved every sponsored feed to new program ids: a smoke test finds whichever is live."""
    c = perps_client
    sol = bytes(Pubkey.new_unique())  # a feed of its own: the session's localnet is shared with other tests
    with pytest.raises(AccountNotFound, match=f"Pyth price feed {sol.hex()}"):
        await find_price_feed(c, sol)
    old = PythFeed(c, sol, address=price_feed_address(sol))
    await old.publish(150 * 10**8, 10**6, -8, 1_000)
    found = await find_price_feed(c, sol)
    assert (found.address, found.receiver, found.update.publish_time) == (old.address, RECEIVER_PROGRAM_ID, 1_000)
    new = PythFeed(c, sol, address=price_feed_address(sol, push_program=PUSH_ORACLE_PROGRAM_ID_PRO),
                   receiver=RECEIVER_PROGRAM_ID_PRO)  # fmt: skip
    await new.publish(151 * 10**8, 10**6, -8, 2_000)
    found = await find_price_feed(c, sol)
    assert (found.address, found.receiver, found.update.price) == (new.address, RECEIVER_PROGRAM_ID_PRO, 151 * 10**8)
    # a Partial update, or the right bytes under the wrong owner, is not a feed
    await new.publish(152 * 10**8, 10**6, -8, 3_000, verification=Partial(3))
    assert (await find_price_feed(c, sol)).address == old.address
    with pytest.raises(AccountNotFound):
        await find_price_feed(c, bytes(Pubkey.new_unique()))


def test_the_programs_known_receivers_are_the_sdks(native: Driver) -> None:
    """``set_market_oracle`` may move a market only between these: the C list and the Python one agree."""
    for receiver in KNOWN_RECEIVERS:
        assert native.ask("pyth_known", bytes(receiver).hex()) == "1"
    for other in (Pubkey.default(), PUSH_ORACLE_PROGRAM_ID, Pubkey.new_unique()):
        assert native.ask("pyth_known", bytes(other).hex()) == "0"
    assert set(KNOWN_RECEIVERS) == {RECEIVER_PROGRAM_ID, RECEIVER_PROGRAM_ID_PRO}
