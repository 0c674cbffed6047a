"""Scenarios: the TOML they are written in, the price paths, and runs checked against the model on both backends."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perpkit import Client
from perpkit import crank as crank_module
from perpkit.errors import InvalidScenario, ScenarioMismatch
from perpkit.price_path import generate, read_csv
from perpkit.scenario import PriceSpec, load_scenario, parse_scenario
from perpkit.scenario_run import run_scenario
from perpkit.testing import conservation

UNIT = 1_000_000
SMALL: dict[str, Any] = {
    "name": "small crash",
    "seed": 11,
    "market": {
        "initial_margin_bps": 500,
        "maintenance_margin_bps": 250,
        "book_capacity": 64,
        "pool": 200_000,
        "insurance": 500,
    },
    "traders": {"count": 24, "long_share": 0.75, "size": [1.0, 20.0], "leverage": [3.0, 15.0], "open_over_steps": 3},
    "price": {
        "start": 100.0,
        "step_seconds": 60,
        "hours": 0.75,
        "volatility_per_day": 0.0,
        "crash": {"at_hours": 0.3, "drop": 0.2, "over_steps": 1},
    },
    "crank": {"conservation_every_steps": 10},
}


def scenario(**changes: Any) -> Any:
    data = {**SMALL, **changes}
    return parse_scenario(data)


# -- the file ----------------------------------------------------------------------------------------------
def test_the_bundled_demo_and_examples_load(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    files = [root / "client/perpkit/scenarios/crash.toml", *sorted((root / "examples/scenarios").glob("*.toml"))]
    assert len(files) >= 4
    for file in files:
        loaded = load_scenario(file)
        assert loaded.name and loaded.traders.count > 0, file


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "name: must be a non-empty string"),
        ({"colour": "red"}, "unknown key colour"),
        ({"traders": {"count": 0}}, "traders.count: must be between 1"),
        ({"traders": {"leverage": [2.0, 25.0]}}, "traders.leverage: the highest, 25x, is not under the market's 20x"),
        ({"traders": {"size": [5.0, 1.0]}}, "traders.size: must be [low, high]"),
        ({"traders": {"count": 100}}, "100 positions do not fit a book of 64"),
        ({"market": {**SMALL["market"], "initial_margin_bps": 100}}, "[market] parameters are not valid"),
        ({"price": {"hours": 1, "crash": {"at_hours": 2, "drop": 0.2}}}, "price.crash.at_hours: 2 is not within"),
        ({"price": {"crash": {"drop": 0.2}}}, "price.crash.: needs at_hours and drop"),
        ({"price": {"crash": {"at_hours": 1, "drop": 1.5}}}, "price.crash.drop: must be at least -4 and at most 0.95"),
        ({"price": {"csv": "missing.csv"}}, "price.csv: no such file"),
        ({"seed": "seven"}, "seed: must be an integer"),
    ],
)
def test_bad_scenarios_are_named_errors(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidScenario) as caught:
        scenario(**changes)
    assert message in str(caught.value)


def test_a_bad_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(InvalidScenario, match=r"bad.toml is not valid TOML"):
        load_scenario(bad)
    with pytest.raises(InvalidScenario, match=r"cannot read the scenario"):
        load_scenario(tmp_path / "none.toml")


# -- the paths ---------------------------------------------------------------------------------------------
def test_a_generated_path_is_seeded_and_has_its_gap() -> None:
    spec = PriceSpec(start=100.0, step_seconds=60, hours=2, volatility_per_day=0.0,
                     crash=scenario().price.crash)  # fmt: skip
    one = generate(spec, np.random.default_rng(3))
    two = generate(spec, np.random.default_rng(3))
    assert one == two and len(one.points) == 121
    prices = [p.price for p in one.points]
    drop_at = 18  # 0.3 hours of 60 s steps: the gap is between points 18 and 19
    assert prices[drop_at] == 100 * UNIT and prices[drop_at + 1] == 80 * UNIT
    assert one.crash == (drop_at * 60, (drop_at + 1) * 60)
    other = generate(dataclasses.replace(spec, volatility_per_day=0.1), np.random.default_rng(4))
    assert other != one


def test_a_csv_path_replays_and_finds_its_crash(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("timestamp,price\n1700000000,100\n1700000060,99.5\n1700000120,80\n1700000180,81\n")
    replay = read_csv(path)
    assert [(p.offset, p.price) for p in replay.points] == [(0, 100 * UNIT), (60, 99_500_000), (120, 80 * UNIT),
                                                            (180, 81 * UNIT)]  # fmt: skip
    assert replay.crash == (0, 120)
    path.write_text("0,100\n60,-1\n")
    with pytest.raises(InvalidScenario, match="price -1 is not positive"):
        read_csv(path)
    path.write_text("0,100\n0,101\n")
    with pytest.raises(InvalidScenario, match="timestamps must increase"):
        read_csv(path)


# -- runs --------------------------------------------------------------------------------------------------
async def test_a_crash_run_matches_the_model_batch_by_batch(perps_client: Client) -> None:
    result = await run_scenario(scenario(), perps_client)
    assert len(result.steps) == 46 and result.traders == 24
    assert result.longs_opened == 18 and result.shorts_opened == 6
    assert result.batches and result.predicted_batches == len(result.batches)
    assert result.idle_rounds_checked + len(result.batches) == len(result.steps)
    gap = result.batches[0]
    assert gap.step == 19 and gap.long_count > 0 and gap.index_price == 80 * UNIT
    assert result.liquidated == result.steps[-1].positions_liquidated == sum(s.liquidated for s in result.steps)
    assert result.conservation_checks >= 5
    assert result.liquidation_prices_before and len(result.liquidation_prices_after) == result.steps[-1].open_positions
    assert any(p > 80 * UNIT for p in result.liquidation_prices_before)  # the gap cut through them
    assert result.transactions > 24 * 2 and result.compute_units > 0
    market = perps_client.market_address(0)
    state = await conservation(perps_client, market)
    assert state.vault == state.backed


async def test_the_same_seed_gives_the_same_run(perps_client: Client) -> None:
    first = await run_scenario(scenario(), perps_client, market_id=1)
    second = await run_scenario(scenario(), perps_client, market_id=2)

    def shape(result: Any) -> tuple[list[Any], list[Any]]:
        t0 = result.steps[0].t
        steps = [dataclasses.replace(s, t=s.t - t0) for s in result.steps]
        batches = [dataclasses.replace(b, t=b.t - t0, signature="", compute_units=0) for b in result.batches]
        return steps, batches

    # the second market starts where the first left the clock: funding and EWMA depend on time differences only
    assert shape(first) == shape(second)


async def test_a_program_that_differs_from_the_model_stops_the_run(
    perps_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check can fail: a model that expects one position fewer is caught at the first batch."""
    real = crank_module.expected_batch

    def one_short(*args: Any) -> Any:
        forecast = real(*args)
        if forecast.slots:
            long_slots = forecast.cut[0]
            return dataclasses.replace(forecast, cut={**forecast.cut, 0: long_slots[1:]})
        return forecast

    monkeypatch.setattr("perpkit.scenario_run.expected_batch", one_short)
    with pytest.raises(ScenarioMismatch, match=r"step 19: the liquidation at 80\.000000 differs from the model: "
                       r"long_count: program \d+, model \d+"):  # fmt: skip
        await run_scenario(scenario(), perps_client, market_id=3)
