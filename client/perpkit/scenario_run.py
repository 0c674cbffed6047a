"""Running a :class:`~perpkit.scenario.Scenario` through real transactions, checked against the model.

Set-up: an oracle, a 6-decimal quote mint, a market with its pool and insurance fund, a cranker with
its own token account, and the trader population (seeded): each trader is funded, creates its user
account and deposits in one transaction, then opens its position.  Then, for each point of the price
path: the clock moves to the point's time, the oracle publishes the price, ``update_funding`` runs, and
the crank makes the round the bot makes (:func:`perpkit.crank.crank_round`).  Before each round the
reference model (:func:`perpkit.crank.expected_batch`, on the book and market as read) predicts what
``liquidate`` will do; the run stops with :class:`~perpkit.errors.ScenarioMismatch` if the program does
anything else (a position more or less, another exit price, another split of the value, another
reward), and with :class:`~perpkit.errors.ConservationError` if SPEC 7 ever fails on the accounts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
from solders.keypair import Keypair
from solders.system_program import TransferParams, transfer

from perpkit import instructions as ix
from perpkit import risk, spl_token
from perpkit.accounts import Market, MarketParams
from perpkit.backends.base import TxResult
from perpkit.book import Book
from perpkit.client import Client
from perpkit.crank import BatchForecast, Cranking, LiquidationBatch, crank_round, expected_batch
from perpkit.errors import ScenarioMismatch
from perpkit.price_path import PricePath, price_path
from perpkit.risk import Side
from perpkit.scenario import Scenario
from perpkit.scenario_result import BatchRecord, ScenarioResult, StepRecord
from perpkit.testing import conservation, create_token_account, mint_to, setup_market

UNIT = 1_000_000
TRADER_LAMPORTS = 10_000_000
"""SOL sent to each trader (0.01): the rent of its user account."""


@dataclass(frozen=True)
class Trader:
    keypair: Keypair
    side: Side
    size: int
    collateral: int
    deposit: int
    opens_at: int
    """The path step at which it opens."""


@dataclass(frozen=True)
class Progress:
    """What the progress callback is told after each step."""

    step: int
    steps: int
    simulated_seconds: int
    index_price: int
    open_positions: int
    liquidated: int


def traders_for(scenario: Scenario, rng: np.random.Generator, price: int, params: MarketParams) -> list[Trader]:
    """The trader population: sides, sizes and leverage drawn from ``rng`` (deterministic for a seed)."""
    spec = scenario.traders
    longs = round(spec.count * spec.long_share)
    sides = np.array([Side.LONG] * longs + [Side.SHORT] * (spec.count - longs))
    rng.shuffle(sides)
    lo, hi = spec.size
    sizes = np.exp(rng.uniform(math.log(lo), math.log(hi), spec.count))
    leverages = rng.uniform(spec.leverage[0], spec.leverage[1], spec.count)
    out: list[Trader] = []
    for i in range(spec.count):
        size = max(1, round(float(sizes[i]) * UNIT))
        notional = risk.notional(size, price)
        # the initial margin at a fill a little above the index, and the fee: the top leverage stays allowed
        floor = risk.requirement(size, price * 101 // 100, params.initial_margin_bps) + risk.fee(
            notional * 101 // 100, params.taker_fee_bps) + 1  # fmt: skip
        collateral = max(math.ceil(notional / float(leverages[i])), floor)
        deposit = collateral + math.ceil(collateral * spec.spare)
        out.append(Trader(_keypair(rng), Side(int(sides[i])), size, collateral, deposit, i % spec.open_over_steps))
    return out


def _keypair(rng: np.random.Generator) -> Keypair:
    """A keypair drawn from the scenario's generator: the same seed gives the same accounts."""
    return Keypair.from_seed(rng.bytes(32))


def payer_for(scenario: Scenario) -> Keypair:
    """A payer (and admin) drawn from the seed, for a run on a fresh chain (the embedded runtime).

    With the payer and the mint (:func:`mint_for`) fixed too, every figure of a run repeats, compute
    units included: addresses decide how long the program's address derivations search for a bump."""
    return _keypair(np.random.default_rng([scenario.seed, 2]))


def mint_for(scenario: Scenario) -> Keypair:
    """The quote mint's keypair drawn from the seed, for a run on a fresh chain (on a shared one, a rerun
    would find the address taken: leave ``mint`` unset there)."""
    return _keypair(np.random.default_rng([scenario.seed, 1]))


