"""The plots of a scenario report: one PNG per function, drawn from a :class:`ScenarioResult`.

Each ``plot_*`` function draws one figure with matplotlib's Agg canvas (a ``Figure`` and a
``FigureCanvasAgg``, never pyplot: no global state, no window, safe from threads) and writes it to
``path``.  matplotlib is imported inside the functions, so ``import perpkit.plots`` stays cheap; when
it is not installed they raise :class:`perpkit.errors.MissingDependency` saying how to install it.

The time axis is hours since the first recorded step; the crash window is shaded when the result has
one.  Amounts are drawn in whole units (atoms / :data:`~perpkit.scenario_result.UNIT`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from perpkit.errors import MissingDependency
from perpkit.scenario_result import UNIT, ScenarioResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FUNDING_SCALE = 1_000_000
"""``FS``: funding index units per quote atom per whole base unit (docs/risk-engine.md)."""

WIDTH_IN, HEIGHT_IN, DPI = 12.0, 6.0, 100
"""Every plot is 1200 x 600 pixels."""

MISSING_MATPLOTLIB = "plots need matplotlib: pip install 'perpkit[plots]'"

COLOURS = {
    "index": "#1f77b4",
    "mark": "#ff7f0e",
    "ewma": "#2ca02c",
    "long": "#2ca02c",
    "short": "#d62728",
    "batch": "#d62728",
    "reward": "#9467bd",
    "pool": "#1f77b4",
    "insurance": "#2ca02c",
    "loss": "#d62728",
    "before": "#1f77b4",
    "after": "#ff7f0e",
    "crash": "#d62728",
}


# -- helpers ----------------------------------------------------------------------------------------


def _new_figure() -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - the test venvs have matplotlib
        raise MissingDependency(MISSING_MATPLOTLIB) from exc
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import numpy as np

    # The first layout of a process sometimes has matplotlib's tick locator divide numpy scalars on a
    # not-yet-set axis (a RuntimeWarning on stderr, "invalid value encountered in scalar floor_divide",
    # seen after a LiteSVM run); the figure drawn is the same. Silence numpy's warning for this call only.
    with np.errstate(invalid="ignore", divide="ignore"):
        figure.savefig(path, format="png", dpi=DPI)
    return path


def start_time(result: ScenarioResult) -> int:
    """The time the plots count hours from: the first step's (or batch's) time."""
    if result.steps:
        return result.steps[0].t
    if result.batches:
        return result.batches[0].t
    return result.crash[0] if result.crash else 0


def _hours_fn(result: ScenarioResult) -> Callable[[int], float]:
    t0 = start_time(result)
    return lambda t: (t - t0) / 3600


def _step_hours(result: ScenarioResult) -> list[float]:
    hours = _hours_fn(result)
    return [hours(s.t) for s in result.steps]


def _span_hours(result: ScenarioResult) -> float:
    hours = _hours_fn(result)
    times = [s.t for s in result.steps] + [b.t for b in result.batches]
    return max((hours(t) for t in times), default=0.0)


def _units(atoms: int) -> float:
    return atoms / UNIT


def _marker(points: Sequence[object]) -> str | None:
    """A marker for a series too short to be seen as a line."""
    return "o" if len(points) < 3 else None


def _shade_crash(result: ScenarioResult, axes: Sequence[Axes], *, label: bool = True) -> None:
    if result.crash is None:
        return
    hours = _hours_fn(result)
    first, last = hours(result.crash[0]), hours(result.crash[1])
    minimum = max(_span_hours(result), 1.0) * 0.004  # a one-step gap is still visible
    if last - first < minimum:
        middle = (first + last) / 2
        first, last = middle - minimum / 2, middle + minimum / 2
    for n, ax in enumerate(axes):
        ax.axvspan(first, last, color=COLOURS["crash"], alpha=0.12, label="crash" if label and n == 0 else None)


def _note(ax: Axes, text: str) -> None:
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=14,
        color="0.4",
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.7"},
    )


def _legend(ax: Axes, loc: Literal["best", "upper right", "upper left"] = "best") -> None:
    """A legend, when the axes have something labelled."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc=loc, fontsize=10)


