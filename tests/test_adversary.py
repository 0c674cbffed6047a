"""SPEC 7b as a stateful property: one actor alone against the pool cannot take value out of it.

The actor has several users, the crank and the crank's reward account.  It
opens, closes, adds and removes margin and liquidates as it likes; time
passes and the index moves.  The rules of SPEC 7b hold the index still while
the actor's net exposure (the skew, since it trades alone) is not zero, keep
every index step below half the maintenance margin, and give an honest crank
the chance to liquidate before every index step and every time step.

After every step:

* SPEC 7 conservation, summed over the accounts (ConservationChecker);
* the actor's value never exceeds where it started.  Its value is its free
  collateral and tokens plus its open positions valued exactly (rational
  numbers, no rounding) at the price that would take the skew back to zero:
  closing everything in one go or one by one comes to the same sum (SPEC 6),
  so this is what the actor could realise at best;
* the insurance fund never pays and no loss is socialised;
* no frozen market: an ordinary close of every live position is accepted,
  unless the band, the oracle, the pause flag or the pool refuse it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from fractions import Fraction
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from perpkit import Client, MarketParams, ProgramError, risk
from perpkit import instructions as ix
from perpkit.accounts import PositionRef
from perpkit.crank import liquidate
from perpkit.positions import Position, Side, project_funding
from perpkit.pytest_plugin import START_TIME
from perpkit.spl_token import associated_token_address
from perpkit.testing import ConservationChecker, TradingSetup, setup_trading

T = TypeVar("T")
UNIT = 10**6
PRICE = 100 * UNIT
PARAMS = MarketParams(skew_scale=1_000 * UNIT, initial_margin_bps=600)  # close to maintenance: liquidations come fast
USERS = 4
# units; the cap is 25 (0.025 K), the band about 100; from about 50 one position's skew impact exceeds its
# maintenance margin (what a liquidation at the index without that impact would hand the actor)
SIZES = st.one_of(st.integers(1, 25), st.integers(1, 150), st.integers(50, 100))
STEPS = st.one_of(st.integers(-249, 249), st.sampled_from([-249, 249]))  # bps, below half the maintenance margin
ALLOWED_CLOSE_REFUSALS = {"PriceBandBreached", "OracleStale", "OracleConfidenceTooWide", "OraclePriceNotPositive",
                          "OraclePublishedInFuture", "MarketPaused", "InsufficientPoolBalance"}  # fmt: skip
ORDINARY_REFUSALS = ALLOWED_CLOSE_REFUSALS | {
    "InitialMarginNotMet", "WouldBeLiquidatable", "InsufficientFreeCollateral", "SkewLimitExceeded",
    "OpenInterestCapExceeded", "PositionTooSmall", "PositionUnderwater", "TooManyPositions",
}  # fmt: skip


def event(what: str) -> None:
    """Count an outcome for --hypothesis-show-statistics (the machine also runs outside hypothesis, below)."""
    if currently_in_test_context():
        hypothesis_event(what)


class Adversary(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.c: Client = self.run(Client.embedded(start_time=START_TIME))
        setup = setup_trading(self.c, price=PRICE, params=PARAMS, traders=USERS, deposit=1_000_000 * UNIT,
                              pool=10_000_000 * UNIT, insurance=1_000_000 * UNIT, book_capacity=512)  # fmt: skip
        self.setup: TradingSetup = self.run(setup)
        ConservationChecker(self.c, self.setup.market).attach()
        self.actor = self.setup.traders
        self.cranker = self.actor[0]  # the actor's crank: its reward goes to the actor
        self.index = PRICE
        self.start_value = self.run(self.held())
        self.live: list[tuple[int, Position]] = []

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.c.close())
        self.loop.close()

    # -- what the actor holds -------------------------------------------------------------------
    async def held(self) -> int:
        total = 0
        for key in self.actor:
            total += (await self.c.fetch_user(self.setup.market, key.pubkey())).free_collateral
            total += await self.c.token_balance(associated_token_address(key.pubkey(), self.setup.quote_mint))
        return total

    async def refresh(self) -> None:
        """The live positions, and the references of liquidated ones cleared."""
        self.live = []
        for who, key in enumerate(self.actor):
            for position in await self.c.positions(self.setup.market, key.pubkey()):
                if position.liquidated:
                    await self.c.clear_position(self.setup.market, key.pubkey(), position)
                else:
                    self.live.append((who, position))

    async def value(self) -> Fraction:
        """Held value plus the open positions at the price that takes the skew back to zero, exactly."""
        m = project_funding(await self.c.fetch_market(self.setup.market), await self.c.now())
        k = m.params.skew_scale
        exit_price = Fraction(self.index * (2 * k + m.skew), 2 * k)
        total = Fraction(await self.held())
        for _, p in self.live:
            move = exit_price - p.entry_price if p.side == Side.LONG else p.entry_price - exit_price
            funding = Fraction(p.size * (m.funding_index(p.side) - p.funding_at_open), risk.B * risk.FS)
            total += p.collateral + p.size * move / risk.B - funding
        return total

    async def attempt(self, coroutine: Coroutine[Any, Any, T], what: str) -> T | None:
        """Send; a refusal for an ordinary reason is part of the game, anything else fails the test."""
        try:
            done = await coroutine
        except ProgramError as exc:
            assert exc.error_name in ORDINARY_REFUSALS, f"unexpected refusal: {exc}"
            event(f"{what}: refused with {exc.error_name}")
            return None
        else:
            event(f"{what}: {'done' if done is not None else 'nothing to do'}")
            return done
        finally:
            await self.refresh()

    async def initial_margin(self, side: int, size: int) -> int:
        m = await self.c.fetch_market(self.setup.market)
        s1 = m.skew + size if side == Side.LONG else m.skew - size
        try:
            fill = risk.fill_price(self.index, m.skew, s1, m.params.skew_scale, side == Side.LONG)
        except risk.RiskError:
            fill = self.index
        return risk.requirement(size, fill, m.params.initial_margin_bps)

    async def open(self, who: int, side: int, size: int, extra_pct: int) -> Position | None:
        collateral = await self.initial_margin(side, size) * (100 + extra_pct) // 100
        opened: Position | None = await self.attempt(
            self.c.open_position(self.setup.market, side, size, max(collateral, 1), owner=self.actor[who]), "open"
        )
        return opened

    async def honest_crank(self) -> None:
        """A liquidation opportunity taken by somebody else (the payer's crank): SPEC 7b's premise."""
        await self.attempt(liquidate(self.c, self.setup.market), "honest crank")

    async def publish(self) -> None:
        await self.c.set_oracle_price(self.setup.oracle, price=self.index)

    # -- the actor's moves --------------------------------------------------------------------------
    @rule(who=st.integers(0, USERS - 1), side=st.sampled_from([Side.LONG, Side.SHORT]),
          units=SIZES, extra_pct=st.sampled_from([0, 0, 1, 10, 50, 200]))  # fmt: skip
    def open_one(self, who: int, side: int, units: int, extra_pct: int) -> None:
        self.run(self.open(who, side, units * UNIT, extra_pct))

    @rule(long_who=st.integers(0, USERS - 1), short_who=st.integers(0, USERS - 1), units=SIZES,
          long_extra=st.sampled_from([0, 0, 5, 100]), short_extra=st.sampled_from([0, 0, 5, 100, 400]),
          long_first=st.booleans())  # fmt: skip
    def open_pair(self, long_who: int, short_who: int, units: int, long_extra: int, short_extra: int,
                  long_first: bool) -> None:  # fmt: skip
        legs = [(long_who, Side.LONG, long_extra), (short_who, Side.SHORT, short_extra)]
        for who, side, extra in legs if long_first else legs[::-1]:
            self.run(self.open(who, side, units * UNIT, extra))

    @precondition(lambda self: self.live)
    @rule(pick=st.integers(0, 10**6))
    def close(self, pick: int) -> None:
        who, position = self.live[pick % len(self.live)]
        self.run(self.attempt(self.c.close_position(self.setup.market, position, owner=self.actor[who]), "close"))

    @precondition(lambda self: self.live)
    @rule(pick=st.integers(0, 10**6), amount=st.integers(1, 2_000))
    def add_margin(self, pick: int, amount: int) -> None:
        who, position = self.live[pick % len(self.live)]
        self.run(
            self.attempt(self.c.add_margin(self.setup.market, position, amount * UNIT, owner=self.actor[who]), "add")
        )

    @precondition(lambda self: self.live)
    @rule(pick=st.integers(0, 10**6), amount=st.integers(1, 2_000))
    def remove_margin(self, pick: int, amount: int) -> None:
        who, position = self.live[pick % len(self.live)]
        remove = self.c.remove_margin(self.setup.market, position, amount * UNIT, owner=self.actor[who])
        self.run(self.attempt(remove, "remove"))

    @precondition(lambda self: self.live)
    @rule()
    def balance(self) -> None:
        """Open what takes the actor's net exposure (the skew) back to zero."""
        m = self.run(self.c.fetch_market(self.setup.market))
        if m.skew:
            side = Side.SHORT if m.skew > 0 else Side.LONG
            self.run(self.open(USERS - 1, side, abs(m.skew), 100))

    @precondition(lambda self: self.live)
    @rule()
    def crank(self) -> None:
        self.run(self.attempt(liquidate(self.c, self.setup.market, cranker=self.cranker), "actor's crank"))

    # -- the world: index steps and time, each after a liquidation opportunity ------------------------
    @precondition(lambda self: self.live)
    @rule(bps=STEPS)
    def index_step(self, bps: int) -> None:
        """An honest crank, then the actor takes its net exposure to zero (SPEC 7b's premise), then the step."""
        self.run(self.honest_crank())  # may liquidate one leg of the actor: balance after it, not before
        if self.net_exposure():
            self.balance()
        if self.net_exposure():
            event("index step skipped: the actor could not balance")
            return
        self.index = self.index * (10_000 + bps) // 10_000
        self.run(self.publish())
        event("index step")

    @precondition(lambda self: self.live)
    @rule(bps=STEPS, steps=st.integers(2, 4))
    def trend(self, bps: int, steps: int) -> None:
        """The index moves the same way several times, each step an index_step of its own."""
        for _ in range(steps):
            self.index_step(bps)

    def net_exposure(self) -> int:
        return sum(p.size if p.side == Side.LONG else -p.size for _, p in self.live)

    @precondition(lambda self: self.live)
    @rule(seconds=st.integers(1, 3_600))
    def time_step(self, seconds: int) -> None:
        self.run(self.honest_crank())
        self.run(self.c.advance_time(seconds))
        self.run(self.publish())

    # -- what must hold after every step ---------------------------------------------------------------
    @invariant()
    def actor_never_gains(self) -> None:
        gain = self.run(self.value()) - self.start_value
        assert gain <= 0, f"the actor is up {float(gain) / UNIT:,.6f} USDC"

    @invariant()
    def insurance_never_pays(self) -> None:
        m = self.run(self.c.fetch_market(self.setup.market))
        assert (m.insurance_paid, m.socialized_loss) == (0, 0)

    @invariant()
    def no_frozen_market(self) -> None:
        m = self.run(self.c.fetch_market(self.setup.market))
        for who, p in self.live:
            owner = self.actor[who]
            close = ix.close_position(owner=owner.pubkey(), market=self.setup.market, book=m.book, oracle=m.oracle,
                                      position=PositionRef(p.slot, p.generation), worst_price=0 if p.side == Side.LONG else risk.U64_MAX,
                                      program_id=self.c.program_id)  # fmt: skip
            try:
                self.run(self.c.simulate([close], [owner]))
            except ProgramError as exc:
                assert exc.error_name in ALLOWED_CLOSE_REFUSALS, f"an ordinary close is refused: {exc}"


TestAdversary = Adversary.TestCase
TestAdversary.settings = settings(
    max_examples=40,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def test_attack_1_in_the_machine() -> None:
    """Attack 1 of issue 8 as a sequence of the machine's own rules, beside the random search."""
    machine = Adversary()
    try:
        machine.open_pair(long_who=0, short_who=1, units=100, long_extra=100, short_extra=100, long_first=True)
        machine.actor_never_gains()
        machine.index_step(bps=-249)
        machine.index_step(bps=-60)
        machine.open_one(who=2, side=Side.SHORT, units=50, extra_pct=200)
        machine.crank()
        for _ in range(len(machine.live)):
            machine.close(pick=0)
        machine.actor_never_gains()
        machine.insurance_never_pays()
        machine.no_frozen_market()
    finally:
        machine.teardown()
