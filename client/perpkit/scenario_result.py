"""What a scenario run recorded: one row per time step, one per liquidation batch, and the totals.

Every amount is in atoms, as the program keeps it: prices in quote atoms per whole base unit and
sizes in base atoms (both 6 decimals: ``1_000_000`` is 1.0), quote amounts in the quote mint's atoms
(6 decimals too).  Times are the chain's unix seconds.  :meth:`ScenarioResult.as_json` and
:meth:`ScenarioResult.from_json` round-trip it, so a report can be redrawn from ``result.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

UNIT = 1_000_000
"""Atoms per whole unit of price, size and quote (6 decimals)."""


@dataclass(frozen=True)
class StepRecord:
    """The market after one time step (price set, funding applied, the crank's round done)."""

    step: int
    t: int
    """Chain time, unix seconds."""
    index_price: int
    ewma_price: int
    band_bps: int
    """The price band around the EWMA (SPEC 3): trades must fill within ``ewma · (1 ± band_bps/1e4)``."""
    mark_price: int
    """The price a marginal trade fills at: the index moved by the skew's premium."""
    oi_long: int
    oi_short: int
    funding_index_long: int
    funding_index_short: int
    pool_balance: int
    insurance_balance: int
    socialized_loss: int
    """Cumulative."""
    cranker_rewards: int
    """Cumulative."""
    positions_liquidated: int
    """Cumulative."""
    liquidated: int
    """Positions liquidated in this step."""
    open_positions: int

    @property
    def skew(self) -> int:
        return self.oi_long - self.oi_short


@dataclass(frozen=True)
class BatchRecord:
    """One ``liquidate`` that cut positions: what the event said (and the model predicted, exactly)."""

    step: int
    t: int
    signature: str
    index_price: int
    exit_price: int
    long_count: int
    short_count: int
    long_size: int
    short_size: int
    collateral: int
    equity: int
    cranker_reward: int
    insurance_credit: int
    insurance_paid: int
    socialized_loss: int
    pool_credit: int
    compute_units: int

    @property
    def count(self) -> int:
        return self.long_count + self.short_count


@dataclass
class ScenarioResult:
    name: str
    seed: int
    description: str
    runtime: str
    """What ran the program (the embedded LiteSVM and its build, or the RPC endpoint)."""
    config: dict[str, Any]
    """The scenario as loaded (TOML values, defaults filled in)."""
    steps: list[StepRecord] = field(default_factory=list)
    batches: list[BatchRecord] = field(default_factory=list)
    crash: tuple[int, int] | None = None
    """(first, last) time of the crash, when the path has one: plots shade it."""
    liquidation_prices_before: list[int] = field(default_factory=list)
    """Liquidation price of every live position just before the crash (or the path's lowest point)."""
    liquidation_prices_after: list[int] = field(default_factory=list)
    """... and of every live position at the end."""
    traders: int = 0
    longs_opened: int = 0
    shorts_opened: int = 0
    transactions: int = 0
    compute_units: int = 0
    predicted_batches: int = 0
    """Batches the reference model predicted field by field before the program ran them (all must match)."""
    idle_rounds_checked: int = 0
    """Rounds where the model predicted nothing to liquidate and the crank found nothing."""
    conservation_checks: int = 0
    """SPEC 7 checks from the accounts (vault = free + positions + insurance + pool), all held."""
    wall_seconds: float = 0.0
    simulated_seconds: int = 0

    @property
    def liquidated(self) -> int:
        return sum(b.count for b in self.batches)

    def as_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("steps", "batches")}
        data["steps"] = [asdict(s) for s in self.steps]
        data["batches"] = [asdict(b) for b in self.batches]
        data["crash"] = list(self.crash) if self.crash else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScenarioResult:
        values = dict(data)
        values["steps"] = [StepRecord(**s) for s in data["steps"]]
        values["batches"] = [BatchRecord(**b) for b in data["batches"]]
        values["crash"] = tuple(data["crash"]) if data.get("crash") else None
        return cls(**values)
