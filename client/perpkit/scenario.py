"""A declared risk scenario: a TOML file read into typed, validated settings.

The file says what to run; :mod:`perpkit.scenario_run` runs it.  Amounts are written in whole units
(``price = 100.0``, ``pool = 1_000_000``); rates and margins in basis points, as the program takes
them.  Every key is optional except ``name``; an unknown key, a wrong type or an impossible value is an
:class:`~perpkit.errors.InvalidScenario` naming the file and the key.  Example::

    name = "crash"
    seed = 7
    [market]
    initial_margin_bps = 500
    maintenance_margin_bps = 250
    pool = 2_000_000
    insurance = 20_000
    [traders]
    count = 300
    long_share = 0.6
    size = [1.0, 40.0]          # base units, log-uniform between
    leverage = [2.0, 15.0]      # notional / collateral, uniform between
    [price]
    start = 100.0
    step_seconds = 60
    hours = 6
    volatility_per_day = 0.04
    [price.crash]
    at_hours = 2.5
    drop = 0.25
    over_steps = 1              # 1: a gap, the whole drop between two oracle updates

``[price] csv = "path.csv"`` replays a path instead (``timestamp,price`` rows; the timestamps are unix
seconds or seconds from the start; relative to the scenario file).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perpkit.accounts import MarketParams
from perpkit.errors import InvalidScenario
from perpkit.risk import params_problems

_MARKET_PARAMS = {f.name for f in dataclasses.fields(MarketParams)}
_UNIT_PARAMS = {"skew_scale", "max_open_interest", "min_position_notional"}
"""MarketParams fields the file gives in whole units (the program keeps them in atoms)."""


@dataclass(frozen=True)
class MarketSpec:
    params: dict[str, int] = field(default_factory=dict)
    """MarketParams overrides, in atoms and basis points as the program takes them."""
    book_capacity: int = 1024
    pool: float = 1_000_000.0
    insurance: float = 10_000.0

    def market_params(self) -> MarketParams:
        return MarketParams(**self.params)


@dataclass(frozen=True)
class TraderSpec:
    count: int = 100
    long_share: float = 0.5
    """Fraction of the traders that go long; the rest go short."""
    size: tuple[float, float] = (1.0, 20.0)
    """Position size in base units: log-uniform between the two."""
    leverage: tuple[float, float] = (2.0, 10.0)
    """Leverage (notional / collateral): uniform between the two; must stay under 1e4 / initial_margin_bps."""
    spare: float = 0.2
    """Collateral deposited beyond the position's, as a fraction of it: it stays free."""
    open_over_steps: int = 1
    """Spread the openings over the first N steps (1: all at the first)."""


@dataclass(frozen=True)
class CrashSpec:
    at_hours: float
    drop: float
    """Fraction of the price lost (0.25: a 25% crash; negative for a spike up: -0.2 is +20%)."""
    over_steps: int = 1
    """Steps the drop takes: 1 is a gap (no oracle update in between)."""
    recover: float = 0.0
    """Fraction of the drop won back over the rest of the path, linearly."""


@dataclass(frozen=True)
class PriceSpec:
    start: float = 100.0
    step_seconds: int = 60
    hours: float = 6.0
    drift_per_day: float = 0.0
    volatility_per_day: float = 0.03
    """Standard deviation of the daily log return; each step gets its share (sqrt of time)."""
    jumps_per_day: float = 0.0
    jump_size: float = 0.02
    """Standard deviation of a jump's log return."""
    crash: CrashSpec | None = None
    csv: Path | None = None

    @property
    def steps(self) -> int:
        return max(1, round(self.hours * 3600 / self.step_seconds))