class ScenarioRun:
    """One run of ``scenario`` on ``client`` (its payer pays and administers; a fresh cranker cranks)."""

    def __init__(self, scenario: Scenario, client: Client, *, progress: Callable[[Progress], None] | None = None,
                 market_id: int = 0, mint: Keypair | None = None) -> None:  # fmt: skip
        self.scenario = scenario
        self.client = client
        self.progress = progress
        self.market_id = market_id
        self.mint_keypair = mint
        """The quote mint's address (None: a fresh one); :func:`mint_for` gives the seeded one."""
        self.rng = np.random.default_rng(scenario.seed)
        self.path: PricePath = price_path(scenario.price, self.rng)
        self.result = ScenarioResult(
            name=scenario.name,
            seed=scenario.seed,
            description=scenario.description,
            runtime=client.runtime_description,
            config=scenario.as_dict(),
            crash=None,
        )
        self.cranker = _keypair(self.rng)
        self._sent: list[TxResult] = []

    # -- the run --------------------------------------------------------------------------------------
    async def run(self) -> ScenarioResult:
        started = time.perf_counter()
        listener = self._sent.append
        self.client.on_sent.append(listener)
        try:
            await self._setup()
            await self._walk()
        finally:
            self.client.on_sent.remove(listener)
            self.result.transactions = len(self._sent)
            self.result.compute_units = sum(r.compute_units for r in self._sent)
            self.result.wall_seconds = round(time.perf_counter() - started, 3)
        return self.result

    async def _setup(self) -> None:
        c, spec = self.client, self.scenario
        self.t0 = await c.now()
        first = self.path.points[0].price
        params = spec.market.market_params()
        setup = await setup_market(c, price=first, params=params, book_capacity=spec.market.book_capacity,
                                   market_id=self.market_id, mint=self.mint_keypair)  # fmt: skip
        self.market, self.oracle, self.mint = setup.market, setup.oracle, setup.quote_mint
        pool, insurance = round(spec.market.pool * UNIT), round(spec.market.insurance * UNIT)
        admin_token = await create_token_account(c, self.mint, c.payer.pubkey())
        await mint_to(c, self.mint, admin_token, pool + insurance)
        await c.fund_pool(self.market, pool)
        if insurance:
            await c.fund_insurance(self.market, insurance)
        self.cranker_token = await create_token_account(c, self.mint, self.cranker.pubkey())
        m = await c.fetch_market(self.market)
        self.vault = m.vault
        self.traders = traders_for(spec, self.rng, first, m.params)
        self.result.traders = len(self.traders)
        for trader in self.traders:
            await self._fund(trader)
        self.state = Cranking(m)
        if self.path.crash is not None:
            self.result.crash = (self.t0 + self.path.crash[0], self.t0 + self.path.crash[1])

    async def _fund(self, trader: Trader) -> None:
        """One transaction: SOL for its rent, its token account with the deposit, its user account, the deposit."""
        c, owner = self.client, trader.keypair.pubkey()
        token = spl_token.associated_token_address(owner, self.mint)
        payer = c.payer.pubkey()
        await c.send(
            [
                transfer(TransferParams(from_pubkey=payer, to_pubkey=owner, lamports=TRADER_LAMPORTS)),
                spl_token.create_associated_account_instruction(payer=payer, owner=owner, mint=self.mint),
                spl_token.mint_to_instruction(
                    mint=self.mint, destination=token, authority=payer, amount=trader.deposit
                ),
                ix.create_user(owner=owner, market=self.market, program_id=c.program_id),
                ix.deposit(
                    owner=owner,
                    market=self.market,
                    owner_token=token,
                    vault=self.vault,
                    amount=trader.deposit,
                    program_id=c.program_id,
                ),
            ],
            [trader.keypair],
        )

    async def _walk(self) -> None:
        c, spec, points = self.client, self.scenario, self.path.points
        crash_start = self.path.crash[0] if self.path.crash else None
        before_recorded = False
        opening: dict[int, list[Trader]] = {}
        for trader in self.traders:
            opening.setdefault(trader.opens_at, []).append(trader)
        for step, point in enumerate(points):
            now = self.t0 + point.offset
            if step:
                await c.set_time(now)
                await c.set_oracle_price(self.oracle, price=point.price, publish_time=now)
            for trader in opening.get(step, []):
                await c.open_position(self.market, trader.side, trader.size, trader.collateral, owner=trader.keypair)
                if trader.side == Side.LONG:
                    self.result.longs_opened += 1
                else:
                    self.result.shorts_opened += 1
            if step and step % spec.crank.funding_every_steps == 0:
                await c.update_funding(self.market)
            # "before": just before the crash, or once everyone has opened when the path has none
            if not before_recorded and (
                point.offset >= crash_start if crash_start is not None else step == spec.traders.open_over_steps - 1
            ):
                self.result.liquidation_prices_before = await self._liquidation_prices()
                before_recorded = True
            liquidated = 0
            if step % spec.crank.every_steps == 0:
                liquidated = await self._crank(step, now, point.price)
            if liquidated or step % spec.crank.conservation_every_steps == 0 or step == len(points) - 1:
                await conservation(c, self.market)
                self.result.conservation_checks += 1
            await self._record(step, now, point.price, liquidated)
        self.result.liquidation_prices_after = await self._liquidation_prices()
        self.result.simulated_seconds = points[-1].offset - points[0].offset

    async def _crank(self, step: int, now: int, price: int) -> int:
        """One crank round, predicted by the model first; the positions it liquidated."""
        c = self.client
        market = await c.fetch_market(self.market)
        book = await c.fetch_book(self.market)
        forecast = expected_batch(book, market, price, now)
        predicted = len(forecast.slots)
        # the reward is checked only where a batch is predicted: a batch where none is fails _compare first
        balance = await c.token_balance(self.cranker_token) if predicted else 0
        done = await crank_round(c, self.state, cranker=self.cranker, cranker_token=self.cranker_token)
        if done.liquidation is None:
            if predicted:
                raise ScenarioMismatch(f"step {step}: the model predicted {predicted} liquidation(s) at "
                                       f"{price / UNIT:,.6f}; the crank found nothing")  # fmt: skip
            self.result.idle_rounds_checked += 1
            return 0
        batch = done.liquidation.batch
        _compare(step, price, batch, forecast)
        earned = await c.token_balance(self.cranker_token) - balance
        if earned != batch.cranker_reward:
            raise ScenarioMismatch(f"step {step}: the cranker's token account gained {earned}, "
                                   f"the event says {batch.cranker_reward}")  # fmt: skip
        live = (await c.fetch_book(self.market)).live_mask()
        still = sorted(s for s in forecast.slots if bool(live[s]))
        if still:
            raise ScenarioMismatch(f"step {step}: slots {still[:5]} were to be liquidated and are still live")
        self.result.predicted_batches += 1
        same = {f.name: getattr(batch, f.name) for f in fields(BatchRecord) if hasattr(batch, f.name)}
        self.result.batches.append(BatchRecord(**same, step=step, t=now, signature=done.liquidation.result.signature,
                                               compute_units=done.liquidation.result.compute_units))  # fmt: skip
        return batch.count

    async def _record(self, step: int, now: int, price: int, liquidated: int) -> None:
        m = await self.client.fetch_market(self.market)
        header = await self.client.fetch_book_header(m.book)
        self.result.steps.append(_step_record(step, now, price, m, liquidated, sum(header.counts)))
        if self.progress:
            self.progress(Progress(step, len(self.path.points), now - self.t0, price, sum(header.counts),
                                   m.positions_liquidated))  # fmt: skip

    async def _liquidation_prices(self) -> list[int]:
        book: Book = await self.client.fetch_book(self.market)
        m = await self.client.fetch_market(self.market)
        prices: list[int] = []
        for side in Side:
            slots = book.live_slots(side)
            if len(slots):
                found = book.liquidation_prices(side, slots, m.funding_index(side), m.params.maintenance_margin_bps)
                prices.extend(int(p) for p in found if p > 0)
        return sorted(prices)


