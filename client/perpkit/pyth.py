"""Pyth pull-oracle ``PriceUpdateV2`` accounts: layout, decoding, the 6-decimal rescale and feed addresses.

A ``PriceUpdateV2`` is the account Pyth's Solana receiver writes (SPEC 3, oracle kind (b)).  It is
Borsh, little-endian, unpadded, always allocated at :data:`PRICE_UPDATE_V2_LEN` (134) bytes::

    discriminator [u8;8]  sha256("account:PriceUpdateV2")[:8]
    write_authority Pubkey
    verification_level    tag u8: 0 = Partial{num_signatures: u8} (2 bytes), 1 = Full (1 byte)
    feed_id [u8;32], price i64, conf u64, exponent i32, publish_time i64, prev_publish_time i64,
    ema_price i64, ema_conf u64, posted_slot u64

``Full`` is one byte shorter than ``Partial``, so every field after the tag moves by one (price at
byte 73 under Full, 74 under Partial) and a Full account leaves byte 133 unused.  The receiver does
not clear that byte: an account rewritten from Partial to Full keeps the old last byte of
``posted_slot`` there, so readers ignore it and never require it to be zero.

:func:`rescale` is the reference model of the program's conversion to 6 decimals (price toward
zero, conf up).  :func:`price_feed_address` derives the push-oracle (sponsored) feed accounts.
:func:`fixture_accounts` / :func:`write_fixture_files` produce ``fixtures/accounts/pyth/``.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from solders.account import Account
from solders.pubkey import Pubkey
from solders.rent import Rent

from perpkit.errors import AccountNotFound, InvalidInput, PythAccountError, PythPriceError

if TYPE_CHECKING:
    from perpkit.client import Client

RECEIVER_PROGRAM_ID = Pubkey.from_string("rec5EKMGg6MxZYaMdyBfgwp4d5rB9T1VQH5pJv5LtFJ")
"""The Pyth Solana receiver: owner of every ``PriceUpdateV2`` account (mainnet and devnet)."""

PUSH_ORACLE_PROGRAM_ID = Pubkey.from_string("pythWSnswVUd12oZpeFP8e9CVaEqJg25g1Vtc2biRsT")
"""The Pyth push oracle: the sponsored feed accounts are its PDAs (see :func:`price_feed_address`)."""

RECEIVER_PROGRAM_ID_PRO = Pubkey.from_string("rec2HHDDnjLfj4kE7VyEtFA1HPGQLK33259532cRyHp")
"""The receiver of Pyth's upgraded ("pro-compatible") Core, announced for 2026-08-18.

Taken from Pyth's upgrade docs (pyth-crosschain ``upgrade/contracts.mdx``, snapshot of July 2026),
not observed on chain: whether the old :data:`RECEIVER_PROGRAM_ID` feeds are still updated after
the cut-over, and whether these ids are final, is unverified.  The account layout and discriminator
are unchanged; only owners and feed addresses differ."""

PUSH_ORACLE_PROGRAM_ID_PRO = Pubkey.from_string("pyt2F414BA6dPttK6RddPZUdHfapoBN24GL5wbrPCou")
"""The push oracle of Pyth's upgraded Core (see :data:`RECEIVER_PROGRAM_ID_PRO` for the uncertainty):
``price_feed_address(feed_id, push_program=PUSH_ORACLE_PROGRAM_ID_PRO)`` gives its feed accounts."""

KNOWN_RECEIVERS: tuple[Pubkey, ...] = (RECEIVER_PROGRAM_ID, RECEIVER_PROGRAM_ID_PRO)
"""The receivers Pyth runs, as the program knows them (``pyth_known_receiver`` in ``pyth.c``): the admin's
``set_market_oracle`` may move a market between these two, and to no other receiver."""

PRICE_UPDATE_V2_DISCRIMINATOR = hashlib.sha256(b"account:PriceUpdateV2").digest()[:8]
"""Anchor's account discriminator, ``22 f1 23 63 9d 7e f4 cd``."""

PRICE_UPDATE_V2_LEN = 134
"""Bytes the receiver allocates (the Partial layout's size; Full uses 133 of them)."""

