"""perpkit.coder: the IDL's borsh coding, byte for byte what Anchor (and the C program) use.

Known vectors, the C header's sizes and round trips need nothing else; the
comparisons with anchorpy's coders run where anchorpy is installed (the
anchorpy lane) and are skipped elsewhere.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.pubkey import Pubkey

from perpkit.accounts import MarketParams, PositionRef, account_size, decode_user
from perpkit.coder import PROGRAM_DATA, Event, TypeCoder
from perpkit.crank import LiquidationBatch, decode_batches
from perpkit.errors import AccountDecodeError, DecodeError, InvalidInput, UnsupportedIdlType
from perpkit.idl import load_idl, perps_idl
from perpkit.risk import U64_MAX

IDL = perps_idl()
INSTRUCTIONS = [ix["name"] for ix in IDL.raw["instructions"]]
ACCOUNTS = [acc["name"] for acc in IDL.raw["accounts"]]
EVENTS = [event["name"] for event in IDL.raw["events"]]
TYPES = [t["name"] for t in IDL.raw["types"]]
HEADER = (ROOT / "program" / "include" / "perps_idl.h").read_text()

INT_RANGES = {
    **{f"u{bits}": (0, 2**bits - 1) for bits in (8, 16, 32, 64, 128)},
    **{f"i{bits}": (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) for bits in (8, 16, 32, 64, 128)},
}


def values(ty: Any) -> st.SearchStrategy[Any]:
    """Valid values of an IDL type, in the coder's form."""
    if isinstance(ty, str):
        if ty in INT_RANGES:
            return st.integers(*INT_RANGES[ty])
        if ty == "bool":
            return st.booleans()
        assert ty == "pubkey", ty
        return st.binary(min_size=32, max_size=32).map(Pubkey)
    if "array" in ty:
        element, count = ty["array"]
        return st.lists(values(element), min_size=count, max_size=count)
    return struct_values(IDL.type_def(ty["defined"]["name"])["type"]["fields"])