def _time_axis(ax: Axes, result: ScenarioResult) -> None:
    ax.set_xlabel("time since start (hours)")
    span = _span_hours(result)
    if span > 0:
        ax.set_xlim(-span * 0.01, span * 1.01)
    ax.grid(True, alpha=0.3)


def _title(figure: Figure, result: ScenarioResult, what: str) -> None:
    figure.suptitle(f"{what} — {result.name} (seed {result.seed})", fontsize=14)


# -- the plots --------------------------------------------------------------------------------------


def plot_prices(result: ScenarioResult, path: Path) -> Path:
    """Index price, mark, EWMA and the band around it (EWMA ± band_bps), with the liquidation batches."""
    figure = _new_figure()
    ax = figure.add_subplot()
    steps = result.steps
    x = _step_hours(result)
    if steps:
        ewma = [_units(s.ewma_price) for s in steps]
        low = [_units(s.ewma_price) * (1 - s.band_bps / 10_000) for s in steps]
        high = [_units(s.ewma_price) * (1 + s.band_bps / 10_000) for s in steps]
        if len(steps) == 1:  # a band of one point: a bar from its low to its high
            ax.vlines(x, low, high, color=COLOURS["ewma"], alpha=0.4, linewidth=12)
        bps = sorted({s.band_bps for s in steps})
        band_label = f"band: EWMA ± {bps[0] / 100:g}%" if len(bps) == 1 else "band: EWMA ± band_bps"
        ax.fill_between(x, low, high, color=COLOURS["ewma"], alpha=0.15, step="post", label=band_label)
        marker = _marker(steps)
        ax.plot(x, ewma, color=COLOURS["ewma"], linestyle="--", linewidth=1.2, marker=marker, label="EWMA")
        ax.plot(
            x, [_units(s.mark_price) for s in steps], color=COLOURS["mark"], linewidth=1.2, marker=marker, label="mark"
        )
        ax.plot(
            x,
            [_units(s.index_price) for s in steps],
            color=COLOURS["index"],
            linewidth=2,
            drawstyle="steps-post",
            marker=marker,
            label="index (oracle)",
        )
    else:
        _note(ax, "no steps recorded")
    if result.batches:
        hours = _hours_fn(result)
        ax.scatter(
            [hours(b.t) for b in result.batches],
            [_units(b.index_price) for b in result.batches],
            marker="v",
            s=70,
            color=COLOURS["batch"],
            edgecolors="black",
            linewidths=0.6,
            zorder=5,
            label=f"liquidation batch ({len(result.batches)})",
        )
    elif steps:
        ax.text(0.99, 0.02, "no liquidations", transform=ax.transAxes, ha="right", va="bottom", color="0.4")
    _shade_crash(result, [ax])
    _time_axis(ax, result)
    ax.set_ylabel("price (quote per base unit)")
    _legend(ax)
    _title(figure, result, "Index price, mark and EWMA band")
    return _save(figure, path)


def plot_open_interest(result: ScenarioResult, path: Path) -> Path:
    """Open interest long and short (base units) and the skew (long - short) below it."""
    figure = _new_figure()
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    steps = result.steps
    x = _step_hours(result)
    if steps:
        marker = _marker(steps)
        top.plot(x, [_units(s.oi_long) for s in steps], color=COLOURS["long"], marker=marker, label="long OI")
        top.plot(x, [_units(s.oi_short) for s in steps], color=COLOURS["short"], marker=marker, label="short OI")
        skew = [_units(s.skew) for s in steps]
        bottom.plot(x, skew, color="black", linewidth=1.2, marker=marker, label="skew (long - short)")
        bottom.fill_between(x, skew, 0, where=[v >= 0 for v in skew], color=COLOURS["long"], alpha=0.25)
        bottom.fill_between(x, skew, 0, where=[v < 0 for v in skew], color=COLOURS["short"], alpha=0.25)
        bottom.axhline(0, color="0.3", linewidth=0.8)
        top.set_ylim(bottom=0)
    else:
        _note(top, "no steps recorded")
    _shade_crash(result, [top, bottom])
    top.set_ylabel("open interest (base units)")
    bottom.set_ylabel("skew (base units)")
    top.grid(True, alpha=0.3)
    _legend(top)
    _legend(bottom)
    _time_axis(bottom, result)
    _title(figure, result, "Open interest and skew")
    return _save(figure, path)


