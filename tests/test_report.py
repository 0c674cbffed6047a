"""The scenario report: the files it writes, the figures it computes, the plots it draws, and redraw."""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from perpkit.report import Report, key_figures, redraw, summary_text, write_report
from perpkit.scenario_result import UNIT, BatchRecord, ScenarioResult, StepRecord

PLOT_NAMES = [
    "prices.png",
    "open_interest.png",
    "liquidations.png",
    "balances.png",
    "funding.png",
    "liquidation_prices.png",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = 1_700_000_000
STEP_S = 60
CRASH_STEP, CRASH_STEPS = 120, 5  # a 20% gap at step 120, then 5% more over the next 4 steps


# -- a synthetic run ---------------------------------------------------------------------------------


def _index(step: int) -> int:
    """100.00, a rise to 104 around step 60, 100.00 again before the crash, 75.00 at its low, a slight recovery."""
    if step < 40:
        return 100 * UNIT + int(0.5 * UNIT * math.sin(step / 5))
    if step < 80:
        return 100 * UNIT + int(4 * UNIT * math.sin(math.pi * (step - 40) / 40))
    if step < CRASH_STEP:
        return 100 * UNIT
    if step < CRASH_STEP + CRASH_STEPS:
        return 80 * UNIT - (step - CRASH_STEP) * 5 * UNIT // 4  # 80.00 down to 75.00
    return 75 * UNIT + min(step - CRASH_STEP - CRASH_STEPS, 100) * 3 * UNIT // 100  # back up to 78.00


# (step, long_count, short_count, cranker reward, insurance credit, insurance paid, socialised loss), quote units
BATCHES = [
    (61, 0, 5, 4.0, 6.0, 0.0, 0.0),
    (CRASH_STEP, 80, 0, 120.0, 0.0, 2_500.0, 0.0),
    (CRASH_STEP, 60, 2, 70.0, 0.0, 5_000.0, 150.0),
    (CRASH_STEP + 2, 30, 0, 45.5, 30.0, 0.0, 0.0),
    (CRASH_STEP + 4, 12, 0, 18.25, 12.0, 0.0, 0.0),
]
SIZE = 10 * UNIT  # every position is 10 base units


def synthetic_result(steps: int = 360) -> ScenarioResult:
    batches_at: dict[int, list[BatchRecord]] = {}
    batches = []
    for n, (step, longs, shorts, reward, credit, paid, loss) in enumerate(BATCHES):
        if step >= steps:
            continue
        price = _index(step)
        batch = BatchRecord(
            step=step,
            t=T0 + step * STEP_S,
            signature=f"sig{n}",
            index_price=price,
            exit_price=price - price // 200,
            long_count=longs,
            short_count=shorts,
            long_size=longs * SIZE,
            short_size=shorts * SIZE,
            collateral=(longs + shorts) * 100 * UNIT,
            equity=(longs + shorts) * 10 * UNIT,
            cranker_reward=int(reward * UNIT),
            insurance_credit=int(credit * UNIT),
            insurance_paid=int(paid * UNIT),
            socialized_loss=int(loss * UNIT),
            pool_credit=(longs + shorts) * UNIT,
            compute_units=40_000 + 3_000 * (longs + shorts),
        )
        batches.append(batch)
        batches_at.setdefault(step, []).append(batch)

    records = []
    longs, shorts = 200, 100
    idx_long = idx_short = 0
    insurance, pool = 10_000 * UNIT, 1_000_000 * UNIT
    loss = rewards = liquidated = 0
    ewma = _index(0)
    for step in range(steps):
        index = _index(step)
        ewma = (ewma * 9 + index) // 10
        cut = batches_at.get(step, [])
        for b in cut:
            longs -= b.long_count
            shorts -= b.short_count
            insurance += b.insurance_credit - b.insurance_paid
            pool += b.pool_credit
            loss += b.socialized_loss
            rewards += b.cranker_reward
            liquidated += b.count
        insurance += 2 * UNIT  # fees
        oi_long, oi_short = longs * SIZE, shorts * SIZE
        skew, total = oi_long - oi_short, oi_long + oi_short
        d = index * 100 * STEP_S * abs(skew) // total * UNIT // (10_000 * 86_400) if total else 0
        if skew > 0:
            idx_long, idx_short = idx_long + d, idx_short - d
        elif skew < 0:
            idx_long, idx_short = idx_long - d, idx_short + d
        records.append(
            StepRecord(
                step=step,
                t=T0 + step * STEP_S,
                index_price=index,
                ewma_price=ewma,
                band_bps=500,
                mark_price=index + index * skew // (2 * 50_000 * UNIT),
                oi_long=oi_long,
                oi_short=oi_short,
                funding_index_long=idx_long,
                funding_index_short=idx_short,
                pool_balance=pool,
                insurance_balance=insurance,
                socialized_loss=loss,
                cranker_rewards=rewards,
                positions_liquidated=liquidated,
                liquidated=sum(b.count for b in cut),
                open_positions=longs + shorts,
            )
        )
    before = [int((55 + 40 * (i / 199) ** 0.7) * UNIT) for i in range(200)]  # longs, 55..95
    before += [int((105 + 40 * (i / 99) ** 1.5) * UNIT) for i in range(100)]  # shorts, 105..145
    after = [p for p in before if p < 75 * UNIT or p > 110 * UNIT]
    crash = (
        (T0 + (CRASH_STEP - 1) * STEP_S, T0 + (CRASH_STEP + CRASH_STEPS - 1) * STEP_S) if steps > CRASH_STEP else None
    )
    return ScenarioResult(
        name="crash-and-gap",
        seed=7,
        description="300 traders, a 25% crash with a gap, six hours of funding.",
        runtime="LiteSVM of solders 0.29.0, mainnet feature set; perps build perps.so (SBPFv3)",
        config={"traders": 300, "steps": steps, "step_seconds": STEP_S, "crash": {"at": CRASH_STEP, "drop_pct": 25}},
        steps=records,
        batches=batches,
        crash=crash,
        liquidation_prices_before=before,
        liquidation_prices_after=after,
        traders=300,
        longs_opened=200,
        shorts_opened=100,
        transactions=1_234,
        compute_units=98_765_432,
        predicted_batches=len(batches),
        idle_rounds_checked=steps - len({b.step for b in batches}),
        conservation_checks=steps,
        wall_seconds=42.5,
        simulated_seconds=steps * STEP_S,
    )


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def assert_complete(report: Report, folder: Path, plots: bool = True) -> None:
    assert report.folder == folder
    for path in (report.summary_md, report.summary_json, report.result_json):
        assert path.parent == folder and path.stat().st_size > 0
    if plots:
        assert [p.name for p in report.plots] == PLOT_NAMES
        for plot in report.plots:
            assert plot.parent == folder
            assert png_size(plot) == (1200, 600), plot


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[ScenarioResult, Report]:
    result = synthetic_result()
    folder = tmp_path_factory.mktemp("report") / "crash-and-gap"
    return result, write_report(result, folder)


# -- the full run ------------------------------------------------------------------------------------


def test_every_file_is_written(written: tuple[ScenarioResult, Report]) -> None:
    _, report = written
    assert_complete(report, report.folder)
    assert sorted(p.name for p in report.folder.iterdir()) == sorted(
        [*PLOT_NAMES, "result.json", "summary.json", "summary.md"]
    )


def test_summary_json_holds_the_right_figures(written: tuple[ScenarioResult, Report]) -> None:
    result, report = written
    figures = json.loads(report.summary_json.read_text())
    assert figures == key_figures(result, report.plots)
    assert figures["name"] == "crash-and-gap" and figures["seed"] == 7
    assert figures["positions_liquidated"] == sum(b[1] + b[2] for b in BATCHES) == 189
    assert (figures["longs_liquidated"], figures["shorts_liquidated"]) == (182, 7)
    assert figures["batches"] == 5 and figures["biggest_batch"] == 80
    assert figures["cranker_rewards"] == int(257.75 * UNIT)
    assert figures["socialized_loss"] == 150 * UNIT
    assert figures["insurance_start"] == result.steps[0].insurance_balance == 10_002 * UNIT
    assert figures["insurance_end"] == result.steps[-1].insurance_balance
    assert figures["insurance_min"] == min(s.insurance_balance for s in result.steps) < figures["insurance_end"]
    assert figures["pool_start"] == 1_000_000 * UNIT
    assert figures["pool_end"] == 1_000_000 * UNIT + 189 * UNIT
    assert figures["lowest_index_price"] == 75 * UNIT
    assert figures["highest_index_price"] == 104 * UNIT
    crash = figures["crash"]
    assert (crash["pre_crash_price"], crash["low_price"]) == (100 * UNIT, 75 * UNIT)
    assert crash["drop_pct"] == 25.0 and crash["steps"] == CRASH_STEPS
    assert crash["largest_step_move_pct"] == 20.0 and crash["gap"] is True
    assert figures["funding_paid"] > 0
    assert figures["simulated_hours"] == 6.0 and figures["steps"] == 360
    assert figures["plots"] == PLOT_NAMES
    for key in ("traders", "longs_opened", "shorts_opened", "transactions", "compute_units", "wall_seconds"):
        assert figures[key] == getattr(result, key)
    for key in ("predicted_batches", "idle_rounds_checked", "conservation_checks"):
        assert figures[key] == getattr(result, key)


def test_summary_md_says_what_happened_and_shows_every_plot(written: tuple[ScenarioResult, Report]) -> None:
    _, report = written
    text = report.summary_md.read_text()
    assert text.startswith("# Scenario crash-and-gap\n")
    assert "the index fell 25.00% from 100.00 to 75.00 over 5 steps, with a gap of 20.00% in one step" in text
    assert "189 of 300 positions were liquidated in 5 batches" in text
    assert "the cranker earned 257.75" in text
    assert "150.00 of loss was socialised" in text
    assert "| cranker rewards | 257.75 |" in text
    assert "| compute units | 98,765,432 |" in text
    assert "| crash | -25.00% in 5 steps: 100.00 → 75.00 |" in text
    for name in PLOT_NAMES:
        assert f"]({name})" in text and f"*{name}*:" in text


def test_result_json_round_trips(written: tuple[ScenarioResult, Report]) -> None:
    result, report = written
    assert ScenarioResult.from_json(json.loads(report.result_json.read_text())) == result


def test_summary_text_is_what_the_terminal_prints(written: tuple[ScenarioResult, Report]) -> None:
    result, report = written
    text = summary_text(result, report)
    assert "the index fell 25.00% from 100.00 to 75.00" in text
    assert "189 of 300 positions were liquidated in 5 batches" in text
    assert "checks held: 5 batches as the model predicted, 356 idle rounds, 360 conservation checks" in text
    assert f"report   {report.summary_md}" in text
    assert "liquidation_prices.png" in text
    assert "report" not in summary_text(result).splitlines()[-1]


def test_redraw_rebuilds_everything_from_result_json(written: tuple[ScenarioResult, Report], tmp_path: Path) -> None:
    result, _ = written
    folder = tmp_path / "run"
    write_report(result, folder, plots=False)
    assert not list(folder.glob("*.png"))
    report = redraw(folder)
    assert_complete(report, folder)
    assert json.loads(report.summary_json.read_text())["plots"] == PLOT_NAMES


# -- degenerate runs ---------------------------------------------------------------------------------


def _degenerate() -> dict[str, ScenarioResult]:
    full = synthetic_result(steps=180)
    return {
        "no batches": replace(full, batches=[], predicted_batches=0),
        "no crash, empty lists": replace(full, crash=None, liquidation_prices_before=[], liquidation_prices_after=[]),
        "one step": synthetic_result(steps=1),
        "nothing recorded": ScenarioResult(name="empty", seed=0, description="", runtime="nothing", config={}),
    }


def test_degenerate_runs_still_write_every_file(tmp_path: Path) -> None:
    for n, (case, result) in enumerate(_degenerate().items()):
        folder = tmp_path / f"case{n}"
        report = write_report(result, folder)
        assert_complete(report, folder)
        figures = json.loads(report.summary_json.read_text())
        text = report.summary_md.read_text()
        if case == "no batches":
            assert figures["positions_liquidated"] == figures["batches"] == figures["biggest_batch"] == 0
            assert "none of the 300 positions was liquidated" in text
        if case.startswith("no crash"):
            assert figures["crash"] is None and "without a crash" in text
        if case == "nothing recorded":
            assert figures["insurance_start"] is None and figures["lowest_index_price"] is None
        assert summary_text(result, report)


def test_a_folder_without_result_json_is_invalid_input(tmp_path: Path) -> None:
    from perpkit.errors import InvalidInput

    with pytest.raises(InvalidInput, match=r"result\.json"):
        redraw(tmp_path)


def test_importing_the_report_does_not_import_matplotlib() -> None:
    code = (
        "import sys, perpkit.report, perpkit.plots; print(sorted(m for m in sys.modules if m.startswith('matplotlib')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_spike_up_is_described_as_a_rise() -> None:
    fall = synthetic_result(steps=180)
    spike = replace(fall, steps=[replace(s, index_price=200 * UNIT - s.index_price) for s in fall.steps])
    crash = key_figures(spike)["crash"]
    assert (crash["pre_crash_price"], crash["low_price"], crash["drop_pct"]) == (100 * UNIT, 125 * UNIT, -25.0)
    assert "the index rose 25.00% from 100.00 to 125.00 over 5 steps" in summary_text(spike)
