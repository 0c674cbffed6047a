"""Decoded accounts of the perps program: ``Market``, ``MarketParams``, ``Oracle``, ``BookHeader``, ``User``.

Field names are the IDL's (a test keeps them in step); decoding goes through
the IDL's account coder (``perpkit.coder``), which checks the discriminator first.
Many users at once (``getProgramAccounts``) are decoded in one numpy pass
instead: :func:`decode_users` and :class:`UserTable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray
from solders.pubkey import Pubkey

from perpkit.errors import AccountDecodeError
from perpkit.idl import perps_idl
from perpkit.layout import account_dtype, discriminator_word
from perpkit.oracles import OracleKind, OracleSource
from perpkit.risk import Side

PRICE_SCALE = 1_000_000
"""Prices have 6 implied decimals: ``1_000_000`` is 1.00 quote per base unit."""
BPS = 10_000


@dataclass(frozen=True)
class MarketParams:
    """Risk parameters of a market (SPEC sections 3-6); the defaults are the SPEC's.

    The program keeps them within bounds (docs/risk-engine.md, "Parameters");
    the most important is the open-interest cap rule
    ``max_open_interest * 2 * 1e4 <= skew_scale * maintenance_margin_bps``.
    ``max_open_interest=None`` (the default) resolves, when the parameters are made, to the largest cap
    that rule allows for their ``skew_scale`` and ``maintenance_margin_bps``; ``dataclasses.replace``
    keeps a resolved cap, so pass ``max_open_interest=None`` again when changing those two.
    """

    skew_scale: int = 1_000_000 * PRICE_SCALE
    """Skew at which the mark is twice the index, in base units (6 decimals)."""
    max_funding_rate_bps_per_day: int = 100
    max_staleness_s: int = 60
    ewma_window_s: int = 300
    initial_margin_bps: int = 1000
    maintenance_margin_bps: int = 500
    taker_fee_bps: int = 10
    liquidation_reward_bps: int = 1000
    price_band_bps: int = 1000
    max_conf_bps: int = 200
    max_open_interest: int | None = None
    """Largest open interest of either side, in base atoms (None: the largest the cap rule allows)."""
    min_position_notional: int = 10 * PRICE_SCALE
    """Smallest position, as notional at the fill price (quote atoms; default 10 USDC)."""
    max_publish_ahead_s: int = 10
    """How far ahead of the cluster clock an oracle's publish time may be (clock-skew tolerance)."""

    def __post_init__(self) -> None:
        if self.max_open_interest is None:  # the largest the cap rule allows, fixed once
            object.__setattr__(self, "max_open_interest", self.largest_open_interest)

    @property
    def largest_open_interest(self) -> int:
        """The cap rule's bound: ``skew_scale * maintenance_margin_bps // (2 * 1e4)`` base atoms."""
        return self.skew_scale * self.maintenance_margin_bps // (2 * BPS)

    @property
    def open_interest_cap(self) -> int:
        """``max_open_interest``, or the rule's bound when it is None."""
        return self.largest_open_interest if self.max_open_interest is None else self.max_open_interest

    def to_idl(self) -> dict[str, Any]:
        values: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        values["max_open_interest"] = self.open_interest_cap
        values["padding"] = [0] * 4
        return values


@dataclass(frozen=True)
class Market:
    """The market account."""

    address: Pubkey
    admin: Pubkey
    quote_mint: Pubkey
    vault: Pubkey
    oracle: Pubkey
    book: Pubkey
    params: MarketParams
    created_at: int
    market_id: int
    book_capacity: int
    bump: int
    authority_bump: int
    vault_bump: int
    paused: bool
    oracle_kind: int
    """``OracleKind.TEST`` or ``OracleKind.PYTH`` (kept as read: a decoder does not refuse other bytes)."""
    oi_long: int
    """Open interest, long side (base atoms)."""
    oi_short: int
    ewma_price: int
    ewma_updated_at: int
    last_index_price: int
    funding_updated_at: int
    funding_index_long: int
    funding_index_short: int
    pool_balance: int
    insurance_balance: int
    total_free_collateral: int
    total_position_collateral: int
    fees_collected: int
    positions_opened: int
    positions_closed: int
    volume: int
    liquidation_batches: int
    positions_liquidated: int
    collateral_liquidated: int
    cranker_rewards: int
    insurance_from_liquidations: int
    insurance_paid: int
    socialized_loss: int
    last_liquidation_slot: int
    last_liquidation_price: int
    """Index price of the last batch: it decided which positions went."""
    last_liquidation_exit_price: int
    """Exit price of the last batch: the fill of its net size, at which they were valued (SPEC 6)."""
    pyth_receiver: Pubkey
    """Pyth markets: the program that must own the oracle account (zero on the test oracle)."""
    pyth_feed_id: bytes
    """Pyth markets: the feed id every update must carry (zero on the test oracle)."""
    oracle_publish_time: int
    """The publish time of the last oracle read that passed: a Pyth update older than it is refused."""

    @property
    def oracle_source(self) -> OracleSource:
        """The oracle's kind, and for Pyth the receiver and feed id the market reads."""
        return OracleSource(OracleKind(self.oracle_kind), self.pyth_receiver, self.pyth_feed_id)

    @property
    def skew(self) -> int:
        """Long minus short open interest (base atoms)."""
        return self.oi_long - self.oi_short

    def funding_index(self, side: int) -> int:
        return self.funding_index_long if side == Side.LONG else self.funding_index_short


