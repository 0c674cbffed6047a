"""The vectorised reads (issue 10): users decoded in one numpy pass, liquidation prices and health of a whole book.

Each is checked against the per-item path it replaces: ``decode_user`` (the IDL's construct coder),
``risk.liquidation_price`` (Python integers, over the full 128-bit key range) and ``Position.health``.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from solders.pubkey import Pubkey
from test_coder import sample_type

from perpkit import risk
from perpkit.accounts import (
    BookHeader,
    PositionRef,
    account_size,
    decode_market,
    decode_user,
    decode_users,
)
from perpkit.book import (
    Book,
    liquidation_prices,
    liquidation_prices_reference,
    node_dtype,
    slot_dtype,
)
from perpkit.errors import AccountDecodeError, InvalidInput, RiskError
from perpkit.idl import perps_idl
from perpkit.layout import account_dtype, struct_dtype
from perpkit.positions import HEALTH_BY_CODE, Position
from perpkit.risk import Side

IDL = perps_idl()
I64_MAX = 2**63 - 1


# -- layouts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [a["name"] for a in IDL.raw["accounts"]])
def test_every_account_has_a_numpy_layout_of_its_size(name: str) -> None:
    assert account_dtype(name).itemsize == account_size(name)
    assert account_dtype(name).names is not None and account_dtype(name).names[0] == "discriminator"


def test_nested_structs_and_the_book_layouts() -> None:
    user = account_dtype("User")
    assert user["positions"].shape == (32,) and user["positions"].base == struct_dtype("PositionRef")
    assert account_dtype("Market")["params"] == struct_dtype("MarketParams")
    assert slot_dtype().itemsize == IDL.constant("BOOK_SLOT_SIZE")
    assert node_dtype().itemsize == IDL.constant("BOOK_NODE_SIZE")


# -- users ---------------------------------------------------------------------------------------


def random_user(rng: random.Random) -> bytes:
    refs = [{"slot": 2**32 - 1, "generation": rng.randrange(2**32)} for _ in range(32)]
    for i in rng.sample(range(32), rng.randrange(33)):
        refs[i] = {"slot": rng.randrange(2**32 - 1), "generation": rng.randrange(2**32)}
    values = {
        "market": Pubkey(rng.randbytes(32)),
        "owner": Pubkey(rng.randbytes(32)),
        "free_collateral": rng.choice([0, risk.U64_MAX, rng.randrange(2**64)]),
        "bump": rng.randrange(256),
        "position_count": sum(r["slot"] != 2**32 - 1 for r in refs),
        "padding": [0] * 6,
        "positions": refs,
    }
    return IDL.account_coder.encode("User", values)


@pytest.mark.parametrize("n", [0, 1, 7, 300])
def test_decode_users_is_decode_user_for_each(n: int) -> None:
    rng = random.Random(n)
    accounts = [(Pubkey(rng.randbytes(32)), random_user(rng)) for _ in range(n)]
    table = decode_users(accounts)
    expected = [decode_user(address, data) for address, data in accounts]
    assert len(table) == n and table.users() == expected
    assert table.total_free_collateral == sum(u.free_collateral for u in expected)
    owners, slots, generations = table.open_refs()
    assert [(table.addresses[o], PositionRef(s, g)) for o, s, g in zip(owners, slots, generations, strict=True)] == [
        (u.address, ref) for u in expected for ref in u.open_refs
    ]
    # any buffer type getProgramAccounts may hand over
    assert decode_users([(a, memoryview(bytearray(d))) for a, d in accounts]).users() == expected


def test_decode_users_names_the_first_account_that_is_not_a_user() -> None:
    rng = random.Random(1)
    accounts = [(Pubkey(rng.randbytes(32)), random_user(rng)) for _ in range(10)]
    market = IDL.account_coder.encode("Market", sample_type("Market"))
    wrong_kind = [*accounts[:3], (Pubkey(bytes(32)), market[: account_size("User")]), *accounts[3:]]
    with pytest.raises(AccountDecodeError, match=f"account {Pubkey(bytes(32))} is not a User"):
        decode_users(wrong_kind)
    short = Pubkey(bytes([1]) * 32)
    with pytest.raises(AccountDecodeError, match=f"account {short} is 343 bytes, a User is 344"):
        decode_users([*accounts[:5], (short, accounts[5][1][:-1]), *wrong_kind])
    with pytest.raises(AccountDecodeError, match=f"account {Pubkey(bytes(32))} is not a User"):
        decode_users([*wrong_kind, (short, accounts[5][1][:-1])])  # the first bad one, whatever the reason
    with pytest.raises(AccountDecodeError, match="is 0 bytes"):
        decode_users([(short, b"")])


# -- liquidation prices ---------------------------------------------------------------------------


def split(key: int) -> tuple[int, int]:
    return key & (risk.U64_MAX), key >> 64


def model(side: int, key: int, funding_index: int, mm: int) -> int | None:
    """risk's liquidation price of a key, clamped as the book clamps it; None where risk refuses it."""
    try:
        return max(-I64_MAX, min(I64_MAX, risk.key_liquidation_price(side, key, funding_index, mm)))
    except RiskError:
        return None


