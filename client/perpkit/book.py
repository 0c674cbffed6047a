"""The book account, decoded zero-copy: numpy views of the position slots and tree nodes.

The dtypes are built from the IDL's ``PositionSlot`` and ``TreeNode`` types, so
the Python side reads exactly the layout the program writes.  Live positions
are found by walking each side's crit-bit tree breadth-first, a whole level
at a time with numpy; a position that is open in its slot but not reachable
from its side's root has been cut by a liquidation and awaits collection.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from solders.pubkey import Pubkey

from perpkit import risk
from perpkit.accounts import BookHeader, decode_book_header
from perpkit.errors import AccountDecodeError, InvalidInput
from perpkit.idl import perps_idl
from perpkit.layout import numpy_fields as _fields
from perpkit.risk import U64_MAX, Side

LEAF = 0x8000_0000


class SlotStatus(enum.IntEnum):
    """A position slot's ``status``, as the program writes it (IDL constants ``SLOT_FREE``/``SLOT_OPEN``)."""

    FREE = perps_idl().constant("SLOT_FREE")
    OPEN = perps_idl().constant("SLOT_OPEN")


@cache
def slot_dtype() -> np.dtype[Any]:
    dtype = np.dtype(_fields("PositionSlot"))
    assert dtype.itemsize == perps_idl().constant("BOOK_SLOT_SIZE")
    return dtype


@cache
def node_dtype() -> np.dtype[Any]:
    dtype = np.dtype(_fields("TreeNode"))
    assert dtype.itemsize == perps_idl().constant("BOOK_NODE_SIZE")
    return dtype


_I64_MAX = 2**63 - 1
_CHUNK = 8_192
_EDGE = float(2**63 - 2**22)
"""The largest float the quotient estimate is clipped to: exact, and far enough inside int64."""

HEALTHY, WARNING, LIQUIDATABLE = 0, 1, 2
"""Codes of :meth:`Book.health_codes`."""