@dataclass(frozen=True)
class PositionRef:
    """A user's reference to a book slot; the generation tells a reused slot apart."""

    slot: int
    generation: int

    EMPTY = 2**32 - 1

    @property
    def empty(self) -> bool:
        return self.slot == self.EMPTY

    def to_idl(self) -> dict[str, int]:
        return {"slot": self.slot, "generation": self.generation}

    @classmethod
    def decode(cls, data: bytes) -> PositionRef:
        """A reference from its 8 bytes (borsh: slot u32, generation u32), as ``open_position`` returns it."""
        if len(data) != 8:
            raise AccountDecodeError(f"a position reference is 8 bytes, got {len(data)}")
        return cls(int.from_bytes(data[:4], "little"), int.from_bytes(data[4:], "little"))


@dataclass(frozen=True)
class User:
    """A trader's account in one market."""

    address: Pubkey
    market: Pubkey
    owner: Pubkey
    free_collateral: int
    bump: int
    position_count: int
    positions: tuple[PositionRef, ...]

    @property
    def open_refs(self) -> list[PositionRef]:
        return [r for r in self.positions if not r.empty]


@dataclass(frozen=True)
class Oracle:
    """The program-owned test oracle."""

    address: Pubkey
    authority: Pubkey
    price: int
    """Price with 6 implied decimals (``expo`` is always -6)."""
    conf: int
    publish_time: int
    expo: int
    oracle_id: int
    bump: int

    @property
    def ui_price(self) -> float:
        return self.price / PRICE_SCALE


@dataclass(frozen=True)
class BookHeader:
    """Header of the book account (position slots and tree nodes follow it)."""

    address: Pubkey
    market: Pubkey
    capacity: int
    slots_used: int
    free_slot: int
    nodes_used: int
    free_node: int
    garbage: int
    roots: tuple[int, int]
    counts: tuple[int, int]
    garbage_count: int


def _decode(name: str, data: bytes) -> dict[str, Any]:
    return perps_idl().account_coder.decode(name, data)


def _build(cls: type[Any], address: Pubkey, decoded: dict[str, Any], **overrides: Any) -> Any:
    values = {"address": address}
    for f in fields(cls):
        if f.name == "address":
            continue
        values[f.name] = overrides[f.name] if f.name in overrides else decoded[f.name]
    return cls(**values)


def decode_market(address: Pubkey, data: bytes) -> Market:
    c = _decode("Market", data)
    params = MarketParams(**{f.name: c["params"][f.name] for f in fields(MarketParams)})
    market: Market = _build(Market, address, c, params=params, paused=bool(c["paused"]),
                            pyth_feed_id=bytes(c["pyth_feed_id"]))  # fmt: skip
    return market


def decode_user(address: Pubkey, data: bytes) -> User:
    c = _decode("User", data)
    refs = tuple(PositionRef(r["slot"], r["generation"]) for r in c["positions"])
    user: User = _build(User, address, c, positions=refs)
    return user


