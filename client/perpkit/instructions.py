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
from perpkit.accounts import MarketParams, PositionRef
from perpkit.errors import InvalidInput
from perpkit.idl import PROGRAM_ID, perps_idl
from perpkit.oracles import OracleSource

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
    oracle_source: OracleSource | None = None,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Create market ``PDA("market", admin, market_id)``, its vault and book header.

    ``book`` must already exist: owned by the program, zeroed, of
    ``book_account_size(book_capacity)`` bytes.  ``oracle_source`` says how
    ``oracle`` is read: the test oracle (default) or a Pyth feed.
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
        {
            "market_id": market_id,
            "book_capacity": book_capacity,
            "params": params,
            **(oracle_source or OracleSource()).to_args(),
        },
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


def create_user(*, owner: Pubkey, market: Pubkey, program_id: Pubkey = PROGRAM_ID) -> Instruction:
    """Create ``PDA("user", market, owner)``; the owner signs and pays."""
    user = pda.user_address(market, owner, program_id)
    return build_instruction("create_user", {"owner": owner, "market": market, "user": user}, {}, program_id)


def deposit(
    *, owner: Pubkey, market: Pubkey, owner_token: Pubkey, vault: Pubkey, amount: int, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    accounts = {"owner": owner, "market": market, "user": pda.user_address(market, owner, program_id),
                "owner_token": owner_token, "vault": vault}  # fmt: skip
    return build_instruction("deposit", accounts, {"amount": amount}, program_id)


def withdraw(
    *, owner: Pubkey, market: Pubkey, owner_token: Pubkey, vault: Pubkey, amount: int, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    accounts = {"owner": owner, "market": market, "user": pda.user_address(market, owner, program_id),
                "owner_token": owner_token, "vault": vault,
                "market_authority": pda.market_authority_address(market, program_id)}  # fmt: skip
    return build_instruction("withdraw", accounts, {"amount": amount}, program_id)


def fund_pool(
    *, admin: Pubkey, market: Pubkey, admin_token: Pubkey, vault: Pubkey, amount: int, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    accounts = {"admin": admin, "market": market, "admin_token": admin_token, "vault": vault}
    return build_instruction("fund_pool", accounts, {"amount": amount}, program_id)


def fund_insurance(
    *, admin: Pubkey, market: Pubkey, admin_token: Pubkey, vault: Pubkey, amount: int, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    accounts = {"admin": admin, "market": market, "admin_token": admin_token, "vault": vault}
    return build_instruction("fund_insurance", accounts, {"amount": amount}, program_id)


def update_market_params(
    *,
    admin: Pubkey,
    market: Pubkey,
    book: Pubkey,
    oracle: Pubkey,
    params: MarketParams,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Admin: new risk parameters.  The program reads the book and the oracle to refuse a change that
    would make an open position liquidatable (``ParamsWouldLiquidate``)."""
    accounts = {"admin": admin, "market": market, "book": book, "oracle": oracle}
    return build_instruction("update_market_params", accounts, {"params": params}, program_id)


def set_paused(*, admin: Pubkey, market: Pubkey, paused: bool, program_id: Pubkey = PROGRAM_ID) -> Instruction:
    return build_instruction("set_paused", {"admin": admin, "market": market}, {"paused": paused}, program_id)


def set_market_oracle(
    *, admin: Pubkey, market: Pubkey, oracle: Pubkey, pyth_receiver: Pubkey, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    """Admin: re-point a Pyth market to ``oracle``, another account of its feed owned by ``pyth_receiver``."""
    return build_instruction("set_market_oracle", {"admin": admin, "market": market, "oracle": oracle},
                             {"pyth_receiver": pyth_receiver}, program_id)  # fmt: skip


def _trader_accounts(owner: Pubkey, market: Pubkey, book: Pubkey, program_id: Pubkey) -> dict[str, Pubkey]:
    return {"owner": owner, "market": market, "user": pda.user_address(market, owner, program_id), "book": book}


def open_position(
    *,
    owner: Pubkey,
    market: Pubkey,
    book: Pubkey,
    oracle: Pubkey,
    side: int,
    size: int,
    collateral: int,
    worst_price: int,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Open a position: ``side`` 0 long / 1 short, ``size`` in base atoms, ``collateral`` in quote atoms.

    The program returns the new position's :class:`PositionRef` as return data (``decode_position_ref``)."""
    accounts = {**_trader_accounts(owner, market, book, program_id), "oracle": oracle}
    args = {"side": side, "size": size, "collateral": collateral, "worst_price": worst_price}
    return build_instruction("open_position", accounts, args, program_id)


def close_position(
    *,
    owner: Pubkey,
    market: Pubkey,
    book: Pubkey,
    oracle: Pubkey,
    position: PositionRef,
    worst_price: int,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    accounts = {**_trader_accounts(owner, market, book, program_id), "oracle": oracle}
    return build_instruction("close_position", accounts, {"position": position, "worst_price": worst_price}, program_id)


def add_margin(
    *, owner: Pubkey, market: Pubkey, book: Pubkey, position: PositionRef, amount: int, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    accounts = _trader_accounts(owner, market, book, program_id)
    return build_instruction("add_margin", accounts, {"position": position, "amount": amount}, program_id)


def remove_margin(
    *,
    owner: Pubkey,
    market: Pubkey,
    book: Pubkey,
    oracle: Pubkey,
    position: PositionRef,
    amount: int,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    accounts = {**_trader_accounts(owner, market, book, program_id), "oracle": oracle}
    return build_instruction("remove_margin", accounts, {"position": position, "amount": amount}, program_id)


def update_funding(*, market: Pubkey, oracle: Pubkey, program_id: Pubkey = PROGRAM_ID) -> Instruction:
    """Permissionless: read the oracle and bring the funding indices up to date."""
    return build_instruction("update_funding", {"market": market, "oracle": oracle}, {}, program_id)


def liquidate(
    *,
    cranker: Pubkey,
    market: Pubkey,
    book: Pubkey,
    oracle: Pubkey,
    vault: Pubkey,
    cranker_token: Pubkey,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Permissionless: liquidate every position past its liquidation price; the reward goes to ``cranker_token``."""
    accounts = {
        "cranker": cranker,
        "market": market,
        "book": book,
        "oracle": oracle,
        "vault": vault,
        "cranker_token": cranker_token,
        "market_authority": pda.market_authority_address(market, program_id),
    }
    return build_instruction("liquidate", accounts, {}, program_id)


def collect_garbage(*, market: Pubkey, book: Pubkey, max_nodes: int, program_id: Pubkey = PROGRAM_ID) -> Instruction:
    """Permissionless: free up to ``max_nodes`` nodes and slots of liquidated subtrees."""
    return build_instruction("collect_garbage", {"market": market, "book": book}, {"max_nodes": max_nodes}, program_id)


def clear_user(*, market: Pubkey, user: Pubkey, book: Pubkey, program_id: Pubkey = PROGRAM_ID) -> Instruction:
    """Drop every reference of ``user`` to a position no longer live (anyone may send it; none stale is no error)."""
    return build_instruction("clear_user", {"market": market, "user": user, "book": book}, {}, program_id)


def clear_position(
    *, market: Pubkey, user: Pubkey, book: Pubkey, position: PositionRef, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    """Remove a user's reference to a liquidated position, named by slot and generation (anyone may send it)."""
    accounts = {"market": market, "user": user, "book": book}
    return build_instruction("clear_position", accounts, {"position": position}, program_id)