@dataclass(frozen=True)
class CrankSpec:
    every_steps: int = 1
    """A crank round every N steps (the bot runs one per price change)."""
    funding_every_steps: int = 1
    """``update_funding`` every N steps (funding also settles lazily in every trade)."""
    conservation_every_steps: int = 30
    """SPEC 7 from the accounts every N steps, after every liquidation and at the end."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    seed: int = 0
    market: MarketSpec = field(default_factory=MarketSpec)
    traders: TraderSpec = field(default_factory=TraderSpec)
    price: PriceSpec = field(default_factory=PriceSpec)
    crank: CrankSpec = field(default_factory=CrankSpec)
    source: Path | None = None
    """The file it was read from."""

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain values (for the report)."""

        def plain(value: Any) -> Any:
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, tuple):
                return list(value)
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return dict(plain(self))


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise InvalidScenario(f"cannot read the scenario {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidScenario(f"{path} is not valid TOML: {exc}") from None
    return parse_scenario(data, source=path)


def parse_scenario(data: dict[str, Any], *, source: Path | None = None) -> Scenario:
    """Check the parsed TOML ``data`` and fill in the defaults."""
    where = str(source) if source else "the scenario"
    reader = _Reader(where)
    top = reader.table(data, "", {"name", "description", "seed", "market", "traders", "price", "crank"})
    name = reader.text(top, "name", required=True)
    base = source.parent if source else Path.cwd()
    scenario = Scenario(
        name=name,
        description=reader.text(top, "description"),
        seed=reader.integer(top, "seed", 0, low=0),
        market=_market(reader, top.get("market", {})),
        traders=_traders(reader, top.get("traders", {})),
        price=_price(reader, top.get("price", {}), base),
        crank=_crank(reader, top.get("crank", {})),
        source=source,
    )
    _cross_checks(reader, scenario)
    return scenario


class _Reader:
    """Typed access to TOML values, with errors that name the file and the key."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.prefix = ""

    def fail(self, key: str, problem: str) -> InvalidScenario:
        return InvalidScenario(f"{self.where}: {self.prefix}{key}: {problem}")

    def table(self, value: Any, name: str, known: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(name or "(top)", f"must be a table, got {type(value).__name__}")
        unknown = sorted(set(value) - known)
        if unknown:
            raise InvalidScenario(
                f"{self.where}: unknown key{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(self.prefix + k for k in unknown)} (known: {', '.join(sorted(known))})"
            )
        return value

    def text(self, table: dict[str, Any], key: str, *, required: bool = False) -> str:
        if key not in table:
            if required:
                raise self.fail(key, "is required")
            return ""
        value = table[key]
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(key, f"must be a non-empty string, got {value!r}")
        return value

    def integer(self, table: dict[str, Any], key: str, default: int, *, low: int = 0, high: int = 2**63) -> int:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be an integer, got {value!r}")
        if not low <= value <= high:
            raise self.fail(key, f"must be between {low:,} and {high:,}, got {value:,}")
        return value

    def number(self, table: dict[str, Any], key: str, default: float, *, low: float = -math.inf,
               high: float = math.inf, low_open: bool = False) -> float:  # fmt: skip
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(key, f"must be a number, got {value!r}")
        if value < low or value > high or (low_open and value == low):
            bound = f"more than {low:g}" if low_open else f"at least {low:g}"
            raise self.fail(key, f"must be {bound}" + (f" and at most {high:g}" if high < math.inf else "")
                            + f", got {value:g}")  # fmt: skip
        return float(value)

    def pair(self, table: dict[str, Any], key: str, default: tuple[float, float], *, low: float) -> tuple[float, float]:
        value = table.get(key, list(default))
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):  # fmt: skip
            raise self.fail(key, f"must be [low, high], got {value!r}")
        lo, hi = float(value[0]), float(value[1])
        if not (low < lo <= hi and math.isfinite(hi)):
            raise self.fail(key, f"must be [low, high] with {low:g} < low <= high, got {value!r}")
        return lo, hi


def _market(reader: _Reader, data: Any) -> MarketSpec:
    reader.prefix = "market."
    table = reader.table(data, "market", _MARKET_PARAMS | {"book_capacity", "pool", "insurance"})
    params: dict[str, int] = {}
    for key in sorted(_MARKET_PARAMS & set(table)):
        if key in _UNIT_PARAMS:
            params[key] = round(reader.number(table, key, 0.0, low=0.0, low_open=True) * 1_000_000)
        else:
            params[key] = reader.integer(table, key, 0, low=0)
    try:
        problems = params_problems(MarketParams(**params).to_idl())  # the program's bounds
    except Exception as exc:
        problems = [str(exc)]
    if problems:
        raise InvalidScenario(f"{reader.where}: [market] parameters are not valid: {'; '.join(problems)}")
    return MarketSpec(
        params=params,
        book_capacity=reader.integer(table, "book_capacity", 1024, low=8, high=65_536),
        pool=reader.number(table, "pool", 1_000_000.0, low=0.0, low_open=True),
        insurance=reader.number(table, "insurance", 10_000.0, low=0.0),
    )


def _traders(reader: _Reader, data: Any) -> TraderSpec:
    reader.prefix = "traders."
    table = reader.table(data, "traders", {"count", "long_share", "size", "leverage", "spare", "open_over_steps"})
    return TraderSpec(
        count=reader.integer(table, "count", 100, low=1, high=10_000),
        long_share=reader.number(table, "long_share", 0.5, low=0.0, high=1.0),
        size=reader.pair(table, "size", (1.0, 20.0), low=0.0),
        leverage=reader.pair(table, "leverage", (2.0, 10.0), low=0.0),
        spare=reader.number(table, "spare", 0.2, low=0.0, high=100.0),
        open_over_steps=reader.integer(table, "open_over_steps", 1, low=1, high=10_000),
    )


def _price(reader: _Reader, data: Any, base: Path) -> PriceSpec:
    reader.prefix = "price."
    known = {"start", "step_seconds", "hours", "drift_per_day", "volatility_per_day", "jumps_per_day", "jump_size",
             "crash", "csv"}  # fmt: skip
    table = reader.table(data, "price", known)
    csv = None
    if "csv" in table:
        csv = base / reader.text(table, "csv", required=True)
        if not csv.is_file():
            raise reader.fail("csv", f"no such file: {csv}")
        generated = sorted(known & set(table) - {"csv", "step_seconds"})
        if generated:
            raise reader.fail("csv", f"a replayed path takes no {', '.join(generated)} (they generate one)")
    crash = None
    if "crash" in table:
        reader.prefix = "price.crash."
        c = reader.table(table["crash"], "price.crash", {"at_hours", "drop", "over_steps", "recover"})
        if "at_hours" not in c or "drop" not in c:
            raise reader.fail("", "needs at_hours and drop")
        if c["drop"] == 0:
            raise reader.fail("drop", "must not be 0 (0.25 is a 25% fall, -0.2 a 20% spike up)")
        crash = CrashSpec(
            at_hours=reader.number(c, "at_hours", 0.0, low=0.0),
            drop=reader.number(c, "drop", 0.0, low=-4.0, high=0.95),
            over_steps=reader.integer(c, "over_steps", 1, low=1, high=100_000),
            recover=reader.number(c, "recover", 0.0, low=0.0, high=1.0),
        )
        reader.prefix = "price."
    return PriceSpec(
        start=reader.number(table, "start", 100.0, low=0.000001, high=1e9),
        step_seconds=reader.integer(table, "step_seconds", 60, low=1, high=86_400),
        hours=reader.number(table, "hours", 6.0, low=0.0, high=24.0 * 365, low_open=True),
        drift_per_day=reader.number(table, "drift_per_day", 0.0, low=-1.0, high=1.0),
        volatility_per_day=reader.number(table, "volatility_per_day", 0.03, low=0.0, high=2.0),
        jumps_per_day=reader.number(table, "jumps_per_day", 0.0, low=0.0, high=1_000.0),
        jump_size=reader.number(table, "jump_size", 0.02, low=0.0, high=1.0),
        crash=crash,
        csv=csv,
    )


def _crank(reader: _Reader, data: Any) -> CrankSpec:
    reader.prefix = "crank."
    table = reader.table(data, "crank", {"every_steps", "funding_every_steps", "conservation_every_steps"})
    return CrankSpec(
        every_steps=reader.integer(table, "every_steps", 1, low=1, high=100_000),
        funding_every_steps=reader.integer(table, "funding_every_steps", 1, low=1, high=100_000),
        conservation_every_steps=reader.integer(table, "conservation_every_steps", 30, low=1, high=100_000),
    )


def _cross_checks(reader: _Reader, scenario: Scenario) -> None:
    reader.prefix = ""
    params = scenario.market.market_params()
    most = 10_000 / params.initial_margin_bps
    if scenario.traders.leverage[1] >= most:
        raise reader.fail("traders.leverage", f"the highest, {scenario.traders.leverage[1]:g}x, is not under "
                          f"the market's {most:g}x (initial_margin_bps {params.initial_margin_bps})")  # fmt: skip
    if scenario.traders.count > scenario.market.book_capacity:
        raise reader.fail("traders.count", f"{scenario.traders.count} positions do not fit a book of "
                          f"{scenario.market.book_capacity} (market.book_capacity)")  # fmt: skip
    crash = scenario.price.crash
    if crash is not None and scenario.price.csv is None and crash.at_hours >= scenario.price.hours:
        raise reader.fail("price.crash.at_hours", f"{crash.at_hours:g} is not within the path's "
                          f"{scenario.price.hours:g} hours")  # fmt: skip