@dataclass(frozen=True)
class UserTable:
    """Many ``User`` accounts decoded at once: their addresses and one numpy record each.

    ``records`` has the dtype :func:`perpkit.layout.account_dtype` ``("User")``
    (fields as the IDL names them; ``positions`` is a ``(n, 32)`` array of
    ``slot``/``generation`` records).  Build it with :func:`decode_users`.
    """

    addresses: tuple[Pubkey, ...]
    records: NDArray[Any]

    def __len__(self) -> int:
        return len(self.addresses)

    @property
    def free_collateral(self) -> NDArray[np.uint64]:
        return np.asarray(self.records["free_collateral"], dtype=np.uint64)

    @property
    def total_free_collateral(self) -> int:
        """The sum of every user's free collateral, exactly (u64 words summed without wrapping)."""
        free = self.free_collateral
        return int((free >> np.uint64(32)).sum(dtype=np.uint64)) * 2**32 + int(
            (free & np.uint64(0xFFFF_FFFF)).sum(dtype=np.uint64)
        )

    def open_refs(self) -> tuple[NDArray[np.intp], NDArray[np.uint32], NDArray[np.uint32]]:
        """(user index, slot, generation) of every non-empty reference, users in order, each user's in order."""
        refs = self.records["positions"]
        users, which = np.nonzero(refs["slot"] != np.uint32(PositionRef.EMPTY))
        return users, refs["slot"][users, which], refs["generation"][users, which]

    def user(self, i: int) -> User:
        """The ``User`` object of row ``i`` (the same as ``decode_user`` of its account)."""
        r = self.records[i]
        slots, generations = r["positions"]["slot"].tolist(), r["positions"]["generation"].tolist()
        refs = tuple(PositionRef(s, g) for s, g in zip(slots, generations, strict=True))
        return User(self.addresses[i], Pubkey.from_bytes(r["market"].tobytes()),
                    Pubkey.from_bytes(r["owner"].tobytes()), int(r["free_collateral"]), int(r["bump"]),
                    int(r["position_count"]), refs)  # fmt: skip

    def users(self) -> list[User]:
        return [self.user(i) for i in range(len(self))]


def decode_users(accounts: Sequence[tuple[Pubkey, bytes | bytearray | memoryview]]) -> UserTable:
    """Decode ``(address, data)`` pairs of ``User`` accounts (as ``getProgramAccounts`` returns them) in one pass.

    Every size and discriminator is checked, vectorised; the first account
    that is not a ``User`` is named in the :class:`AccountDecodeError`.
    """
    dtype = account_dtype("User")
    addresses = tuple(address for address, _ in accounts)
    datas = [data for _, data in accounts]
    sizes = np.fromiter(map(len, datas), dtype=np.int64, count=len(datas))
    good_size = sizes == dtype.itemsize
    if good_size.all():
        records = np.frombuffer(b"".join(datas), dtype=dtype)
        bad = records["discriminator"] != discriminator_word("User")
        if not bad.any():
            return UserTable(addresses, records)
    else:  # find the first account with a wrong size or a wrong discriminator, whichever comes first
        heads = np.frombuffer(b"".join(bytes(d[:8]).ljust(8, b"\0") for d in datas), dtype="<u8")
        bad = ~good_size | (heads != discriminator_word("User"))
    first = int(np.argmax(bad))
    data = datas[first]
    if len(data) != dtype.itemsize:
        raise AccountDecodeError(f"account {addresses[first]} is {len(data)} bytes, a User is {dtype.itemsize}")
    raise AccountDecodeError(f"account {addresses[first]} is not a User (discriminator {bytes(data[:8]).hex()})")


def decode_oracle(address: Pubkey, data: bytes) -> Oracle:
    oracle: Oracle = _build(Oracle, address, _decode("Oracle", data))
    return oracle


def decode_book_header(address: Pubkey, data: bytes) -> BookHeader:
    # Only the header is decoded here: the book may be megabytes long.
    header = bytes(data[: perps_idl().constant("BOOK_HEADER_SIZE")])
    c = _decode("Book", header)
    book: BookHeader = _build(BookHeader, address, c, roots=tuple(c["roots"]), counts=tuple(c["counts"]))
    return book


def account_size(name: str) -> int:
    """Bytes of an account of IDL type ``name``: discriminator plus its fixed layout."""
    return perps_idl().account_coder.size(name)


def book_account_size(capacity: int) -> int:
    """Bytes of a book account holding ``capacity`` positions (header, slots, tree nodes)."""
    idl = perps_idl()
    per_position = idl.constant("BOOK_SLOT_SIZE") + idl.constant("BOOK_NODE_SIZE")
    return idl.constant("BOOK_HEADER_SIZE") + capacity * per_position
