"""The program's pure C code, compiled for the host with ASan and UBSan, against Python models.

``make -C program native`` builds a driver that answers one command per line
(program/tests/native_driver.c); a sanitizer report kills it and fails the test.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pytest
from conftest import Driver
from hypothesis import given, settings
from hypothesis import strategies as st

from perpkit.risk import U64_MAX

u64s = st.one_of(st.integers(0, U64_MAX), st.sampled_from([0, 1, 2, 2**32 - 1, 2**32, 2**63, U64_MAX - 1, U64_MAX]))


U128 = 2**128 - 1
I128_MIN, I128_MAX = -(2**127), 2**127 - 1
u128s = st.one_of(st.integers(0, U128), st.sampled_from([0, 1, U64_MAX, 2**64, 2**127, U128]))
i128s = st.one_of(st.integers(I128_MIN, I128_MAX), st.sampled_from([0, -1, 1, I128_MIN, I128_MAX, -(2**64)]))
nonzero_u64s = u64s.filter(lambda d: d > 0)


def ceil_div(n: int, d: int) -> int:
    return -((-n) // d)


@settings(max_examples=400, deadline=None)
@given(a=u64s, b=u64s)
def test_mul_64(native: Driver, a: int, b: int) -> None:
    assert int(native.ask("mul", a, b)) == a * b


@settings(max_examples=600, deadline=None)
@given(n=u128s, d=u64s)
def test_div_128_by_64(native: Driver, n: int, d: int) -> None:
    answer = native.ask("div128", n, d)
    assert answer == ("fail" if d == 0 else " ".join(map(str, divmod(n, d))))


@settings(max_examples=600, deadline=None)
@given(a=u128s, b=u64s, d=u64s)
def test_muldiv_128_through_192_bits(native: Driver, a: int, b: int, d: int) -> None:
    floor = a * b // d if d else None
    ceil = ceil_div(a * b, d) if d else None
    assert native.ask("muldiv", a, b, d) == (str(floor) if floor is not None and floor <= U128 else "fail")
    assert native.ask("muldivc", a, b, d) == (str(ceil) if ceil is not None and ceil <= U128 else "fail")


@settings(max_examples=400, deadline=None)
@given(a=i128s, b=u64s, d=u64s)
def test_signed_multiply_and_rounding_divisions(native: Driver, a: int, b: int, d: int) -> None:
    product = a * b
    assert native.ask("imul", a, b) == (str(product) if I128_MIN <= product <= I128_MAX else "fail")
    assert native.ask("ifloor", a, d) == ("fail" if d == 0 else str(a // d))
    assert native.ask("iceil", a, d) == ("fail" if d == 0 else str(ceil_div(a, d)))


@settings(max_examples=400, deadline=None)
@given(a=u64s, b=u64s, d=u64s)
def test_mul_div_rounding(native: Driver, a: int, b: int, d: int) -> None:
    floor = a * b // d if d else None
    ceil = ceil_div(a * b, d) if d else None
    assert native.ask("mdf", a, b, d) == (str(floor) if floor is not None and floor <= U64_MAX else "fail")
    assert native.ask("mdc", a, b, d) == (str(ceil) if ceil is not None and ceil <= U64_MAX else "fail")


@given(x=u64s)
def test_clz(native: Driver, x: int) -> None:
    assert int(native.ask("clz", x)) == 64 - x.bit_length()


def rent_model(lamports_per_byte_year: int, threshold: float, data_len: int) -> int | None:
    """Rent::minimum_balance as the runtime computes it, in Python floats."""
    product = (128 + data_len) * lamports_per_byte_year
    if product > U64_MAX:
        return None
    value = float(product) * threshold
    return U64_MAX if value >= 2.0**64 else int(value)


thresholds = st.one_of(
    st.sampled_from([2.0, 1.0, 0.5, 3.7, 1e-300, 5e-324, 1e300, 0.0]),
    st.floats(min_value=0.0, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=500, deadline=None)
@given(
    lamports=st.one_of(st.just(3480), st.integers(0, 2**40)),
    threshold=thresholds,
    data_len=st.one_of(st.integers(0, 10 * 1024 * 1024), st.integers(0, 2**40)),
)
def test_rent_minimum_balance_matches_the_runtime(
    native: Driver, lamports: int, threshold: float, data_len: int
) -> None:
    bits = struct.unpack("<Q", struct.pack("<d", threshold))[0]
    expected = rent_model(lamports, threshold, data_len)
    assert native.ask("rent", lamports, bits, data_len) == ("fail" if expected is None else str(expected))


@pytest.mark.parametrize(
    ("lamports", "threshold", "data_len"),
    [
        # u64 -> f64 rounding ties: 2^53 + 1 rounds down to even, 2^53 + 3 up to even
        (1, 1.0, 2**53 + 1 - 128),
        (1, 1.0, 2**53 + 3 - 128),
        (1, 1.0, 2**54 + 2 - 128),
        (1, 1.0, 2**54 + 6 - 128),
        # product ties: 3 * (2^52 + 1) needs 54 bits and ends in a half
        (3, (2**52 + 1) / 2**52, 0),
        (1, (2**52 + 1) / 2**52, 3 - 128 + 2**52),
        (3480, 2.0, 10 * 1024 * 1024),
    ],
)
def test_rent_rounding_ties(native: Driver, lamports: int, threshold: float, data_len: int) -> None:
    bits = struct.unpack("<Q", struct.pack("<d", threshold))[0]
    assert native.ask("rent", lamports, bits, max(0, data_len)) == str(
        rent_model(lamports, threshold, max(0, data_len))
    )


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan")])
def test_rent_refuses_impossible_thresholds(native: Driver, bad: float) -> None:
    bits = struct.unpack("<Q", struct.pack("<d", bad))[0]
    assert native.ask("rent", 3480, bits, 0) == "fail"


@given(v=u64s)
def test_format_u64(native: Driver, v: int) -> None:
    assert native.ask("fmt", v) == str(v)


@given(data=st.binary(max_size=40))
def test_is_zero(native: Driver, data: bytes) -> None:
    assert native.ask("zero", data.hex() or "00") == str(int(not any(data)))


# -- input deserialisation ---------------------------------------------------

MAX_PERMITTED_DATA_INCREASE = 10 * 1024


@dataclass
class ModelAccount:
    key: bytes
    owner: bytes
    lamports: int
    data: bytes
    rent_epoch: int
    signer: bool
    writable: bool
    executable: bool


Parsed = tuple[bytes, list[tuple[int, ...]], tuple[int, int, int]]


def serialize(accounts: list[ModelAccount | int], data: bytes, program_id: bytes) -> Parsed:
    """The aligned loader's input region, written from its documented layout.

    ``accounts`` holds accounts or, for a duplicate, the index of the account
    it repeats.  Returns the bytes, each account's expected parse
    (offsets of key, owner, lamports; data length; data offset; rent epoch;
    flags) and (data length, data offset, program id offset).
    """
    out = bytearray(struct.pack("<Q", len(accounts)))
    parsed: list[tuple[int, ...]] = []
    for item in accounts:
        if isinstance(item, int):
            out += bytes([item]) + bytes(7)
            parsed.append(parsed[item])
            continue
        out += bytes([0xFF, item.signer, item.writable, item.executable]) + bytes(4)
        key_at = len(out)
        out += item.key + item.owner
        lamports_at = len(out)
        out += struct.pack("<QQ", item.lamports, len(item.data))
        data_at = len(out)
        out += item.data + bytes(MAX_PERMITTED_DATA_INCREASE)
        out += bytes(-len(out) % 8)
        out += struct.pack("<Q", item.rent_epoch)
        parsed.append(
            (key_at, key_at + 32, lamports_at, len(item.data), data_at, item.rent_epoch,
             int(item.signer), int(item.writable), int(item.executable))
        )  # fmt: skip
    out += struct.pack("<Q", len(data))
    data_at = len(out)
    out += data + program_id
    return bytes(out), parsed, (len(data), data_at, data_at + len(data))


model_accounts = st.builds(
    ModelAccount,
    key=st.binary(min_size=32, max_size=32),
    owner=st.binary(min_size=32, max_size=32),
    lamports=u64s,
    data=st.binary(max_size=70),
    rent_epoch=u64s,
    signer=st.booleans(),
    writable=st.booleans(),
    executable=st.booleans(),
)


@st.composite
def account_lists(draw: st.DrawFn) -> list[ModelAccount | int]:
    items: list[ModelAccount | int] = []
    for i in range(draw(st.integers(0, 6))):
        if i and draw(st.booleans()):
            items.append(draw(st.integers(0, i - 1)))
        else:
            items.append(draw(model_accounts))
    # a duplicate of a duplicate points at the original index
    return [it if isinstance(it, ModelAccount) else _first(items, it) for it in items]


def _first(items: list[ModelAccount | int], index: int) -> int:
    while isinstance(items[index], int):
        index = items[index]  # type: ignore[assignment]
    return index


@settings(max_examples=150, deadline=None)
@given(accounts=account_lists(), data=st.binary(max_size=100), program_id=st.binary(min_size=32, max_size=32))
def test_deserialize_matches_the_layout(
    native: Driver, accounts: list[ModelAccount | int], data: bytes, program_id: bytes
) -> None:
    region, parsed, tail = serialize(accounts, data, program_id)
    answer = native.ask("deser", 16, region.hex())
    expected = "ok " + str(len(accounts))
    for p in parsed:
        expected += " [" + " ".join(map(str, p)) + "]"
    expected += " " + " ".join(map(str, tail))
    assert answer == expected


def test_deserialize_refuses_too_many_accounts_and_forward_duplicates(native: Driver) -> None:
    account = ModelAccount(bytes(32), bytes(32), 1, b"", 0, False, False, False)
    region, _, _ = serialize([account, account, account], b"", bytes(32))
    assert native.ask("deser", 2, region.hex()) == "error 1"
    region, _, _ = serialize([account], b"", bytes(32))
    forward = bytearray(region)
    forward[8] = 0  # account 0 claims to duplicate itself
    assert native.ask("deser", 4, bytes(forward).hex()) == "error 2"
