"""Where a market's index price comes from (SPEC 3): the program's test oracle or a Pyth feed.

A market stores its oracle account and an :class:`OracleSource`: the kind and,
for Pyth, the receiver program that must own the account and the feed id the
``PriceUpdateV2`` must carry.  ``Client.create_market(oracle_source=...)``
takes one; ``Market.oracle_source`` gives it back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from solders.pubkey import Pubkey

from perpkit.errors import InvalidInput
from perpkit.idl import perps_idl
from perpkit.pyth import FEED_IDS, RECEIVER_PROGRAM_ID


class OracleKind(enum.IntEnum):
    """A market's ``oracle_kind`` (IDL constants ``ORACLE_KIND_TEST``/``ORACLE_KIND_PYTH``)."""

    TEST = perps_idl().constant("ORACLE_KIND_TEST")
    PYTH = perps_idl().constant("ORACLE_KIND_PYTH")


def feed_id_bytes(feed: bytes | str) -> bytes:
    """A feed id from 32 bytes, 64 hex digits (``0x`` allowed) or a symbol of :data:`perpkit.pyth.FEED_IDS`."""
    if isinstance(feed, bytes | bytearray):
        raw = bytes(feed)
    elif not isinstance(feed, str):
        raise InvalidInput(f"a feed id is 32 bytes, 64 hex digits or a symbol, got {type(feed).__name__}")
    elif feed in FEED_IDS:
        raw = FEED_IDS[feed]
    else:
        text = feed.removeprefix("0x")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            known = ", ".join(sorted(FEED_IDS))
            raise InvalidInput(f"feed id {feed!r}: give 64 hex digits or one of {known}") from None
    if len(raw) != 32:
        raise InvalidInput(f"a Pyth feed id is 32 bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True)
class OracleSource:
    """The test oracle (the default) or a Pyth ``PriceUpdateV2`` feed: :meth:`test`, :meth:`pyth`."""

    kind: OracleKind = OracleKind.TEST
    pyth_receiver: Pubkey = field(default_factory=Pubkey.default)
    """Pyth: the program that must own the oracle account (the receiver)."""
    pyth_feed_id: bytes = bytes(32)
    """Pyth: the feed id every price update read must carry."""

    @classmethod
    def test(cls) -> OracleSource:
        return cls()

    @classmethod
    def pyth(cls, feed: bytes | str, receiver: Pubkey = RECEIVER_PROGRAM_ID) -> OracleSource:
        """A Pyth feed by id (bytes or hex) or symbol (``"SOL/USD"``), owned by ``receiver`` (mainnet's, devnet's)."""
        return cls(OracleKind.PYTH, receiver, feed_id_bytes(feed))

    def __str__(self) -> str:
        if self.kind == OracleKind.TEST:
            return "the test oracle"
        symbol = next((name for name, feed in FEED_IDS.items() if feed == self.pyth_feed_id), None)
        named = f" ({symbol})" if symbol else ""
        return f"Pyth feed {self.pyth_feed_id.hex()}{named}, owned by {self.pyth_receiver}"

    def to_args(self) -> dict[str, object]:
        """The ``initialize_market`` arguments."""
        return {
            "oracle_kind": int(self.kind),
            "pyth_receiver": self.pyth_receiver,
            "pyth_feed_id": list(self.pyth_feed_id),
        }
