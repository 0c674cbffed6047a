"""Typed builders of the perps instructions, driven by the IDL.

Account order, signer and writable flags, fixed addresses and the argument
encoding all come from ``idl/perps.json``; arguments are checked against the
IDL types first, so a bad value raises :class:`~perpkit.errors.InvalidInput`
naming the field instead of failing inside the encoder or on chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from perpkit import pda
from perpkit.accounts import MarketParams
from perpkit.errors import InvalidInput
from perpkit.idl import PROGRAM_ID, perps_idl

_INT_RANGES = {
    "u8": (0, 2**8 - 1),
    "u16": (0, 2**16 - 1),
    "u32": (0, 2**32 - 1),
    "u64": (0, 2**64 - 1),
    "u128": (0, 2**128 - 1),
    "i8": (-(2**7), 2**7 - 1),
    "i16": (-(2**15), 2**15 - 1),
    "i32": (-(2**31), 2**31 - 1),
    "i64": (-(2**63), 2**63 - 1),
    "i128": (-(2**127), 2**127 - 1),
}


def _check_value(ty: Any, value: Any, path: str) -> Any:
    """Validate ``value`` against IDL type ``ty``; return it in the coder's form."""
    if isinstance(ty, str):
        if ty in _INT_RANGES:
            lo, hi = _INT_RANGES[ty]
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"{path} must be an integer ({ty}), got {value!r}")
            if not lo <= value <= hi:
                raise InvalidInput(f"{path} must be a {ty} ({lo} to {hi}), got {value}")
            return value
        if ty == "bool":
            if not isinstance(value, bool):
                raise InvalidInput(f"{path} must be a bool, got {value!r}")
            return value
        if ty == "pubkey":
            if not isinstance(value, Pubkey):
                raise InvalidInput(f"{path} must be a Pubkey, got {value!r}")
            return value
        raise InvalidInput(f"{path}: unsupported IDL type {ty}")
    if "array" in ty:
        elem, count = ty["array"]
        if not isinstance(value, Sequence) or len(value) != count:
            raise InvalidInput(f"{path} must be a sequence of {count} items")
        return [_check_value(elem, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if "defined" in ty:
        name = ty["defined"]["name"]
        fields = perps_idl().type_def(name)["type"]["fields"]
        if hasattr(value, "to_idl"):
            value = value.to_idl()
        if not isinstance(value, Mapping):
            raise InvalidInput(f"{path} must be a {name}, got {value!r}")
        expected = {f["name"] for f in fields}
        if set(value) != expected:
            missing = sorted(expected - set(value))
            extra = sorted(set(value) - expected)
            raise InvalidInput(f"{path} ({name}): missing {missing}, unexpected {extra}")
        return {f["name"]: _check_value(f["type"], value[f["name"]], f"{path}.{f['name']}") for f in fields}
    raise InvalidInput(f"{path}: unsupported IDL type {ty}")


def build_instruction(
    name: str,
    accounts: Mapping[str, Pubkey],
    args: Mapping[str, Any],
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Build any perps instruction from named accounts and arguments.

    Accounts with a fixed address in the IDL (system and token programs) may
    be omitted.
    """
    idl = perps_idl()
    try:
        spec = idl.instruction(name)
    except KeyError as exc:
        raise InvalidInput(str(exc)) from None
    items = idl.instruction_accounts(name)
    known = {item.name for item in items}
    unknown = sorted(set(accounts) - known)
    if unknown:
        raise InvalidInput(f"{name}: unknown accounts {unknown}; it takes {sorted(known)}")
    metas = []
    for item in items:
        key = accounts.get(item.name, item.address)
        if key is None:
            raise InvalidInput(f"{name}: account {item.name!r} is required")
        if not isinstance(key, Pubkey):
            raise InvalidInput(f"{name}: account {item.name!r} must be a Pubkey, got {key!r}")
        metas.append(AccountMeta(key, is_signer=item.signer, is_writable=item.writable))
    arg_names = [a["name"] for a in spec["args"]]
    if set(args) != set(arg_names):
        raise InvalidInput(f"{name}: arguments are {arg_names}, got {sorted(args)}")
    checked = {a["name"]: _check_value(a["type"], args[a["name"]], f"{name}.{a['name']}") for a in spec["args"]}
    data = idl.instruction_coder.encode(name, checked)
    return Instruction(program_id, data, metas)


def initialize_market(
    *,
    admin: Pubkey,
    quote_mint: Pubkey,
    oracle: Pubkey,
    book: Pubkey,
    market_id: int,
    book_capacity: int,
    params: MarketParams,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Create market ``PDA("market", admin, market_id)``, its vault and book header.

    ``book`` must already exist: owned by the program, zeroed, of
    ``book_account_size(book_capacity)`` bytes.
    """
    market = pda.market_address(admin, market_id, program_id)
    return build_instruction(
        "initialize_market",
        {
            "admin": admin,
            "market": market,
            "market_authority": pda.market_authority_address(market, program_id),
            "vault": pda.vault_address(market, program_id),
            "quote_mint": quote_mint,
            "oracle": oracle,
            "book": book,
        },
        {"market_id": market_id, "book_capacity": book_capacity, "params": params},
        program_id,
    )


def initialize_oracle(
    *, authority: Pubkey, oracle_id: int, price: int, conf: int, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    """Create test oracle ``PDA("oracle", authority, oracle_id)`` at ``price`` (6 decimals)."""
    oracle = pda.oracle_address(authority, oracle_id, program_id)
    return build_instruction(
        "initialize_oracle",
        {"authority": authority, "oracle": oracle},
        {"oracle_id": oracle_id, "price": price, "conf": conf},
        program_id,
    )


def set_oracle_price(
    *,
    authority: Pubkey,
    oracle: Pubkey,
    price: int,
    conf: int,
    publish_time: int,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Set a test oracle's price, confidence and publish time (the authority signs)."""
    return build_instruction(
        "set_oracle_price",
        {"authority": authority, "oracle": oracle},
        {"price": price, "conf": conf, "publish_time": publish_time},
        program_id,
    )