def _batch_ticks(result: ScenarioResult) -> tuple[list[int], list[str]]:
    """Tick positions and labels of the per-batch axis: the batch's number and its time, at most ~16 of them."""
    hours = _hours_fn(result)
    n = len(result.batches)
    every = max(1, math.ceil(n / 16))
    ticks = list(range(0, n, every))
    return ticks, [f"#{i + 1}\n{hours(result.batches[i].t):.2f} h" for i in ticks]


def plot_liquidations(result: ScenarioResult, path: Path) -> Path:
    """Per batch: positions liquidated (longs and shorts stacked) and the cranker's reward; below, both over time.

    The top panel has one bar per batch in the order they ran, labelled with the batch's time: batches minutes
    apart in an hours-long run would be slivers on a time axis.  Bars of batches in the crash window are
    outlined in red.  The bottom panel is on the time axis: cumulative positions liquidated and rewards.
    """
    figure = _new_figure()
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 2])
    batches = result.batches
    if batches:
        x = list(range(len(batches)))
        longs = [b.long_count for b in batches]
        shorts = [b.short_count for b in batches]
        in_crash = [result.crash is not None and result.crash[0] <= b.t <= result.crash[1] for b in batches]
        edges = [COLOURS["crash"] if c else "none" for c in in_crash]
        width = 0.8 if len(batches) > 1 else 0.4
        top.bar(x, longs, width=width, color=COLOURS["long"], edgecolor=edges, linewidth=1.5, label="longs")
        top.bar(
            x, shorts, width=width, bottom=longs, color=COLOURS["short"], edgecolor=edges, linewidth=1.5, label="shorts"
        )
        top.set_ylim(0, max(b.count for b in batches) * 1.3)
        top.set_xlim(-0.7, max(len(batches), 4) - 0.3)
        ticks, labels = _batch_ticks(result)
        top.set_xticks(ticks, labels, fontsize=9)
        top.set_xlabel("liquidation batch (number, time since start)")
        rewards = top.twinx()
        rewards.plot(
            x,
            [_units(b.cranker_reward) for b in batches],
            color=COLOURS["reward"],
            marker="D",
            linestyle="none" if len(batches) > 40 else ":",
            label="cranker reward",
        )
        rewards.set_ylabel("reward per batch (quote)")
        rewards.set_ylim(0, max(_units(b.cranker_reward) for b in batches) * 1.3 or 1.0)
        handles, names = top.get_legend_handles_labels()
        more_handles, more_names = rewards.get_legend_handles_labels()
        if any(in_crash):
            from matplotlib.patches import Patch

            handles.append(Patch(facecolor="none", edgecolor=COLOURS["crash"], linewidth=1.5))
            names.append("in the crash window")
        top.legend(handles + more_handles, names + more_names, loc="upper left", fontsize=10)
        top.text(
            0.99,
            0.95,
            f"{sum(longs) + sum(shorts):,} positions in {len(batches):,} batches "
            f"(biggest {max(b.count for b in batches):,}); cranker earned "
            f"{sum(_units(b.cranker_reward) for b in batches):,.2f}",
            transform=top.transAxes,
            ha="right",
            va="top",
            fontsize=11,
        )

        hours = _hours_fn(result)
        if result.steps:
            cx = _step_hours(result)
            counts = [s.positions_liquidated for s in result.steps]
            paid = [_units(s.cranker_rewards) for s in result.steps]
        else:
            cx = [hours(b.t) for b in batches]
            counts = [sum(b.count for b in batches[: i + 1]) for i in range(len(batches))]
            paid = [sum(_units(b.cranker_reward) for b in batches[: i + 1]) for i in range(len(batches))]
        marker = _marker(cx)
        bottom.plot(cx, counts, color="black", drawstyle="steps-post", marker=marker, label="positions liquidated")
        bottom.set_ylim(0, max(max(counts), 1) * 1.15)
        cumulative = bottom.twinx()
        cumulative.plot(
            cx, paid, color=COLOURS["reward"], drawstyle="steps-post", marker=marker, label="cranker rewards (quote)"
        )
        cumulative.set_ylim(0, max(max(paid), 1e-6) * 1.15)
        cumulative.set_ylabel("rewards, cumulative (quote)")
        handles, names = bottom.get_legend_handles_labels()
        more_handles, more_names = cumulative.get_legend_handles_labels()
        bottom.legend(handles + more_handles, names + more_names, loc="lower right", fontsize=10)
    else:
        _note(top, "no liquidations")
        _note(bottom, "no cranker rewards")
        top.set_xticks([])
    _shade_crash(result, [bottom], label=False)
    top.set_ylabel("positions liquidated")
    bottom.set_ylabel("positions, cumulative")
    top.grid(True, axis="y", alpha=0.3)
    _time_axis(bottom, result)
    _title(figure, result, "Liquidation batches and cranker rewards")
    return _save(figure, path)