def struct_values(fields: list[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({f["name"]: values(f["type"]) for f in fields})


def defined(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return struct_values(IDL.type_def(name)["type"]["fields"])


def sample(ty: Any) -> Any:
    """A fixed valid value of an IDL type (distinct small numbers, so fields are told apart)."""
    if isinstance(ty, str):
        return {"bool": True, "pubkey": Pubkey(bytes(range(32)))}.get(ty, 7)
    if "array" in ty:
        return [sample(ty["array"][0])] * ty["array"][1]
    return sample_struct(IDL.type_def(ty["defined"]["name"])["type"]["fields"])


def sample_struct(fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {f["name"]: sample(f["type"]) for f in fields}


def sample_type(name: str) -> dict[str, Any]:
    return sample_struct(IDL.type_def(name)["type"]["fields"])


def c_size(c_name: str) -> int:
    match = re.search(rf"_Static_assert\(sizeof\({c_name}\) == (\d+),", HEADER)
    assert match, f"{c_name} has no size assertion in perps_idl.h"
    return int(match.group(1))


# -- known vectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", INSTRUCTIONS)
def test_instruction_discriminator_is_sha256_global(name: str) -> None:
    disc = hashlib.sha256(f"global:{name}".encode()).digest()[:8]
    assert IDL.instruction_coder.discriminator(name) == disc
    args = sample_struct(IDL.instruction(name)["args"])
    assert IDL.instruction_coder.encode(name, args)[:8] == disc


@pytest.mark.parametrize("name", ACCOUNTS)
def test_account_discriminator_is_sha256_account(name: str) -> None:
    disc = hashlib.sha256(f"account:{name}".encode()).digest()[:8]
    assert IDL.account_coder.discriminator(name) == disc == IDL.account_discriminator(name)
    assert IDL.account_coder.encode(name, sample_type(name))[:8] == disc


@pytest.mark.parametrize("name", EVENTS)
def test_event_discriminator_is_sha256_event(name: str) -> None:
    disc = hashlib.sha256(f"event:{name}".encode()).digest()[:8]
    assert IDL.event_coder.encode(name, sample_type(name))[:8] == disc


def test_a_position_ref_is_8_little_endian_bytes() -> None:
    data = IDL.type_coder.encode("PositionRef", PositionRef(0x01020304, 0x0A0B0C0D).to_idl())
    assert data == bytes.fromhex("04030201 0d0c0b0a")
    assert PositionRef.decode(data) == PositionRef(0x01020304, 0x0A0B0C0D)
    assert IDL.type_coder.decode("PositionRef", data) == {"slot": 0x01020304, "generation": 0x0A0B0C0D}


def test_scalar_vectors() -> None:
    set_price = IDL.instruction_coder.discriminator("set_oracle_price")
    assert IDL.instruction_coder.encode("set_oracle_price", {"price": -2, "conf": U64_MAX, "publish_time": 1}) == (
        set_price + (2**64 - 2).to_bytes(8, "little") + b"\xff" * 8 + (1).to_bytes(8, "little")
    )
    paused = IDL.instruction_coder.discriminator("set_paused")
    assert IDL.instruction_coder.encode("set_paused", {"paused": True}) == paused + b"\x01"
    assert IDL.instruction_coder.encode("set_paused", {"paused": False}) == paused + b"\x00"
    assert IDL.instruction_coder.encode("liquidate", {}) == IDL.instruction_coder.discriminator("liquidate")
    # i128 and u128: 16 bytes, little-endian, two's complement
    slot = sample_type("PositionSlot") | {"key": -1, "funding_at_open": -(2**127)}
    data = IDL.type_coder.encode("PositionSlot", slot)
    assert data[:16] == b"\xff" * 16 and data[16:32] == bytes(15) + b"\x80"
    node = sample_type("TreeNode") | {"size_entry": 2**128 - 2}
    assert IDL.type_coder.encode("TreeNode", node)[32:48] == b"\xfe" + b"\xff" * 15


def test_a_pubkey_is_its_32_bytes() -> None:
    key = Pubkey(bytes(range(32)))
    values = sample_type("Oracle") | {"authority": key}
    data = IDL.account_coder.encode("Oracle", values)
    assert data[8:40] == bytes(range(32))
    decoded = IDL.account_coder.decode("Oracle", data)["authority"]
    assert isinstance(decoded, Pubkey) and decoded == key


@pytest.mark.parametrize("name", TYPES)
def test_type_sizes_are_the_c_struct_sizes(name: str) -> None:
    size = IDL.type_coder.size(name)
    assert size == c_size(f"Perps{name}")
    assert len(IDL.type_coder.encode(name, sample_type(name))) == size


def test_market_params_encode_to_the_c_struct() -> None:
    assert len(IDL.type_coder.encode("MarketParams", MarketParams().to_idl())) == c_size("PerpsMarketParams") == 56


@pytest.mark.parametrize("name", INSTRUCTIONS)
def test_instruction_args_sizes_are_the_c_sizes(name: str) -> None:
    match = re.search(rf"#define PERPS_{name.upper()}_ARGS_SIZE (\d+)", HEADER)
    assert match
    args = sample_struct(IDL.instruction(name)["args"])
    assert len(IDL.instruction_coder.encode(name, args)) == 8 + int(match.group(1))


def test_account_sizes() -> None:
    for name in ACCOUNTS:
        assert account_size(name) == 8 + c_size(f"Perps{name}") == IDL.account_coder.size(name)
    assert account_size("Book") == IDL.constant("BOOK_HEADER_SIZE")


# -- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", INSTRUCTIONS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_instructions_round_trip(name: str, data: st.DataObject) -> None:
    args = data.draw(struct_values(IDL.instruction(name)["args"]))
    assert IDL.instruction_coder.decode(IDL.instruction_coder.encode(name, args)) == (name, args)


@pytest.mark.parametrize("name", TYPES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_types_round_trip(name: str, data: st.DataObject) -> None:
    value = data.draw(defined(name))
    encoded = IDL.type_coder.encode(name, value)
    assert IDL.type_coder.decode(name, encoded) == value
    raw = data.draw(st.binary(min_size=len(encoded), max_size=len(encoded)))  # no bool in these types
    assert IDL.type_coder.encode(name, IDL.type_coder.decode(name, raw)) == raw


@pytest.mark.parametrize("name", ACCOUNTS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_accounts_round_trip(name: str, data: st.DataObject) -> None:
    value = data.draw(defined(name))
    encoded = IDL.account_coder.encode(name, value)
    assert len(encoded) == account_size(name)
    assert IDL.account_coder.decode(name, encoded) == value
    assert IDL.account_coder.decode(name, encoded + b"tail") == value  # a longer account decodes its prefix


@settings(max_examples=40, deadline=None)
@given(value=defined("LiquidationBatch"))
def test_liquidation_batch_round_trips_through_the_logs(value: dict[str, Any]) -> None:
    line = PROGRAM_DATA + base64.b64encode(IDL.event_coder.encode("LiquidationBatch", value)).decode()
    logs = [
        "Program log: liquidate",
        line,
        "Program data: not base64!",
        "Program data: " + base64.b64encode(bytes(40)).decode(),
    ]
    assert IDL.event_coder.parse_logs(logs) == [Event("LiquidationBatch", value)]
    (batch,) = decode_batches(logs)
    assert batch == LiquidationBatch(**{f.name: value[f.name] for f in dataclasses.fields(LiquidationBatch)})


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ty", "named"),
    [
        ({"vec": "u8"}, '{"vec": "u8"}'),
        ({"option": "u64"}, '{"option": "u64"}'),
        ("string", '"string"'),
        ("bytes", '"bytes"'),
        ("f64", '"f64"'),
        ({"array": ["u8", {"generic": "N"}]}, '{"array": ["u8", {"generic": "N"}]}'),
    ],
)
def test_types_without_a_fixed_layout_are_refused(ty: Any, named: str) -> None:
    types = copy.deepcopy(IDL.raw["types"])
    next(t for t in types if t["name"] == "Oracle")["type"]["fields"].append({"name": "extra", "type": ty})
    with pytest.raises(UnsupportedIdlType, match=re.escape(f"Oracle.extra: IDL type {named} has no fixed layout")):
        TypeCoder(types)


def test_enums_and_undefined_types_are_refused(tmp_path: Path) -> None:
    types = copy.deepcopy(IDL.raw["types"])
    types.append({"name": "Side", "type": {"kind": "enum", "variants": [{"name": "Long"}, {"name": "Short"}]}})
    with pytest.raises(UnsupportedIdlType, match="type Side is of kind 'enum': only structs have a fixed layout"):
        TypeCoder(types)
    types = copy.deepcopy(IDL.raw["types"])
    next(t for t in types if t["name"] == "User")["type"]["fields"][0]["type"] = {"defined": {"name": "Missing"}}
    with pytest.raises(UnsupportedIdlType, match=r"User\.market: type Missing is not defined in the IDL"):
        TypeCoder(types)
    types = copy.deepcopy(IDL.raw["types"])
    next(t for t in types if t["name"] == "PositionRef")["type"]["fields"][0]["type"] = {
        "defined": {"name": "PositionRef"}
    }
    with pytest.raises(UnsupportedIdlType, match="type PositionRef contains itself"):
        TypeCoder(types)
    # the whole IDL is checked when it is loaded
    raw = copy.deepcopy(IDL.raw)
    next(ix for ix in raw["instructions"] if ix["name"] == "deposit")["args"][0]["type"] = "string"
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(UnsupportedIdlType, match=r'deposit.amount: IDL type "string"'):
        load_idl(tmp_path / "bad.json")


def test_bad_data_is_refused() -> None:
    user = IDL.account_coder.encode("User", sample_type("User"))
    with pytest.raises(AccountDecodeError, match="account data is not a Market"):
        IDL.account_coder.decode("Market", user)
    with pytest.raises(AccountDecodeError, match="cannot decode User"):
        decode_user(Pubkey.default(), user[:-1])
    with pytest.raises(DecodeError, match="not a known instruction"):
        IDL.instruction_coder.decode(bytes(8))
    with pytest.raises(InvalidInput, match="cannot encode deposit arguments"):
        IDL.instruction_coder.encode("deposit", {"amount": -1})
    with pytest.raises(InvalidInput, match=r"missing fields \['amount'\]"):
        IDL.instruction_coder.encode("deposit", {})
    with pytest.raises(KeyError, match="no instruction 'steal'"):
        IDL.instruction_coder.encode("steal", {})
    assert IDL.event_coder.decode(b"") is None
    assert IDL.event_coder.decode(bytes(200)) is None
    batch = IDL.event_coder.encode("LiquidationBatch", sample_type("LiquidationBatch"))
    with pytest.raises(DecodeError, match="cannot decode event LiquidationBatch"):
        IDL.event_coder.decode(batch[:-1])


def test_the_core_path_imports_no_anchorpy() -> None:
    modules = ["perpkit", "perpkit.client", "perpkit.crank", "perpkit.book", "perpkit.testing", "perpkit.cli",
               "perpkit.engine", "perpkit.localnet.server", "perpkit.pytest_plugin"]  # fmt: skip
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nassert 'anchorpy' not in sys.modules, 'anchorpy imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for path in (ROOT / "client" / "perpkit").rglob("*.py"):
        if path.name != "anchor.py":
            assert not re.search(r"^\s*(from|import) anchorpy", path.read_text(), re.M), path


# -- against anchorpy (the anchorpy lane) ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AnchorCoders:
    instructions: Any
    accounts: Any
    events: Any


@pytest.fixture(scope="module")
def anchor() -> AnchorCoders:
    anchorpy = pytest.importorskip("anchorpy", reason="the anchorpy lane only: pip install -e '.[anchorpy,test]'")
    from anchorpy.coder.accounts import AccountsCoder
    from anchorpy.coder.event import EventCoder
    from anchorpy.coder.instruction import InstructionCoder

    idl = anchorpy.Idl.from_json((ROOT / "idl" / "perps.json").read_text())
    return AnchorCoders(InstructionCoder(idl), AccountsCoder(idl), EventCoder(idl))


def plain(value: Any) -> Any:
    """anchorpy's decoded values (Containers, generated dataclasses) as plain dicts and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@pytest.mark.parametrize("name", INSTRUCTIONS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_instructions_encode_as_anchorpy(anchor: AnchorCoders, name: str, data: st.DataObject) -> None:
    args = data.draw(struct_values(IDL.instruction(name)["args"]))
    assert IDL.instruction_coder.encode(name, args) == anchor.instructions.encode(name, args)


@pytest.mark.parametrize("name", ACCOUNTS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_accounts_decode_as_anchorpy(anchor: AnchorCoders, name: str, data: st.DataObject) -> None:
    assert anchor.accounts._accounts_layout[name].sizeof() + 8 == account_size(name)
    body = data.draw(st.binary(min_size=account_size(name) - 8, max_size=account_size(name) - 8))
    raw = IDL.account_discriminator(name) + body
    assert IDL.account_coder.decode(name, raw) == plain(anchor.accounts.decode(raw))


@settings(max_examples=40, deadline=None)
@given(value=defined("LiquidationBatch"))
def test_liquidation_batch_round_trips_against_anchorpy(anchor: AnchorCoders, value: dict[str, Any]) -> None:
    coder = anchor.events
    ours = IDL.event_coder.encode("LiquidationBatch", value)
    assert ours[8:] == coder.layouts["LiquidationBatch"].build(value)  # anchorpy's encoding of the fields
    event = coder.parse(ours)
    assert event.name == "LiquidationBatch" and plain(event.data) == value
    assert IDL.event_coder.decode(ours) == Event(event.name, plain(event.data))


# -- every scalar, against the standard library ---------------------------------------------------
SCALAR_FORMATS = {"u8": "<B", "u16": "<H", "u32": "<I", "u64": "<Q", "i8": "<b", "i16": "<h", "i32": "<i", "i64": "<q"}


@pytest.mark.parametrize("ty", [*SCALAR_FORMATS, "u128", "i128", "bool"])
@given(data=st.data())
def test_every_scalar_is_little_endian_borsh(ty: str, data: st.DataObject) -> None:
    """Each scalar alone, checked against struct/int.to_bytes (the IDL may not use every one today)."""
    import struct

    coder = TypeCoder([{"name": "One", "type": {"kind": "struct", "fields": [{"name": "v", "type": ty}]}}])
    value = data.draw(st.booleans() if ty == "bool" else st.integers(*INT_RANGES[ty]))
    if ty in SCALAR_FORMATS:
        expected = struct.pack(SCALAR_FORMATS[ty], value)
    elif ty == "bool":
        expected = bytes([value])
    else:
        expected = value.to_bytes(16, "little", signed=ty == "i128")
    assert coder.encode("One", {"v": value}) == expected
    assert coder.decode("One", expected) == {"v": value}