FEED_IDS: dict[str, bytes] = {
    "SOL/USD": bytes.fromhex("ef0d8b6fda2ceba41da15d4095d1da392a0d2f8ed0c6c7bc0f4cfac8c280b56d"),
    "BTC/USD": bytes.fromhex("e62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43"),
    "ETH/USD": bytes.fromhex("ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace"),
}
"""Pyth price feed ids (the same on every chain) by symbol."""

TAG_PARTIAL = 0
"""Verification-level tag of ``Partial{num_signatures}`` (followed by one u8)."""
TAG_FULL = 1
"""Verification-level tag of ``Full`` (no payload)."""

DECIMALS = 6
"""The program's price precision: rescaled prices are in units of 10**-6."""

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
U64_MAX = 2**64 - 1

_MESSAGE = struct.Struct("<32sqQiqqqQQ")  # feed_id .. ema_conf, then posted_slot
_HEADER = 8 + 32  # discriminator + write_authority: the verification tag is at byte 40


@dataclass(frozen=True)
class Full:
    """``VerificationLevel::Full``: the update carried a quorum of guardian signatures."""


FULL = Full()
"""The one :class:`Full` value."""


@dataclass(frozen=True)
class Partial:
    """``VerificationLevel::Partial{num_signatures}``: fewer signatures than a quorum were checked."""

    num_signatures: int

    def __post_init__(self) -> None:
        if isinstance(self.num_signatures, bool) or not isinstance(self.num_signatures, int):
            raise InvalidInput(f"num_signatures must be an int, got {self.num_signatures!r}")
        if not 0 <= self.num_signatures <= 255:
            raise InvalidInput(f"num_signatures must fit in a u8, got {self.num_signatures}")


VerificationLevel: TypeAlias = Full | Partial
"""How much of the update's signatures the receiver verified: :data:`FULL` or ``Partial(n)``."""


