"""The report of a scenario run: a folder with the result, a summary (Markdown and JSON) and the plots.

:func:`write_report` writes ``result.json`` (the whole :class:`ScenarioResult`), ``summary.json`` (the
key figures, for machines), ``summary.md`` (a short human report with the plots embedded) and the PNG
plots of :mod:`perpkit.plots`.  :func:`redraw` rebuilds everything from ``result.json``;
:func:`summary_text` is what the terminal prints at the end of a run.

Amounts in ``summary.json`` are atoms (integers, 6 decimals: :data:`~perpkit.scenario_result.UNIT`),
as in ``result.json``; the Markdown and the terminal show whole units.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from perpkit.errors import InvalidInput
from perpkit.plots import CAPTIONS, FUNDING_SCALE, crash_prices, plot_all
from perpkit.scenario_result import UNIT, ScenarioResult

RESULT_JSON = "result.json"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"


@dataclass(frozen=True)
class Report:
    """The files :func:`write_report` wrote."""

    folder: Path
    summary_md: Path
    summary_json: Path
    result_json: Path
    plots: list[Path] = field(default_factory=list)


# -- figures ----------------------------------------------------------------------------------------


def amount(atoms: int | None, decimals: int = 2) -> str:
    """Atoms as whole units with thousands separators: ``1234567890`` → ``"1,234.57"``."""
    if atoms is None:
        return "—"
    return f"{atoms / UNIT:,.{decimals}f}"


def price(atoms: int | None) -> str:
    """A price: 2 decimals, more when it is below 1.0 so it never reads 0.00."""
    if atoms is None:
        return "—"
    return amount(atoms, 2 if abs(atoms) >= UNIT or atoms == 0 else 6)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def _crash_figures(result: ScenarioResult) -> dict[str, Any]:
    """The crash as the index saw it: its price at the start and at the extreme, the move, the steps, its gap.

    ``drop_pct`` is positive for a fall and negative for a spike up.  ``gap`` says the biggest one-step move
    went past the price band (no fill could happen in between).
    """
    prices = crash_prices(result)
    if result.crash is None or prices is None:
        return {"crash": None}
    pre, extreme = prices
    first, last = result.crash
    steps = result.steps
    window = [(a, b) for a, b in pairwise(steps) if first < b.t <= last]
    largest, band = 0, 0
    for before, after in window:
        move = abs(after.index_price - before.index_price)
        if move > largest:
            largest, band = move, before.band_bps
    largest_pct = 100 * largest / pre if pre else 0.0
    return {
        "crash": {
            "start_t": first,
            "end_t": last,
            "steps": max(len(window), 1),
            "pre_crash_price": pre,
            "low_price": extreme,
            "drop_pct": round(100 * (pre - extreme) / pre, 4) if pre else 0.0,
            "largest_step_move_pct": round(largest_pct, 4),
            "gap": largest_pct * 100 > band > 0,
        }
    }


def _funding_paid(result: ScenarioResult) -> int:
    """Funding the paying sides owed over the run, in quote atoms, from the indices and the open interest.

    A side pays when its index rises: ``OI · Δidx / (B · FS)`` per step, with the open interest of the
    step before (the one the funding accrued on).  Positions settle with their own rounding, so the
    accounts may differ from this by an atom per position and settlement.
    """
    paid = 0
    for before, after in pairwise(result.steps):
        paid += max(after.funding_index_long - before.funding_index_long, 0) * before.oi_long
        paid += max(after.funding_index_short - before.funding_index_short, 0) * before.oi_short
    return paid // (UNIT * FUNDING_SCALE)


def key_figures(result: ScenarioResult, plots: list[Path] | None = None) -> dict[str, Any]:
    """The totals and key figures of a run: what ``summary.json`` holds (amounts in atoms)."""
    steps, batches = result.steps, result.batches
    index = [s.index_price for s in steps]
    insurance = [s.insurance_balance for s in steps]
    figures: dict[str, Any] = {
        "name": result.name,
        "seed": result.seed,
        "runtime": result.runtime,
        "atoms_per_unit": UNIT,
        "traders": result.traders,
        "longs_opened": result.longs_opened,
        "shorts_opened": result.shorts_opened,
        "positions_liquidated": result.liquidated,
        "longs_liquidated": sum(b.long_count for b in batches),
        "shorts_liquidated": sum(b.short_count for b in batches),
        "batches": len(batches),
        "biggest_batch": max((b.count for b in batches), default=0),
        "cranker_rewards": sum(b.cranker_reward for b in batches),
        "insurance_start": insurance[0] if insurance else None,
        "insurance_end": insurance[-1] if insurance else None,
        "insurance_min": min(insurance) if insurance else None,
        "insurance_paid": sum(b.insurance_paid for b in batches),
        "insurance_credit": sum(b.insurance_credit for b in batches),
        "pool_start": steps[0].pool_balance if steps else None,
        "pool_end": steps[-1].pool_balance if steps else None,
        "socialized_loss": sum(b.socialized_loss for b in batches),
        "lowest_index_price": min(index) if index else None,
        "highest_index_price": max(index) if index else None,
        **_crash_figures(result),
        "funding_paid": _funding_paid(result),
        "open_positions_end": steps[-1].open_positions if steps else None,
        "transactions": result.transactions,
        "compute_units": result.compute_units,
        "predicted_batches": result.predicted_batches,
        "idle_rounds_checked": result.idle_rounds_checked,
        "conservation_checks": result.conservation_checks,
        "wall_seconds": round(result.wall_seconds, 3),
        "simulated_hours": round(result.simulated_seconds / 3600, 4),
        "steps": len(steps),
        "plots": [p.name for p in plots or []],
    }
    return figures


# -- words ------------------------------------------------------------------------------------------


def _what_happened(result: ScenarioResult, figures: dict[str, Any]) -> list[str]:
    """The run in plain sentences."""
    sentences = []
    crash = figures["crash"]
    if crash is not None:
        if crash["steps"] == 1:
            how = "in one step, a gap" if crash["gap"] else "in one step"
        else:
            how = f"over {crash['steps']:,} steps"
            if crash["gap"]:
                how += f", with a gap of {crash['largest_step_move_pct']:.2f}% in one step"
        verb = "fell" if crash["drop_pct"] >= 0 else "rose"
        sentences.append(
            f"the index {verb} {abs(crash['drop_pct']):.2f}% from {price(crash['pre_crash_price'])} "
            f"to {price(crash['low_price'])} {how}"
        )
    elif figures["lowest_index_price"] is not None:
        sentences.append(
            f"the index moved between {price(figures['lowest_index_price'])} "
            f"and {price(figures['highest_index_price'])}, without a crash"
        )
    opened = result.longs_opened + result.shorts_opened
    if figures["batches"]:
        sentences.append(
            f"{figures['positions_liquidated']:,} of {opened:,} positions were liquidated "
            f"in {_plural(figures['batches'], 'batch', 'batches')} "
            f"({figures['longs_liquidated']:,} long, {figures['shorts_liquidated']:,} short; "
            f"the biggest {figures['biggest_batch']:,})"
        )
        sentences.append(f"the cranker earned {amount(figures['cranker_rewards'])}")
    else:
        sentences.append(f"none of the {opened:,} positions was liquidated")
    if figures["insurance_start"] is not None:
        low = ""
        if figures["insurance_min"] < min(figures["insurance_start"], figures["insurance_end"]):
            low = f" (its lowest {amount(figures['insurance_min'])})"
        sentences.append(
            f"the insurance fund went from {amount(figures['insurance_start'])} "
            f"to {amount(figures['insurance_end'])}{low}"
        )
    if figures["socialized_loss"]:
        sentences.append(f"{amount(figures['socialized_loss'])} of loss was socialised")
    else:
        sentences.append("no loss was socialised")
    return sentences


def paragraph(result: ScenarioResult, figures: dict[str, Any] | None = None) -> str:
    """One paragraph saying what happened, in plain words."""
    figures = figures or key_figures(result)
    sentences = _what_happened(result, figures)
    text = "; ".join(sentences)
    hours = figures["simulated_hours"]
    return (
        f"Over {hours:,.2f} simulated hours with {result.traders:,} traders, {text[0].lower()}{text[1:]}. "
        f"The reference model predicted {_plural(figures['predicted_batches'], 'batch', 'batches')} field by field "
        f"before the program ran them, {_plural(figures['idle_rounds_checked'], 'idle round')} found nothing to "
        f"liquidate as predicted, and {_plural(figures['conservation_checks'], 'conservation check')} held."
    )


def _table(figures: dict[str, Any]) -> list[str]:
    crash = figures["crash"]
    rows: list[tuple[str, str]] = [
        ("runtime", figures["runtime"]),
        ("seed", str(figures["seed"])),
        ("traders", f"{figures['traders']:,}"),
        ("positions opened", f"{figures['longs_opened']:,} long, {figures['shorts_opened']:,} short"),
        ("index price", f"{price(figures['lowest_index_price'])} to {price(figures['highest_index_price'])}"),
    ]
    if crash is not None:
        rows += [
            (
                "crash",
                f"{-crash['drop_pct']:+.2f}% in {_plural(crash['steps'], 'step')}: "
                f"{price(crash['pre_crash_price'])} → {price(crash['low_price'])}",
            ),
            ("largest one-step move", f"{crash['largest_step_move_pct']:.2f}%{' (a gap)' if crash['gap'] else ''}"),
        ]
    rows += [
        (
            "positions liquidated",
            f"{figures['positions_liquidated']:,} ({figures['longs_liquidated']:,} long, "
            f"{figures['shorts_liquidated']:,} short)",
        ),
        ("liquidation batches", f"{figures['batches']:,} (biggest {figures['biggest_batch']:,})"),
        ("cranker rewards", amount(figures["cranker_rewards"])),
        (
            "insurance fund",
            f"{amount(figures['insurance_start'])} → {amount(figures['insurance_end'])} "
            f"(min {amount(figures['insurance_min'])})",
        ),
        ("pool", f"{amount(figures['pool_start'])} → {amount(figures['pool_end'])}"),
        ("socialised loss", amount(figures["socialized_loss"])),
        ("funding paid (from the indices)", amount(figures["funding_paid"])),
        ("transactions", f"{figures['transactions']:,}"),
        ("compute units", f"{figures['compute_units']:,}"),
        ("batches predicted by the model", f"{figures['predicted_batches']:,}"),
        ("idle rounds checked", f"{figures['idle_rounds_checked']:,}"),
        ("conservation checks held", f"{figures['conservation_checks']:,}"),
        ("simulated time", f"{figures['simulated_hours']:,.2f} h in {figures['steps']:,} steps"),
        ("wall time", f"{figures['wall_seconds']:,.1f} s"),
    ]
    lines = ["| figure | value |", "| --- | --- |"]
    lines += [f"| {name} | {value.replace('|', '/')} |" for name, value in rows]
    return lines


def _markdown(result: ScenarioResult, figures: dict[str, Any], plots: list[Path]) -> str:
    lines = [f"# Scenario {result.name}", ""]
    if result.description:
        lines += [f"_{result.description.strip()}_", ""]
    lines += [paragraph(result, figures), "", "Amounts are in quote units.", "", *_table(figures), ""]
    if plots:
        lines += ["## Plots", ""]
        for plot in plots:
            caption = CAPTIONS.get(plot.name, plot.stem.replace("_", " "))
            lines += [f"![{plot.stem}]({plot.name})", "", f"*{plot.name}*: {caption}", ""]
    return "\n".join(lines)


def summary_text(result: ScenarioResult, report: Report | None = None) -> str:
    """The few lines the terminal prints at the end of a run."""
    figures = key_figures(result, report.plots if report else None)
    lines = [f"scenario {result.name} (seed {result.seed}) on {result.runtime}"]
    lines += [f"  {sentence}" for sentence in _what_happened(result, figures)]
    lines.append(
        f"  {figures['transactions']:,} transactions, {figures['compute_units']:,} CU, "
        f"{figures['simulated_hours']:,.2f} simulated hours in {figures['wall_seconds']:,.1f} s"
    )
    lines.append(
        f"  checks held: {_plural(figures['predicted_batches'], 'batch', 'batches')} as the model predicted, "
        f"{_plural(figures['idle_rounds_checked'], 'idle round')}, "
        f"{_plural(figures['conservation_checks'], 'conservation check')}"
    )
    if report is not None:
        lines.append(f"  report   {report.summary_md}")
        if report.plots:
            lines.append(f"  plots    {', '.join(p.name for p in report.plots)}")
    return "\n".join(lines)


# -- files ------------------------------------------------------------------------------------------


def _write_summaries(result: ScenarioResult, folder: Path, plots: list[Path]) -> tuple[Path, Path]:
    figures = key_figures(result, plots)
    summary_json = folder / SUMMARY_JSON
    summary_json.write_text(json.dumps(figures, indent=2) + "\n")
    summary_md = folder / SUMMARY_MD
    summary_md.write_text(_markdown(result, figures, plots))
    return summary_md, summary_json


def write_report(result: ScenarioResult, folder: Path, *, plots: bool = True) -> Report:
    """Write the run's folder: ``result.json``, ``summary.json``, ``summary.md`` and (with ``plots``) the PNGs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    result_json = folder / RESULT_JSON
    result_json.write_text(json.dumps(result.as_json(), indent=1) + "\n")
    drawn: list[Path] = []
    if plots:
        drawn = plot_all(result, folder)
    summary_md, summary_json = _write_summaries(result, folder, drawn)
    return Report(folder, summary_md, summary_json, result_json, drawn)


def load_result(folder: Path) -> ScenarioResult:
    """The :class:`ScenarioResult` a report folder holds in ``result.json``."""
    path = Path(folder) / RESULT_JSON
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path}: no such file; is {folder} a scenario report?") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: not JSON: {exc}") from exc
    try:
        return ScenarioResult.from_json(data)
    except (TypeError, KeyError) as exc:
        raise InvalidInput(f"{path}: not a scenario result: {exc}") from exc


def redraw(folder: Path, *, plots: bool = True) -> Report:
    """Rebuild the plots and the summaries of a report folder from its ``result.json``."""
    return write_report(load_result(folder), folder, plots=plots)