def _compare(step: int, price: int, batch: LiquidationBatch, forecast: BatchForecast) -> None:
    want = {
        "long_count": len(forecast.cut[Side.LONG]),
        "short_count": len(forecast.cut[Side.SHORT]),
        "exit_price": forecast.exit_price,
        "equity": forecast.equity,
        "collateral": forecast.collateral,
        "cranker_reward": forecast.payout.reward,
        "insurance_credit": forecast.payout.insurance_credit,
        "insurance_paid": forecast.payout.insurance_paid,
        "socialized_loss": forecast.payout.socialized_loss,
        "pool_credit": forecast.payout.pool_credit,
        "index_price": price,
    }
    wrong = {k: (getattr(batch, k), v) for k, v in want.items() if getattr(batch, k) != v}
    if wrong:
        said = "; ".join(f"{k}: program {got:,}, model {exp:,}" for k, (got, exp) in wrong.items())
        raise ScenarioMismatch(f"step {step}: the liquidation at {price / UNIT:,.6f} differs from the model: {said}")


def _step_record(step: int, now: int, price: int, m: Market, liquidated: int, open_positions: int) -> StepRecord:
    skew = m.oi_long - m.oi_short
    mark = risk.fill_price(price, skew, skew, m.params.skew_scale, False)
    return StepRecord(
        step=step,
        t=now,
        index_price=price,
        ewma_price=m.ewma_price,
        band_bps=m.params.price_band_bps,
        mark_price=mark,
        oi_long=m.oi_long,
        oi_short=m.oi_short,
        funding_index_long=m.funding_index_long,
        funding_index_short=m.funding_index_short,
        pool_balance=m.pool_balance,
        insurance_balance=m.insurance_balance,
        socialized_loss=m.socialized_loss,
        cranker_rewards=m.cranker_rewards,
        positions_liquidated=m.positions_liquidated,
        liquidated=liquidated,
        open_positions=open_positions,
    )


async def run_scenario(
    scenario: Scenario,
    client: Client,
    *,
    progress: Callable[[Progress], None] | None = None,
    market_id: int = 0,
    mint: Keypair | None = None,
) -> ScenarioResult:
    """Run ``scenario`` on ``client``'s chain; the recorded result (raises on any mismatch with the model)."""
    return await ScenarioRun(scenario, client, progress=progress, market_id=market_id, mint=mint).run()


__all__ = ["Progress", "ScenarioRun", "Trader", "mint_for", "payer_for", "run_scenario", "traders_for"]
