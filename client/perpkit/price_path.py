"""Price paths for scenarios: generated from a seed (drift, volatility, jumps, a crash) or replayed from CSV.

A path is a list of :class:`PricePoint` (seconds from the start, price in atoms), one per oracle
update.  Generation is a geometric random walk on a ``numpy.random.Generator`` seeded by the scenario:
the same seed gives the same path, byte for byte.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perpkit.errors import InvalidScenario
from perpkit.scenario import PriceSpec

UNIT = 1_000_000
DAY = 86_400


@dataclass(frozen=True)
class PricePoint:
    offset: int
    """Seconds from the start of the path."""
    price: int
    """Quote atoms per whole base unit (6 decimals)."""


@dataclass(frozen=True)
class PricePath:
    points: list[PricePoint]
    crash: tuple[int, int] | None = None
    """(first, last) offset of the crash, when the path has one."""

    @property
    def seconds(self) -> int:
        return self.points[-1].offset - self.points[0].offset


def price_path(spec: PriceSpec, rng: np.random.Generator) -> PricePath:
    """The path ``spec`` declares: replayed from its CSV, or generated from ``rng``."""
    if spec.csv is not None:
        return read_csv(spec.csv)
    return generate(spec, rng)


def generate(spec: PriceSpec, rng: np.random.Generator) -> PricePath:
    steps = spec.steps
    dt = spec.step_seconds / DAY
    sigma = spec.volatility_per_day * math.sqrt(dt)
    mu = (spec.drift_per_day - spec.volatility_per_day**2 / 2) * dt
    returns = rng.normal(mu, sigma, steps) if sigma > 0 else np.full(steps, mu)
    if spec.jumps_per_day > 0:
        jumps = rng.poisson(spec.jumps_per_day * dt, steps)
        returns += jumps * rng.normal(0.0, spec.jump_size, steps)
    crash_window = None
    if spec.crash is not None:
        c = spec.crash
        first = min(steps - 1, max(0, round(c.at_hours * 3600 / spec.step_seconds)))
        last = min(steps - 1, first + c.over_steps - 1)
        span = last - first + 1
        returns[first : last + 1] += math.log(1 - c.drop) / span
        if c.recover > 0 and last + 1 < steps:
            back = -math.log(1 - c.drop) * c.recover / (steps - last - 1)
            returns[last + 1 :] += back
        # the crash runs from the last price before it to its bottom
        crash_window = ((first) * spec.step_seconds, (last + 1) * spec.step_seconds)
    log_prices = math.log(spec.start) + np.concatenate(([0.0], np.cumsum(returns)))
    prices = np.maximum(np.round(np.exp(log_prices) * UNIT), 1).astype(np.int64)
    points = [PricePoint(i * spec.step_seconds, int(p)) for i, p in enumerate(prices)]
    return PricePath(points, crash_window)


def read_csv(path: Path) -> PricePath:
    """``timestamp,price`` rows (a header line is allowed): timestamps strictly increasing, in unix seconds
    or seconds from the start; prices positive, in whole quote units.  The steepest fall over any 15-minute
    window is marked as the crash when it exceeds 10%."""
    rows: list[tuple[float, float]] = []
    try:
        with path.open(newline="") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                if not row or row[0].startswith("#"):
                    continue
                if len(row) < 2:
                    raise InvalidScenario(f"{path}:{number}: want timestamp,price, got {','.join(row)!r}")
                try:
                    rows.append((float(row[0]), float(row[1])))
                except ValueError:
                    if number == 1 or not rows:  # a header
                        continue
                    raise InvalidScenario(f"{path}:{number}: not numbers: {','.join(row)!r}") from None
    except OSError as exc:
        raise InvalidScenario(f"cannot read the price path {path}: {exc.strerror or exc}") from None
    if len(rows) < 2:
        raise InvalidScenario(f"{path}: a path needs at least two rows, found {len(rows)}")
    start = rows[0][0]
    points: list[PricePoint] = []
    for i, (t, price) in enumerate(rows):
        if not (math.isfinite(price) and price > 0):
            raise InvalidScenario(f"{path}: row {i + 1}: price {price:g} is not positive")
        offset = round(t - start)
        if points and offset <= points[-1].offset:
            raise InvalidScenario(f"{path}: row {i + 1}: timestamps must increase ({t:g} after {rows[i - 1][0]:g})")
        points.append(PricePoint(offset, max(1, round(price * UNIT))))
    return PricePath(points, _steepest_fall(points))


def _steepest_fall(points: list[PricePoint], window: int = 900, threshold: float = 0.10) -> tuple[int, int] | None:
    best: tuple[float, int, int] | None = None
    j = 0
    for i, start in enumerate(points):
        j = max(j, i)
        while j + 1 < len(points) and points[j + 1].offset - start.offset <= window:
            j += 1
        lowest = min(range(i, j + 1), key=lambda k: points[k].price)
        fall = 1 - points[lowest].price / start.price
        if fall > threshold and (best is None or fall > best[0]):
            best = (fall, start.offset, points[lowest].offset)
    return None if best is None else (best[1], best[2])