def divisor(side: int, mm: int) -> int:
    return risk.FS * (risk.BPS - mm if side == Side.LONG else risk.BPS + mm)


def edge_keys(side: int, funding_index: int, mm: int) -> list[int]:
    """Keys on every boundary the vectorised path has: rounding, the int64 clamp, the i128 range, the words."""
    d, shift = divisor(side, mm), funding_index * risk.BPS * (1 if side == Side.LONG else -1)
    keys = [risk.I128_MIN, risk.I128_MAX, 0, -1, 2**63, -(2**63), risk.U64_MAX, 2**64, -(2**64)]
    for q in (0, 1, -1, 10**8, I64_MAX - 1, I64_MAX, I64_MAX + 1, -I64_MAX, -I64_MAX - 1, -(2**63) - 1, 2**70):
        keys += [q * d - shift + e for e in (-1, 0, 1, d - 1, -d + 1)]
    return [k for k in keys if risk.I128_MIN <= k <= risk.I128_MAX]


keys_128 = st.one_of(
    st.integers(risk.I128_MIN, risk.I128_MAX),
    st.integers(-(2**100), 2**100),
    st.integers(-(2**70), 2**70),
    st.sampled_from([risk.I128_MIN, risk.I128_MAX, 0, -1, risk.U64_MAX, 2**64]),
)
funding_indices = st.one_of(
    st.integers(-(10**24), 10**24),
    st.integers(-(2**123), 2**123),
    st.sampled_from([0, risk.I128_MAX // risk.BPS, risk.I128_MIN // risk.BPS + 1, 2**127 - 1, -(2**127)]),
)


@settings(max_examples=400, deadline=None)
@given(side=st.sampled_from([Side.LONG, Side.SHORT]), keys=st.lists(keys_128, min_size=1, max_size=40),
       funding_index=funding_indices, mm=st.one_of(st.integers(1, 9_999), st.sampled_from([1, 500, 9_999])))  # fmt: skip
@example(side=Side.LONG, keys=[risk.I128_MAX], funding_index=risk.I128_MAX // risk.BPS, mm=1)
@example(side=Side.SHORT, keys=[risk.I128_MIN], funding_index=risk.I128_MAX // risk.BPS, mm=9_999)
@example(side=Side.LONG, keys=[risk.I128_MIN], funding_index=2**127 - 1, mm=500)
def test_liquidation_prices_are_risks_bit_for_bit(side: int, keys: list[int], funding_index: int, mm: int) -> None:
    keys = keys + edge_keys(side, funding_index, mm)
    lo = np.array([split(k)[0] for k in keys], dtype=np.uint64)
    hi = np.array([split(k)[1] for k in keys], dtype=np.int64)
    got = liquidation_prices(side, lo, hi, funding_index, mm)
    assert got.dtype == np.int64
    assert got.tolist() == liquidation_prices_reference(side, lo, hi, funding_index, mm).tolist()
    for key, price in zip(keys, got.tolist(), strict=True):
        expected = model(side, key, funding_index, mm)
        assert expected is None or price == expected, (key, price, expected)


def test_liquidation_prices_over_blocks_and_a_full_book() -> None:
    rng = np.random.default_rng(5)
    n = 65_536 + 17  # several blocks and a ragged end
    lo = rng.integers(0, 2**64, n, dtype=np.uint64)
    for hi in (rng.integers(-(2**63), 2**63, n, dtype=np.int64), rng.integers(-(2**30), 2**30, n, dtype=np.int64)):
        for side in Side:
            for funding_index in (0, 10**15, -(10**22)):
                got = liquidation_prices(side, lo, hi, funding_index, 500)
                assert (got == liquidation_prices_reference(side, lo, hi, funding_index, 500)).all()
    assert liquidation_prices(Side.LONG, lo[:0], lo[:0].astype(np.int64), 0, 500).shape == (0,)
    with pytest.raises(InvalidInput, match="maintenance_margin_bps 10000"):
        liquidation_prices(Side.LONG, lo, lo.astype(np.int64), 0, 10_000)


# -- a whole book: liquidatable set and health ---------------------------------------------------------


terms_st = st.builds(
    risk.Terms,
    side=st.sampled_from([Side.LONG, Side.SHORT]),
    size=st.one_of(st.integers(1, 10**15), st.sampled_from([1, risk.U64_MAX])),
    collateral=st.one_of(st.integers(0, 10**15), st.sampled_from([0, risk.U64_MAX])),
    entry_price=st.one_of(st.integers(1, 10**13), st.sampled_from([1, 2**58 - 1, 2**58, risk.U64_MAX])),
    funding_at_open=st.one_of(st.integers(-(10**24), 10**24), st.just(0)),
)


def synthetic_book(terms: list[risk.Terms]) -> Book:
    """A book whose slots hold ``terms`` (the tree is not needed by what is tested here)."""
    slots = np.zeros(len(terms), dtype=slot_dtype())
    for i, t in enumerate(terms):
        key = risk.key(t)
        slots[i] = (*split(key), *split(t.funding_at_open), t.size, t.collateral, t.entry_price, 0, 0, t.side, 1,
                    [0] * 6)  # fmt: skip
    header = BookHeader(Pubkey.default(), Pubkey.default(), len(terms), len(terms), 0, 0, 0, 0, (0, 0), (0, 0), 0)
    return Book(header, slots, np.zeros(len(terms), dtype=node_dtype()))


def valid(t: risk.Terms) -> bool:
    try:
        risk.key(t)
    except RiskError:
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(terms=st.lists(terms_st.filter(valid), min_size=1, max_size=30),
       price=st.one_of(st.integers(1, 10**13), st.sampled_from([1, 2**58 - 1, 2**58])),
       funding=st.tuples(st.integers(-(10**24), 10**24), st.integers(-(10**24), 10**24)),
       mm=st.integers(1, 9_999), aim=st.none() | st.tuples(st.integers(0, 29), st.integers(700, 1_050)))  # fmt: skip
def test_health_and_liquidatable_set_are_the_positions(
    terms: list[risk.Terms], price: int, funding: tuple[int, int], mm: int, aim: tuple[int, int] | None
) -> None:
    if aim is not None:  # an index price on the way from one position's entry to its liquidation price
        t = terms[aim[0] % len(terms)]
        try:
            lp = risk.liquidation_price(t, funding[t.side], mm)
        except RiskError:
            lp = t.entry_price
        price = max(1, t.entry_price + (lp - t.entry_price) * aim[1] // 1_000)
    market = decode_market(Pubkey.default(), IDL.account_coder.encode("Market", sample_type("Market")))
    market = dataclasses.replace(market, funding_index_long=funding[0], funding_index_short=funding[1],
                                 params=dataclasses.replace(market.params, maintenance_margin_bps=mm))  # fmt: skip
    book = synthetic_book(terms)
    for side in Side:
        slots = np.array([i for i, t in enumerate(terms) if t.side == side], dtype=np.uint32)
        positions = [
            Position(market, i, 0, t.side, t.size, t.collateral, t.entry_price, t.funding_at_open, risk.key(t))
            for i, t in enumerate(terms)
            if t.side == side
        ]
        try:
            threshold = risk.threshold(side, price, market.funding_index(side), mm)
            expected = [p.health(price) for p in positions]
        except RiskError:
            continue  # the model refuses it (overflow), and so does the program
        assert book.liquidatable(side, slots, threshold).tolist() == [p.is_liquidatable(price) for p in positions]
        codes = book.health_codes(side, slots, price, market.funding_index(side), mm)
        assert [HEALTH_BY_CODE[c] for c in codes.tolist()] == expected