def liquidation_prices_reference(
    side: int, key_lo: NDArray[np.uint64], key_hi: NDArray[np.int64], funding_index: int, mm_bps: int
) -> NDArray[np.int64]:
    """:func:`liquidation_prices` on Python integers in an object array: slow (~60 ms at 65,536), the reference."""
    keys = key_hi.astype(object) * (1 << 64) + key_lo.astype(object)
    scaled_index = funding_index * risk.BPS
    if side == Side.LONG:
        prices = -((-(keys + scaled_index)) // (risk.FS * (risk.BPS - mm_bps)))  # ceiling division
    else:
        prices = (keys - scaled_index) // (risk.FS * (risk.BPS + mm_bps))
    return np.asarray(np.clip(prices, -_I64_MAX, _I64_MAX), dtype=np.int64)


def liquidation_prices(
    side: int,
    key_lo: NDArray[np.uint64],
    key_hi: NDArray[np.int64],
    funding_index: int,
    mm_bps: int,
    index: NDArray[np.uint32] | None = None,
) -> NDArray[np.int64]:
    """``risk.liquidation_price`` for 128-bit keys (``key_lo`` u64, ``key_hi`` i64), clamped to +-(2**63 - 1).

    With ``index``, of the keys ``key_lo[index]``, ``key_hi[index]`` (gathered a block at a time).

    Long ``ceil((K + BPS*idx) / D)`` with ``D = FS*(BPS - mm)``, short ``floor((K - BPS*idx) / D)`` with
    ``D = FS*(BPS + mm)`` (docs/risk-engine.md), exactly, on int64/u64 words (about 0.5 ms at 65,536):

    1. the numerator ``N`` is formed in two words with a carry.  It wraps only where ``|N| >= 2**127``
       (signed overflow: key and shift of one sign, sum of the other), and there the price is the bound
       of the shift's sign, as ``D < 2**36``;
    2. ``N`` is clamped, by an exact 128-bit comparison, into ``[-(2**63-1)*D, (2**63-1)*D]``: the rounded
       quotient of the clamped value is the clamped quotient, and ``|N| < 2**99``;
    3. the quotient is estimated in float64 from ``floor(N / 2**40)`` (fits int64): off by less than 2**21,
       then clipped into int64.  The remainder ``N - q*D`` is below 2**60 in magnitude, so its value modulo
       2**64, from wrapping u64 words, is exact; one floor (or ceiling) division by ``D`` corrects ``q``.

    A shift ``BPS*idx`` outside i128 (which ``risk.liquidation_price`` refuses) goes to the slow
    :func:`liquidation_prices_reference`.
    """
    long = side == Side.LONG
    divisor = risk.FS * (risk.BPS - mm_bps if long else risk.BPS + mm_bps)
    if not 0 < divisor < 2**36:
        raise InvalidInput(f"maintenance_margin_bps {mm_bps} is outside 1 ... {risk.BPS - 1}")
    shift = funding_index * risk.BPS if long else -funding_index * risk.BPS
    lo_keys = np.asarray(key_lo, dtype=np.uint64)
    hi_keys = np.asarray(key_hi, dtype=np.int64)
    if not risk.I128_MIN <= shift <= risk.I128_MAX:
        if index is not None:
            lo_keys, hi_keys = lo_keys[index], hi_keys[index]
        return liquidation_prices_reference(side, lo_keys, hi_keys, funding_index, mm_bps)
    n = len(lo_keys) if index is None else len(index)
    out = np.empty(n, dtype=np.int64)
    for start in range(0, n, _CHUNK):  # blocks that stay in cache and reuse freed memory
        block = slice(start, start + _CHUNK)
        if index is None:
            out[block] = _prices_block(long, divisor, shift, lo_keys[block], hi_keys[block])
        else:
            rows = index[block]
            out[block] = _prices_block(long, divisor, shift, lo_keys[rows], hi_keys[rows])
    return out


def _prices_block(
    long: bool, divisor: int, shift: int, lo_key: NDArray[np.uint64], hi_key: NDArray[np.int64]
) -> NDArray[np.int64]:
    lo = lo_key + np.uint64(shift & U64_MAX)
    hi = hi_key + np.int64(shift >> 64)
    hi += lo < lo_key  # the carry
    wrapped = np.flatnonzero((hi_key >= 0) & (hi < 0) if shift >= 0 else (hi_key < 0) & (hi >= 0))
    cap = _I64_MAX * divisor
    top_hi, top_lo, bottom_hi, bottom_lo = cap >> 64, cap & U64_MAX, -cap >> 64, -cap & U64_MAX
    near = np.flatnonzero((hi >= top_hi) | (hi <= bottom_hi))  # only these can be beyond the cap
    if near.size:
        h, lw = hi[near], lo[near]
        above = near[(h > top_hi) | ((h == top_hi) & (lw > np.uint64(top_lo)))]
        below = near[(h < bottom_hi) | ((h == bottom_hi) & (lw < np.uint64(bottom_lo)))]
        hi[above], lo[above], hi[below], lo[below] = top_hi, top_lo, bottom_hi, bottom_lo
    hi <<= 24  # hi | lo >> 40: floor(N / 2**40), in place (fewer temporaries: faster)
    hi |= (lo >> np.uint64(40)).view(np.int64)
    estimate = hi.astype(np.float64)
    estimate *= 2.0**40 / divisor
    np.clip(estimate, -_EDGE, _EDGE, out=estimate)
    q = estimate.astype(np.int64)
    remainder = q.view(np.uint64) * np.uint64(divisor)
    np.subtract(lo, remainder, out=remainder)
    r = remainder.view(np.int64)
    if long:  # ceiling: q - floor(-r / D)
        np.negative(r, out=r)
        r //= divisor
        q -= r
    else:
        r //= divisor
        q += r
    q[wrapped] = _I64_MAX if shift > 0 else -_I64_MAX
    return q


def liquidatable_mask(
    side: int, key_lo: NDArray[np.uint64], key_hi: NDArray[np.int64], threshold: int
) -> NDArray[np.bool_]:
    """``risk.liquidatable`` for 128-bit keys: a long's key above the threshold, a short's below, as two words."""
    t_hi, t_lo = threshold >> 64, np.uint64(threshold & U64_MAX)
    hi = np.asarray(key_hi, dtype=np.int64)
    lo = np.asarray(key_lo, dtype=np.uint64)
    if side == Side.LONG:
        return np.asarray((hi > t_hi) | ((hi == t_hi) & (lo > t_lo)), dtype=bool)
    return np.asarray((hi < t_hi) | ((hi == t_hi) & (lo < t_lo)), dtype=bool)


_SAFE = 2**58
"""Entries and index prices below this (2.9e11 quote units a base unit) take the int64 path of warning_mask."""


def _warning_mask(
    side: int,
    entry: NDArray[np.uint64],
    key_lo: NDArray[np.uint64],
    key_hi: NDArray[np.int64],
    prices: NDArray[np.int64],
    index_price: int,
    funding_index: int,
    mm_bps: int,
) -> NDArray[np.bool_]:
    """Where the index has covered ``WARNING_FRACTION`` (4/5) of the way from entry to the liquidation price.

    ``Position.health``'s rule, exactly: ``distance > 0 and 5*travelled >= 4*distance``, which is, for a
    long, ``E > LP and E + 4*LP >= 5*P``, for a short ``LP > E and 5*P >= 4*LP + E``.  With ``E`` and ``P``
    below 2**58 and ``LP`` (``prices``, clamped) clipped into +-2**60, which changes no answer, it runs on
    int64 without overflow; entries beyond that (not a real price) are decided on Python integers.
    """
    long = side == Side.LONG
    lp = np.clip(prices, -(2**60), 2**60)
    safe = entry < np.uint64(_SAFE) if abs(index_price) < _SAFE else np.zeros(len(entry), dtype=bool)
    e = np.where(safe, entry, np.uint64(0)).astype(np.int64)
    p = np.int64(index_price if abs(index_price) < _SAFE else 0)
    mask = (e > lp) & (e + 4 * lp >= 5 * p) if long else (lp > e) & (5 * p >= 4 * lp + e)
    for i in np.flatnonzero(~safe).tolist():
        key = join_i128(key_lo[i], key_hi[i])
        if long:
            exact = risk.ceil_div(key + funding_index * risk.BPS, risk.FS * (risk.BPS - mm_bps))
        else:
            exact = (key - funding_index * risk.BPS) // (risk.FS * (risk.BPS + mm_bps))
        ent = int(entry[i])
        distance, travelled = (ent - exact, ent - index_price) if long else (exact - ent, index_price - ent)
        mask[i] = distance > 0 and 5 * travelled >= 4 * distance
    return np.asarray(mask, dtype=bool)


def join_i128(lo: int, hi: int) -> int:
    """A signed 128-bit value from its two stored words."""
    return (int(hi) << 64) | int(lo)


@dataclass(frozen=True)
class Book:
    """A decoded book: the header, and numpy views (no copies) of slots and nodes."""

    header: BookHeader
    slots: NDArray[Any]
    nodes: NDArray[Any]

    @classmethod
    def decode(cls, address: Pubkey, data: bytes | memoryview) -> Book:
        header = decode_book_header(address, bytes(data[: perps_idl().constant("BOOK_HEADER_SIZE")]))
        capacity = header.capacity
        offset = perps_idl().constant("BOOK_HEADER_SIZE")
        need = offset + capacity * (slot_dtype().itemsize + node_dtype().itemsize)
        if len(data) < need:
            raise AccountDecodeError(f"book of capacity {capacity} needs {need} bytes, the account has {len(data)}")
        slots = np.frombuffer(data, dtype=slot_dtype(), count=capacity, offset=offset)
        nodes = np.frombuffer(
            data, dtype=node_dtype(), count=capacity, offset=offset + capacity * slot_dtype().itemsize
        )
        return cls(header, slots, nodes)

    def live_slots(self, side: int) -> NDArray[np.uint32]:
        """Slots of the live positions of a side (tree order not kept; see ``sorted_by_key``)."""
        if self.header.garbage == 0:  # nothing cut awaits collection: the open slots are the live ones
            used = self.slots[: self.header.slots_used]
            return np.flatnonzero((used["status"] == SlotStatus.OPEN) & (used["side"] == side)).astype(np.uint32)
        return self._walk(self.header.roots[side])

    def live_by_side(self) -> dict[int, NDArray[np.uint32]]:
        """``live_slots`` of both sides, ``{Side.LONG: ..., Side.SHORT: ...}``."""
        if self.header.garbage == 0:
            used = self.slots[: self.header.slots_used]
            open_ = np.flatnonzero(used["status"] == SlotStatus.OPEN).astype(np.uint32)
            sides = used["side"][open_]
            return {side: open_[sides == side] for side in Side}
        return {side: self._walk(self.header.roots[side]) for side in Side}

    def _walk(self, root: int) -> NDArray[np.uint32]:
        """The slots of the leaves under ``root``, breadth-first, a whole level at a time.

        A position is live while it is reachable from its side's root; a cut one stays open in its slot,
        on the garbage list, until ``collect_garbage`` frees it.  So with an empty garbage list the open
        slots are exactly the live positions, and ``live_slots`` reads them without a walk (the tests check
        that the two agree)."""
        if root == 0:
            return np.zeros(0, dtype=np.uint32)
        frontier = np.array([root], dtype=np.uint32)
        leaves = []
        child0, child1 = self.nodes["children"][:, 0], self.nodes["children"][:, 1]
        for _ in range(161):  # at most one level per crit bit
            is_leaf = frontier >= LEAF
            leaves.append(frontier[is_leaf] & ~np.uint32(LEAF))
            inner = frontier[~is_leaf] - 1
            if inner.size == 0:
                break
            frontier = np.concatenate([child0[inner], child1[inner]])
        return np.concatenate(leaves).astype(np.uint32)

    def walked_slots(self, side: int) -> NDArray[np.uint32]:
        """``live_slots`` by walking the tree, whatever the garbage list holds (to check the shortcut)."""
        return self._walk(self.header.roots[side])

    def most_exposed(self, side: int) -> int | None:
        """The live position of ``side`` that goes first (highest key for longs, lowest for shorts), or None.

        One walk down the tree, as the program's ``book_extreme`` does for ``update_market_params``."""
        ref = self.header.roots[side]
        if ref == 0:
            return None
        direction = 1 if side == Side.LONG else 0
        while not ref & LEAF:
            ref = int(self.nodes["children"][ref - 1][direction])
        return ref & ~LEAF

    def sorted_by_key(self, slots: NDArray[np.uint32]) -> NDArray[np.uint32]:
        """``slots`` in key order (ties by slot), as the tree orders them."""
        s = self.slots[slots]
        return slots[np.lexsort((slots, s["key_lo"], s["key_hi"]))]

    def live_mask(self) -> NDArray[np.bool_]:
        """True for every slot whose position is live."""
        mask = np.zeros(self.header.capacity, dtype=bool)
        for slots in self.live_by_side().values():
            mask[slots] = True
        return mask

    def cut_slots(self) -> NDArray[np.uint32]:
        """Slots still open but no longer live: liquidated, awaiting collection."""
        used = self.header.slots_used
        open_ = self.slots["status"][:used] == SlotStatus.OPEN
        return np.nonzero(open_ & ~self.live_mask()[:used])[0].astype(np.uint32)

    def liquidation_prices(
        self, side: int, slots: NDArray[np.uint32], funding_index: int, mm_bps: int
    ) -> NDArray[np.int64]:
        """``risk.liquidation_price`` of each position in ``slots`` (all of ``side``), exactly, for a whole array.

        Clamped into int64 (a long that can never be liquidated shows a price at or below zero);
        see :func:`liquidation_prices`."""
        return liquidation_prices(side, self.slots["key_lo"], self.slots["key_hi"], funding_index, mm_bps, slots)

    def liquidatable(self, side: int, slots: NDArray[np.uint32], threshold: int) -> NDArray[np.bool_]:
        """Which positions in ``slots`` (all of ``side``) are liquidatable at ``threshold`` (``risk.threshold``)."""
        return liquidatable_mask(side, self.slots["key_lo"][slots], self.slots["key_hi"][slots], threshold)

    def health_codes(
        self, side: int, slots: NDArray[np.uint32], index_price: int, funding_index: int, mm_bps: int
    ) -> NDArray[np.uint8]:
        """``Position.health`` of each live position in ``slots`` (all of ``side``), as codes, vectorised.

        :data:`HEALTHY`, :data:`WARNING` or :data:`LIQUIDATABLE` (``perpkit.positions.HEALTH_BY_CODE``
        maps them to ``Health``), by the same exact rule."""
        lo, hi = self.slots["key_lo"][slots], self.slots["key_hi"][slots]
        gone = liquidatable_mask(side, lo, hi, risk.threshold(side, index_price, funding_index, mm_bps))
        prices = liquidation_prices(side, lo, hi, funding_index, mm_bps)
        entry = self.slots["entry_price"][slots]
        warn = _warning_mask(side, entry, lo, hi, prices, index_price, funding_index, mm_bps)
        codes = np.full(len(slots), HEALTHY, dtype=np.uint8)
        codes[warn] = WARNING
        codes[gone] = LIQUIDATABLE
        return codes

    def garbage_items(self) -> int:
        """Tree nodes plus position slots waiting to be freed by ``collect_garbage`` (one item each)."""

        def subtree(ref: int) -> int:  # untouched below a list head: inner nodes keep their counts
            return 1 if ref & LEAF else 2 * int(self.nodes["count"][ref - 1]) - 1

        items, ref = 0, self.header.garbage
        while ref:
            if ref & LEAF:
                items += 1
                ref = int(self.slots["next"][ref & ~LEAF])
            else:  # a list head's count field links to the next head
                node = self.nodes[ref - 1]
                items += 1 + subtree(int(node["children"][0])) + subtree(int(node["children"][1]))
                ref = int(node["count"])
        return items

    def key(self, slot: int) -> int:
        s = self.slots[slot]
        return join_i128(s["key_lo"], s["key_hi"])

    def funding_at_open(self, slot: int) -> int:
        s = self.slots[slot]
        return join_i128(s["funding_at_open_lo"], s["funding_at_open_hi"])

    def terms(self, slot: int) -> risk.Terms:
        """The position in ``slot`` as the risk engine sees it."""
        s = self.slots[slot]
        return risk.Terms(int(s["side"]), int(s["size"]), int(s["collateral"]), int(s["entry_price"]),
                          self.funding_at_open(slot))  # fmt: skip


def slot_slice(slot: int) -> tuple[int, int]:
    """(offset, length) of position slot ``slot`` in the book account: the ``dataSlice`` that reads only it."""
    header = perps_idl().constant("BOOK_HEADER_SIZE")
    size = slot_dtype().itemsize
    return header + slot * size, size


def decode_slot(data: bytes) -> Any:
    """One position slot from the bytes of :func:`slot_slice` (a numpy record)."""
    if len(data) != slot_dtype().itemsize:
        raise AccountDecodeError(f"a position slot is {slot_dtype().itemsize} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=slot_dtype(), count=1)[0]
