"""Argument types of the ``perpkit`` command line: public keys, decimal amounts, position references.

Each is an ``argparse`` ``type=``: a bad value becomes ``perpkit: error: argument X: ...`` saying what
a good one looks like.  Nothing heavy is imported until a value is parsed, so ``perpkit --help`` stays fast.
"""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from solders.pubkey import Pubkey

DECIMALS = 6
"""Implied decimals of prices and base sizes (SPEC 2); quote amounts use the mint's own."""

MARKET_PARAM_NAMES = (
    "skew_scale",
    "max_funding_rate_bps_per_day",
    "max_staleness_s",
    "ewma_window_s",
    "initial_margin_bps",
    "maintenance_margin_bps",
    "taker_fee_bps",
    "liquidation_reward_bps",
    "price_band_bps",
    "max_conf_bps",
    "max_open_interest",
    "min_position_notional",
    "max_publish_ahead_s",
)
"""``MarketParams``' fields, spelt out so that building the parser does not import the SDK (a test compares)."""


def pubkey(text: str) -> Pubkey:
    """A base58 public key."""
    from solders.pubkey import Pubkey

    try:
        return Pubkey.from_string(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a public key (32 bytes in base58)") from None


def to_atoms(text: str, decimals: int, what: str = "amount") -> int:
    """``"64250.5"`` at 6 decimals -> 64_250_500_000, exactly; refuses more decimals than the unit has."""
    try:
        value = Decimal(text.replace("_", "").replace(",", ""))
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{what} {text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{what} {text!r} must be a non-negative number")
    atoms = value.scaleb(decimals)
    if atoms != atoms.to_integral_value():
        raise argparse.ArgumentTypeError(f"{what} {text!r} has more than {decimals} decimals")
    return int(atoms)


def amount(text: str) -> Decimal:
    """A non-negative decimal number, converted to atoms later (quote amounts: by the mint's decimals)."""
    to_atoms(text, 18)
    return Decimal(text.replace("_", "").replace(",", ""))


def price(text: str) -> int:
    """A price in whole quote units per base unit, to 6-decimal atoms."""
    atoms = to_atoms(text, DECIMALS, "price")
    if atoms == 0:
        raise argparse.ArgumentTypeError("a price must be positive")
    return atoms


def size(text: str) -> int:
    """A base size in whole base units, to 6-decimal atoms."""
    atoms = to_atoms(text, DECIMALS, "size")
    if atoms == 0:
        raise argparse.ArgumentTypeError("a size must be positive")
    return atoms


def position_ref(text: str) -> tuple[int, int]:
    """``SLOT:GENERATION`` as ``perpkit open`` and ``perpkit positions`` print it."""
    slot, sep, generation = text.partition(":")
    if not sep or not slot.isdigit() or not generation.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: give the position as SLOT:GENERATION, e.g. 0:1")
    return int(slot), int(generation)


def side(text: str) -> str:
    """``long`` or ``short`` (any case); ``perpkit.risk.Side`` gives its number once the SDK is loaded."""
    if text.lower() not in ("long", "short"):
        raise argparse.ArgumentTypeError(f"{text!r}: the side is long or short")
    return text.lower()


def param_setting(text: str) -> tuple[str, int]:
    """``name=value`` for ``perpkit market params --set``: a ``MarketParams`` field and an integer."""
    name, sep, value = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or name not in MARKET_PARAM_NAMES:
        raise argparse.ArgumentTypeError(f"{text!r}: give name=value with name one of {', '.join(MARKET_PARAM_NAMES)}")
    try:
        return name, int(value.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is an integer, as the program stores it") from None