def _thousands(ax: Axes) -> None:
    """Plain tick labels with thousands separators on the y axis (no offset, no scientific notation)."""
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(
        FuncFormatter(lambda value, _: f"{value:,.0f}" if value == int(value) else f"{value:,.2f}")
    )


def plot_balances(result: ScenarioResult, path: Path) -> Path:
    """The pool, the insurance fund and the cumulative socialised loss, each on its own panel (quote units)."""
    figure = _new_figure()
    pool_ax, insurance_ax, loss_ax = figure.subplots(3, 1, sharex=True)
    steps = result.steps
    x = _step_hours(result)
    panels = (
        (pool_ax, "pool_balance", "pool", "pool", "pool (quote)"),
        (insurance_ax, "insurance_balance", "insurance", "insurance fund", "insurance (quote)"),
        (loss_ax, "socialized_loss", "loss", "socialised loss, cumulative", "loss (quote)"),
    )
    for ax, attribute, colour, label, ylabel in panels:
        if steps:
            values = [_units(getattr(s, attribute)) for s in steps]
            ax.plot(x, values, color=COLOURS[colour], linewidth=2, marker=_marker(steps), label=label)
            if attribute != "pool_balance":
                ax.set_ylim(0, max(max(values), 1.0) * 1.15)
            _thousands(ax)
            ax.legend(loc="best", fontsize=10)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    if not steps:
        _note(pool_ax, "no steps recorded")
    elif not any(s.socialized_loss for s in steps):
        _note(loss_ax, "no loss socialised")
    _shade_crash(result, [pool_ax, insurance_ax, loss_ax], label=False)
    _time_axis(loss_ax, result)
    _title(figure, result, "Pool, insurance fund and socialised loss")
    return _save(figure, path)


def plot_funding(result: ScenarioResult, path: Path) -> Path:
    """Each side's cumulative funding index, as funding paid per whole base unit of size since the start."""
    figure = _new_figure()
    ax = figure.add_subplot()
    steps = result.steps
    x = _step_hours(result)
    scale = FUNDING_SCALE * UNIT  # index units per quote unit per base unit
    if steps:
        marker = _marker(steps)
        long0, short0 = steps[0].funding_index_long, steps[0].funding_index_short
        ax.plot(
            x,
            [(s.funding_index_long - long0) / scale for s in steps],
            color=COLOURS["long"],
            linewidth=2,
            marker=marker,
            label="long index",
        )
        ax.plot(
            x,
            [(s.funding_index_short - short0) / scale for s in steps],
            color=COLOURS["short"],
            linewidth=2,
            marker=marker,
            label="short index",
        )
        ax.axhline(0, color="0.3", linewidth=0.8)
        ax.text(
            0.01,
            0.02,
            "rising: the side pays funding; falling: it receives.  "
            "A position of s base units owes s·Δindex quote (index units / 1e12).",
            transform=ax.transAxes,
            fontsize=9,
            color="0.3",
        )
    else:
        _note(ax, "no steps recorded")
    _shade_crash(result, [ax])
    _time_axis(ax, result)
    ax.set_ylabel("funding index since start\n(quote per base unit of size)")
    _legend(ax)
    _title(figure, result, "Funding indices")
    return _save(figure, path)