def _check_int(value: object, low: int, high: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an int, got {value!r}")
    if not low <= value <= high:
        raise InvalidInput(f"{what} must be in [{low}, {high}], got {value}")


@dataclass(frozen=True)
class PriceUpdateV2:
    """One Pyth ``PriceUpdateV2`` account's contents.

    ``price``/``conf`` are in units of ``10**exponent``; times are unix seconds; ``posted_slot`` is the
    Solana slot the update was posted at.  Field ranges are checked on construction (InvalidInput).
    """

    write_authority: Pubkey
    verification: VerificationLevel
    feed_id: bytes
    price: int
    conf: int
    exponent: int
    publish_time: int
    prev_publish_time: int
    ema_price: int
    ema_conf: int
    posted_slot: int

    def __post_init__(self) -> None:
        if not isinstance(self.write_authority, Pubkey):
            raise InvalidInput(f"write_authority must be a Pubkey, got {self.write_authority!r}")
        if not isinstance(self.verification, Full | Partial):
            raise InvalidInput(f"verification must be FULL or Partial(n), got {self.verification!r}")
        if not isinstance(self.feed_id, bytes) or len(self.feed_id) != 32:
            raise InvalidInput(f"feed_id must be 32 bytes, got {self.feed_id!r}")
        for name in ("price", "publish_time", "prev_publish_time", "ema_price"):
            _check_int(getattr(self, name), I64_MIN, I64_MAX, name)
        for name in ("conf", "ema_conf", "posted_slot"):
            _check_int(getattr(self, name), 0, U64_MAX, name)
        _check_int(self.exponent, I32_MIN, I32_MAX, "exponent")

    def encode(self) -> bytes:
        """The account data: always :data:`PRICE_UPDATE_V2_LEN` bytes (a Full update leaves byte 133 zero)."""
        if isinstance(self.verification, Partial):
            level = bytes([TAG_PARTIAL, self.verification.num_signatures])
        else:
            level = bytes([TAG_FULL])
        message = _MESSAGE.pack(self.feed_id, self.price, self.conf, self.exponent, self.publish_time,
                                self.prev_publish_time, self.ema_price, self.ema_conf, self.posted_slot)  # fmt: skip
        data = PRICE_UPDATE_V2_DISCRIMINATOR + bytes(self.write_authority) + level + message
        return data.ljust(PRICE_UPDATE_V2_LEN, b"\0")

    @classmethod
    def decode(cls, data: bytes) -> PriceUpdateV2:
        """Parse account data (either verification layout); byte 133 of a Full update is ignored.

        Raises :class:`PythAccountError` when the data is shorter than 134 bytes, does not start with
        the ``PriceUpdateV2`` discriminator, or has a verification tag other than 0 or 1.
        """
        data = bytes(data)
        if len(data) < PRICE_UPDATE_V2_LEN:
            raise PythAccountError(
                f"PriceUpdateV2 account data is {len(data)} bytes, expected at least {PRICE_UPDATE_V2_LEN}"
            )
        if data[:8] != PRICE_UPDATE_V2_DISCRIMINATOR:
            raise PythAccountError(
                f"not a PriceUpdateV2 account: discriminator {data[:8].hex()}, "
                f"expected {PRICE_UPDATE_V2_DISCRIMINATOR.hex()}"
            )
        tag = data[_HEADER]
        verification: VerificationLevel
        if tag == TAG_PARTIAL:
            verification, start = Partial(data[_HEADER + 1]), _HEADER + 2
        elif tag == TAG_FULL:
            verification, start = FULL, _HEADER + 1
        else:
            raise PythAccountError(f"PriceUpdateV2 verification level tag is {tag}, expected 0 (Partial) or 1 (Full)")
        fields = _MESSAGE.unpack_from(data, start)
        return cls(Pubkey.from_bytes(data[8:_HEADER]), verification, *fields)

    @property
    def is_fully_verified(self) -> bool:
        """True when the verification level is Full (the only level the program accepts)."""
        return isinstance(self.verification, Full)

    @property
    def ui_price(self) -> Decimal:
        """``price * 10**exponent``, exactly."""
        return Decimal(self.price).scaleb(self.exponent)

    @property
    def ui_conf(self) -> Decimal:
        """``conf * 10**exponent``, exactly."""
        return Decimal(self.conf).scaleb(self.exponent)

    def rescaled(self) -> tuple[int, int]:
        """``rescale(self.price, self.conf, self.exponent)``: (price, conf) in 6 decimals."""
        return rescale(self.price, self.conf, self.exponent)


MIN_EXPONENT = -(18 + DECIMALS)
"""The smallest exponent the program rescales (-24): ``exponent + 6 >= -18``."""
MAX_EXPONENT = 18 - DECIMALS
"""The largest exponent the program rescales (12): ``exponent + 6 <= 18``."""


def rescale(price: int, conf: int, exponent: int) -> tuple[int, int]:
    """(price, conf) converted from ``10**exponent`` units to 6 decimals, as the program's oracle read does.

    With ``k = exponent + 6``: for ``k >= 0`` both are multiplied by ``10**k`` (conf saturates at
    ``2**64 - 1``; a price whose magnitude exceeds i64::MAX raises ``PythPriceError("OraclePriceOutOfRange")``); for
    ``k < 0`` the price is divided by ``10**-k`` truncating toward zero and conf is divided rounding up.
    Exponents outside [-24, 12] raise ``PythPriceError("OracleExponentUnsupported")``.  Integer
    arithmetic only.  The sign of the price is not checked here (the program refuses ``price <= 0``
    separately); ``price``, ``conf``, ``exponent`` must be in i64, u64, i32 range (InvalidInput).
    """
    _check_int(price, I64_MIN, I64_MAX, "price")
    _check_int(conf, 0, U64_MAX, "conf")
    _check_int(exponent, I32_MIN, I32_MAX, "exponent")
    k = exponent + DECIMALS
    if not -18 <= k <= 18:
        raise PythPriceError(
            error_name="OracleExponentUnsupported",
            detail=f"exponent {exponent} is outside [{MIN_EXPONENT}, {MAX_EXPONENT}]",
        )
    if k >= 0:
        scale = 10**k
        price6 = price * scale
        if abs(price6) > I64_MAX:  # as the program checks: on magnitudes, so -2**63 is out too
            raise PythPriceError(
                error_name="OraclePriceOutOfRange",
                detail=f"price {price} * 10**{k} does not fit in an i64",
            )
        return price6, min(conf * scale, U64_MAX)
    divisor = 10**-k
    magnitude = abs(price) // divisor
    price6 = magnitude if price >= 0 else -magnitude
    conf6 = -(-conf // divisor)
    return price6, conf6


@dataclass(frozen=True)
class OraclePrice:
    """What the program reads from an oracle account: price and conf at 6 decimals, and the publish time."""

    price: int
    conf: int
    publish_time: int


def read_price(data: bytes, feed_id: bytes) -> OraclePrice:
    """The reference model of the program's read of a ``PriceUpdateV2`` (after its owner check).

    In the program's order, each refusal a :class:`PythPriceError` named as the program's error:
    fewer than 134 bytes (``InvalidAccountData``), another discriminator (``InvalidDiscriminator``),
    Partial verification (``OracleNotFullyVerified``), an unknown verification tag
    (``InvalidAccountData``), another feed (``OracleFeedMismatch``), a price <= 0
    (``OraclePriceNotPositive``), then :func:`rescale`.  Staleness, publish time and confidence are
    checked afterwards by the same rules as the test oracle (``perpkit.risk.check_oracle``).
    """
    data = bytes(data)
    if len(data) < PRICE_UPDATE_V2_LEN:
        raise PythPriceError(error_name="InvalidAccountData", detail=f"{len(data)} bytes, fewer than 134")
    if data[:8] != PRICE_UPDATE_V2_DISCRIMINATOR:
        raise PythPriceError(error_name="InvalidDiscriminator", detail=f"discriminator {data[:8].hex()}")
    tag = data[_HEADER]
    if tag == TAG_PARTIAL:
        raise PythPriceError(error_name="OracleNotFullyVerified", detail=f"{data[_HEADER + 1]} signatures")
    if tag != TAG_FULL:
        raise PythPriceError(error_name="InvalidAccountData", detail=f"verification tag {tag}")
    update = PriceUpdateV2.decode(data)
    if update.feed_id != feed_id:
        raise PythPriceError(error_name="OracleFeedMismatch", detail=f"feed {update.feed_id.hex()}")
    if update.price <= 0:
        raise PythPriceError(error_name="OraclePriceNotPositive", detail=f"price {update.price}")
    price, conf = rescale(update.price, update.conf, update.exponent)
    return OraclePrice(price, conf, update.publish_time)


def price_feed_address(feed_id: bytes, shard: int = 0, push_program: Pubkey = PUSH_ORACLE_PROGRAM_ID) -> Pubkey:
    """The push oracle's feed account: ``PDA([shard as u16 LE, feed_id], push_program)``.

    Shard 0 is the one Pyth sponsors (updated on its schedule on devnet and mainnet); the account is
    owned by the receiver, not the push oracle, and its ``write_authority`` is the address itself.
    """
    if not isinstance(feed_id, bytes) or len(feed_id) != 32:
        raise InvalidInput(f"feed_id must be 32 bytes, got {feed_id!r}")
    _check_int(shard, 0, 2**16 - 1, "shard")
    return Pubkey.find_program_address([shard.to_bytes(2, "little"), feed_id], push_program)[0]


@dataclass(frozen=True)
class PriceFeedAccount:
    """A sponsored price feed account found on a cluster: where it is, who owns it, what it holds."""

    address: Pubkey
    receiver: Pubkey
    """The receiver program that owns it: what ``OracleSource.pyth(feed, receiver=...)`` must name."""
    update: PriceUpdateV2


SPONSORED_PROGRAMS: tuple[tuple[Pubkey, Pubkey], ...] = (
    (PUSH_ORACLE_PROGRAM_ID, RECEIVER_PROGRAM_ID),
    (PUSH_ORACLE_PROGRAM_ID_PRO, RECEIVER_PROGRAM_ID_PRO),
)
"""(push oracle, receiver) pairs whose shard accounts :func:`find_price_feed` looks at."""


async def find_price_feed(client: Client, feed_id: bytes, shard: int = 0) -> PriceFeedAccount:
    """The sponsored ``PriceUpdateV2`` account of ``feed_id`` on the client's cluster, found without any index.

    Derives the shard's address under each push-oracle program (the one Pyth ran until its 2026 upgrade and
    the upgraded one), reads both in one call, and returns the fully verified one of this feed with the newest
    ``publish_time``.  AccountNotFound when neither exists or holds this feed.
    """
    candidates = [(price_feed_address(feed_id, shard, push), receiver) for push, receiver in SPONSORED_PROGRAMS]
    accounts = await client.accounts([address for address, _ in candidates])
    found: list[PriceFeedAccount] = []
    for (address, receiver), account in zip(candidates, accounts, strict=True):
        if account is None or account.owner != receiver:
            continue
        try:
            update = PriceUpdateV2.decode(bytes(account.data))
        except PythAccountError:
            continue
        if update.feed_id == feed_id and update.is_fully_verified:
            found.append(PriceFeedAccount(address, receiver, update))
    if not found:
        also = ", ".join(str(address) for address, _ in candidates[1:])
        raise AccountNotFound(candidates[0][0], f"Pyth price feed {feed_id.hex()} (shard {shard}; also tried {also}):")
    return max(found, key=lambda f: f.update.publish_time)


def rent_exempt_lamports() -> int:
    """Lamports that make a :data:`PRICE_UPDATE_V2_LEN`-byte account rent-exempt under the default rent."""
    return Rent.default().minimum_balance(PRICE_UPDATE_V2_LEN)


# -- fixtures/accounts/pyth --------------------------------------------------------------------------
FIXTURE_PUBLISH_TIME = 1_800_000_000
"""``publish_time`` of the fixture accounts: start a localnet at this time (``--frozen-clock
--start-time 1800000000``) or travel to it for them to be fresh."""

FIXTURE_PRICES: dict[str, tuple[int, int, int]] = {
    "SOL/USD": (150_00000000, 7_500_000, -8),  # 150.00000000 +- 0.075
    "BTC/USD": (95_000_00000000, 25_00000000, -8),  # 95000.00000000 +- 25
}
"""(price, conf, exponent) of each fixture feed."""


def fixture_file_name(symbol: str) -> str:
    """``"SOL/USD"`` -> ``"sol-usd.json"``."""
    return symbol.lower().replace("/", "-") + ".json"


def fixture_accounts(receiver: Pubkey = RECEIVER_PROGRAM_ID) -> dict[str, tuple[Pubkey, Account]]:
    """The fixture feed accounts by symbol: Full ``PriceUpdateV2`` at the shard-0 sponsored addresses.

    Each is owned by ``receiver``, written by the address itself (as the push oracle's are), with
    :data:`FIXTURE_PRICES`, ``publish_time`` :data:`FIXTURE_PUBLISH_TIME` (the previous one a second
    earlier), the EMA equal to the price and ``posted_slot`` 0.
    """
    out: dict[str, tuple[Pubkey, Account]] = {}
    for symbol, (price, conf, exponent) in FIXTURE_PRICES.items():
        feed_id = FEED_IDS[symbol]
        address = price_feed_address(feed_id)
        update = PriceUpdateV2(
            write_authority=address,
            verification=FULL,
            feed_id=feed_id,
            price=price,
            conf=conf,
            exponent=exponent,
            publish_time=FIXTURE_PUBLISH_TIME,
            prev_publish_time=FIXTURE_PUBLISH_TIME - 1,
            ema_price=price,
            ema_conf=conf,
            posted_slot=0,
        )
        out[symbol] = address, Account(rent_exempt_lamports(), update.encode(), receiver, False, 0)
    return out


def write_fixture_files(directory: Path | str) -> list[Path]:
    """Write :func:`fixture_accounts` into ``directory`` as ``solana account --output json`` files
    (``sol-usd.json``, ``btc-usd.json``) that ``perpkit localnet --account-dir`` loads."""
    from perpkit.localnet.accounts import write_account_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [
        write_account_file(directory / fixture_file_name(symbol), address, account)
        for symbol, (address, account) in fixture_accounts().items()
    ]