def crash_prices(result: ScenarioResult) -> tuple[int, int] | None:
    """(index price when the crash starts, its extreme: the lowest price of a fall, the highest of a spike).

    ``result.crash`` runs from the last price before the crash to its bottom (``perpkit.price_path``), so the
    first price is the one at its start and the extreme is taken over the steps after it up to its end.
    Without a crash: (the first price, the lowest).  None without steps.
    """
    steps = result.steps
    if not steps:
        return None
    if result.crash is None:
        return steps[0].index_price, min(s.index_price for s in steps)
    first, last = result.crash
    before = [s.index_price for s in steps if s.t <= first]
    pre = before[-1] if before else steps[0].index_price
    inside = [s.index_price for s in steps if first < s.t <= last] or [s.index_price for s in steps if s.t > first]
    if not inside:
        return pre, pre
    low, high = min(inside), max(inside)
    return pre, high if high - pre > pre - low else low


def plot_liquidation_prices(result: ScenarioResult, path: Path) -> Path:
    """Histograms of the live positions' liquidation prices before and after the crash, on the same bins."""
    import numpy as np

    figure = _new_figure()
    ax = figure.add_subplot()
    before = [_units(p) for p in result.liquidation_prices_before]
    after = [_units(p) for p in result.liquidation_prices_after]
    prices = crash_prices(result)
    lines = [_units(p) for p in prices] if prices else []
    if before or after:
        edges = [float(e) for e in np.histogram_bin_edges(np.array(before + after + lines, dtype=float), bins=60)]
        for values, key, label in ((before, "before", "before the crash"), (after, "after", "at the end")):
            if values:
                ax.hist(values, bins=edges, color=COLOURS[key], alpha=0.45, label=f"{label} ({len(values):,})")
                ax.hist(values, bins=edges, color=COLOURS[key], histtype="step", linewidth=1.5)
            else:
                ax.plot([], [], color=COLOURS[key], label=f"{label}: none")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.15)  # room for the note above the bars
    else:
        _note(ax, "no liquidation prices recorded")
    if prices:
        pre, low = (_units(p) for p in prices)
        word = ("crash high" if low > pre else "crash low") if result.crash else "path low"
        start = "pre-crash" if result.crash else "starting"
        ax.axvline(pre, color="black", linestyle="--", linewidth=1.5, label=f"{start} index {pre:,.2f}")
        ax.axvline(low, color=COLOURS["crash"], linewidth=2, label=f"{word} {low:,.2f}")
        ax.axvspan(min(pre, low), max(pre, low), color=COLOURS["crash"], alpha=0.07)
        if before and pre != low:
            cut = sum(1 for p in before if min(pre, low) <= p <= max(pre, low))
            ax.text(
                0.01,
                0.97,
                f"{cut:,} of {len(before):,} liquidation prices lay between {low:,.2f} and {pre:,.2f}",
                transform=ax.transAxes,
                ha="left",
                va="top",
                fontsize=11,
            )
    ax.margins(x=0.05)
    ax.set_xlabel("liquidation price (quote per base unit)")
    ax.set_ylabel("positions")
    ax.grid(True, alpha=0.3)
    _legend(ax, "upper right")
    _title(figure, result, "Liquidation prices before and after the crash")
    return _save(figure, path)


PLOTS: dict[str, Callable[[ScenarioResult, Path], Path]] = {
    "prices.png": plot_prices,
    "open_interest.png": plot_open_interest,
    "liquidations.png": plot_liquidations,
    "balances.png": plot_balances,
    "funding.png": plot_funding,
    "liquidation_prices.png": plot_liquidation_prices,
}
"""File name → the function that draws it, in the report's order."""

CAPTIONS = {
    "prices.png": "Index price, mark and EWMA with its band; triangles mark liquidation batches.",
    "open_interest.png": "Open interest long and short, and the skew between them.",
    "liquidations.png": "Positions liquidated per batch (longs and shorts stacked) and the cranker's rewards.",
    "balances.png": "The pool, the insurance fund and the cumulative socialised loss.",
    "funding.png": "Each side's cumulative funding index, as quote per base unit of size.",
    "liquidation_prices.png": "Liquidation prices of the live positions before and after the crash.",
}


def plot_all(result: ScenarioResult, folder: Path) -> list[Path]:
    """Draw every plot into ``folder``; the paths, in :data:`PLOTS` order."""
    return [draw(result, Path(folder) / name) for name, draw in PLOTS.items()]
