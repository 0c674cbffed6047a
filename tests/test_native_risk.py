"""risk.c and book.c on the host (ASan + UBSan) against the Python model, on random inputs.

Every risk function is compared with its twin in ``perpkit.risk``, errors
included.  The book is driven through random insert/close sequences and
checked after every step: its own invariants (crit bits, ordering, subtree
sums, keys, counts) and the order and sums of a sorted Python model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import Driver
from hypothesis import event, given, settings
from hypothesis import strategies as st

from perpkit import program_errors, risk
from perpkit.risk import U64_MAX, RiskError, Side, Terms

CODES = {cls.error_name: code for code, cls in program_errors.ERRORS_BY_CODE.items()}

# realistic ranges, with the edges mixed in
prices = st.one_of(st.integers(1, 10**13), st.sampled_from([1, 10**6, U64_MAX]))
sizes = st.one_of(st.integers(1, 10**15), st.sampled_from([1, U64_MAX]))
collaterals = st.one_of(st.integers(0, 10**15), st.sampled_from([0, 1, U64_MAX]))
indices = st.one_of(st.integers(-(10**24), 10**24), st.sampled_from([0, -(2**127), 2**127 - 1]))
bps = st.integers(0, 10_000)
sides = st.sampled_from([Side.LONG, Side.SHORT])
skews = st.integers(-(10**16), 10**16)
skew_scales = st.one_of(st.integers(1, 10**17), st.just(2**62))


def code(fn: Callable[[], None]) -> str:
    """The model's error code for a check (0 when it passes), as the driver prints it."""
    try:
        fn()
    except RiskError as exc:
        return str(CODES[exc.error_name])
    return "0"


def expect(fn: Callable[[], Any]) -> str:
    """The model's answer in the driver's format."""
    try:
        value = fn()
    except RiskError as exc:
        return f"err {CODES[exc.error_name]}"
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return str(value)


@settings(max_examples=300, deadline=None)
@given(price=st.integers(-5, 10**13), conf=st.integers(0, 10**12), age=st.integers(-100, 200),
       staleness=st.integers(1, 120), conf_bps=bps, ahead=st.integers(0, 60))  # fmt: skip
def test_oracle_checks(
    native: Driver, price: int, conf: int, age: int, staleness: int, conf_bps: int, ahead: int
) -> None:
    now = 1_700_000_000
    want = code(lambda: risk.check_oracle(price, conf, now - age, now, staleness, conf_bps, ahead))
    assert native.ask("oracle", price, conf, now - age, now, staleness, conf_bps, ahead) == want


@pytest.mark.parametrize(
    ("publish_time", "now"),
    [(-(2**63), 1), (-(2**63), 2**63 - 1), (2**63 - 1, -(2**63)), (2**63 - 1, 0), (0, 2**63 - 1)],
)
def test_oracle_ages_at_the_ends_of_i64(native: Driver, publish_time: int, now: int) -> None:
    """The age of a publish time is a difference of two i64 that may not fit in one: no signed overflow
    (UBSan aborts the driver on one), and the model's answer."""
    want = code(lambda: risk.check_oracle(100, 0, publish_time, now, 60, 200, 5))
    assert native.ask("oracle", 100, 0, publish_time, now, 60, 200, 5) == want


PARAM_NAMES = ["skew_scale", "max_funding_rate_bps_per_day", "max_staleness_s", "ewma_window_s", "initial_margin_bps",
               "maintenance_margin_bps", "taker_fee_bps", "liquidation_reward_bps", "price_band_bps", "max_conf_bps",
               "max_open_interest", "min_position_notional", "max_publish_ahead_s"]  # fmt: skip


def near(bound: int, spread: int = 2) -> st.SearchStrategy[int]:
    """Values at and around a bound (the edges are where the two implementations could differ)."""
    return st.integers(max(0, bound - spread), bound + spread)


@st.composite
def market_params(draw: st.DrawFn) -> dict[str, int]:
    """Parameters within the bounds, then (most of the time) one of them moved to around its bound."""
    k = draw(st.integers(20_000, 2**62 - 1))
    mm = draw(st.integers(1, 9_999))
    values = {
        "skew_scale": k,
        "max_funding_rate_bps_per_day": draw(st.integers(0, 1_000)),
        "max_staleness_s": draw(st.integers(1, 86_400)),
        "ewma_window_s": draw(st.integers(1, 7 * 86_400)),
        "initial_margin_bps": draw(st.integers(mm + 1, 10_000)),
        "maintenance_margin_bps": mm,
        "taker_fee_bps": draw(st.integers(0, 100)),
        "liquidation_reward_bps": draw(st.integers(0, 5_000)),
        "price_band_bps": draw(st.integers(1, 10_000)),
        "max_conf_bps": draw(st.integers(0, 10_000)),
        "max_open_interest": draw(st.integers(1, k * mm // 20_000)),
        "min_position_notional": draw(st.integers(1_000_000, 10**12)),
        "max_publish_ahead_s": draw(st.integers(0, 60)),
    }
    edges = {
        "skew_scale": st.one_of(near(0), near(2**62)),
        "max_funding_rate_bps_per_day": near(1_000),
        "max_staleness_s": st.one_of(near(0), near(86_400)),
        "ewma_window_s": st.one_of(near(0), near(7 * 86_400)),
        "initial_margin_bps": st.one_of(near(mm), near(10_000)),
        "maintenance_margin_bps": st.one_of(near(0), near(values["initial_margin_bps"])),
        "taker_fee_bps": near(100),
        "liquidation_reward_bps": near(5_000),
        "price_band_bps": st.one_of(near(0), near(10_000)),
        "max_conf_bps": near(10_000),
        "max_open_interest": st.one_of(near(0), near(k * mm // 20_000)),
        "min_position_notional": near(1_000_000),
        "max_publish_ahead_s": near(60),
    }
    moved = draw(st.one_of(st.none(), st.sampled_from(PARAM_NAMES)))
    if moved is not None:
        values[moved] = draw(edges[moved])
    return values


@settings(max_examples=500, deadline=None)
@given(
    values=market_params(),
    oi_long=st.one_of(st.just(0), st.integers(0, 10**14)),
    oi_short=st.one_of(st.just(0), st.integers(0, 10**14)),
)
def test_parameter_bounds(native: Driver, values: dict[str, int], oi_long: int, oi_short: int) -> None:
    want = code(lambda: risk.check_params({**values, "padding": [0] * 4}, oi_long, oi_short))
    event("accepted" if want == "0" else "refused")
    got = native.ask("params", *[values[n] for n in PARAM_NAMES], oi_long, oi_short)
    assert got == want
    if want == "0":  # the rule's promise: any skew the open interest allows keeps the mark within mm/2
        worst = max(values["max_open_interest"], oi_long, oi_short)
        assert worst * 2 * risk.BPS <= values["skew_scale"] * values["maintenance_margin_bps"]


@settings(max_examples=400, deadline=None)
@given(index=prices, s0=skews, longs=st.integers(0, 10**15), shorts=st.integers(0, 10**15), k=skew_scales)
def test_batch_exit_price(native: Driver, index: int, s0: int, longs: int, shorts: int, k: int) -> None:
    want = expect(lambda: risk.batch_exit_price(index, s0, longs, shorts, k))
    assert native.ask("bexit", index, s0, longs, shorts, k) == want
    if not want.startswith("err"):  # the one price moves the skew as a fill of the net size would
        net_buy = shorts > longs
        assert int(want) == risk.fill_price(index, s0, s0 - longs + shorts, k, net_buy)


@settings(max_examples=300, deadline=None)
@given(ewma=st.one_of(st.just(0), prices), price=prices, dt=st.integers(-50, 1000), window=st.integers(1, 600))
def test_ewma(native: Driver, ewma: int, price: int, dt: int, window: int) -> None:
    t = 1_700_000_000
    assert native.ask("ewma", ewma, t, price, t + dt, window) == expect(
        lambda: risk.update_ewma(ewma, t, price, t + dt, window)
    )


@settings(max_examples=400, deadline=None)
@given(oi_long=st.integers(0, 10**15), oi_short=st.integers(0, 10**15), price=st.one_of(st.just(0), prices),
       dt=st.integers(0, 10**8), rate=st.integers(0, 10_000), il=indices, is_=indices)  # fmt: skip
def test_funding_accrual(
    native: Driver, oi_long: int, oi_short: int, price: int, dt: int, rate: int, il: int, is_: int
) -> None:
    want = expect(lambda: risk.accrue_funding(oi_long, oi_short, price, dt, rate, il, is_))
    assert native.ask("fund", oi_long, oi_short, price, dt, rate, il, is_) == want


@settings(max_examples=400, deadline=None)
@given(index=prices, s0=skews, q=sizes, k=skew_scales, buy=st.booleans())
def test_fill_price(native: Driver, index: int, s0: int, q: int, k: int, buy: bool) -> None:
    s1 = s0 + q if buy else s0 - q
    assert native.ask("fill", index, s0, s1, k, int(buy)) == expect(lambda: risk.fill_price(index, s0, s1, k, buy))


@settings(max_examples=400, deadline=None)
@given(index=prices, s0=skews, q=st.integers(1, 10**15), k=skew_scales, ewma=prices, band=bps, buy=st.booleans())
def test_price_band(native: Driver, index: int, s0: int, q: int, k: int, ewma: int, band: int, buy: bool) -> None:
    s1 = s0 + q if buy else s0 - q
    want = code(lambda: risk.check_band(index, s0, s1, k, ewma, band))
    assert native.ask("band", index, s0, s1, k, ewma, band) == want


@settings(max_examples=300, deadline=None)
@given(size=sizes, price=prices, b=bps)
def test_notional_fee_requirement(native: Driver, size: int, price: int, b: int) -> None:
    assert native.ask("notional", size, price) == expect(lambda: risk.notional(size, price))
    n = min(size * price // 10**6, U64_MAX)
    assert native.ask("fee", n, b) == expect(lambda: risk.fee(n, b))
    assert native.ask("req", size, price, b) == expect(lambda: risk.requirement(size, price, b))


terms = st.builds(Terms, side=sides, size=sizes, collateral=collaterals, entry_price=prices, funding_at_open=indices)


@settings(max_examples=500, deadline=None)
@given(t=terms, index=indices, price=prices, mm=st.integers(1, 9_999))
def test_keys_thresholds_liquidation_prices(native: Driver, t: Terms, index: int, price: int, mm: int) -> None:
    args = (t.side, t.size, t.collateral, t.entry_price, t.funding_at_open)
    assert native.ask("key", *args) == expect(lambda: risk.key(t))
    assert native.ask("thr", t.side, price, index, mm) == expect(lambda: risk.threshold(t.side, price, index, mm))
    assert native.ask("lp", *args, index, mm) == expect(lambda: risk.liquidation_price(t, index, mm))
    assert native.ask("owed", t.size, index, t.funding_at_open) == expect(
        lambda: risk.funding_owed(t.size, index, t.funding_at_open)
    )
    assert native.ask("pnl", t.side, t.size, t.entry_price, price) == expect(lambda: risk.pnl(t, price))


@settings(max_examples=300, deadline=None)
@given(t=terms.filter(lambda t: t.size <= 10**15 and t.collateral <= 10**15 and abs(t.funding_at_open) <= 10**24),
       index=st.integers(-(10**22), 10**22), mm=st.integers(1, 9_999))  # fmt: skip
def test_liquidation_price_is_exact(t: Terms, index: int, mm: int) -> None:
    """At LP a position is safe, one tick past it liquidatable; the key test equals the exact inequality."""
    lp = risk.liquidation_price(t, index, mm)

    def exact(p: int) -> bool:  # equity < maintenance, in rationals (scaled by B*BPS*FS)
        sign = 1 if t.side == Side.LONG else -1
        equity = (
            t.collateral * 10**16
            + sign * t.size * (p - t.entry_price) * 10**10
            - t.size * (index - t.funding_at_open) * 10**4
        )
        return equity < t.size * p * mm * 10**6

    for p in (lp - 1, lp, lp + 1):
        if 1 <= p <= 10**14:
            assert risk.is_liquidatable(t, p, index, mm) == exact(p)
    if t.side == Side.LONG and lp >= 2 and lp <= 10**14:
        assert not exact(lp) and exact(lp - 1)
    if t.side == Side.SHORT and 1 <= lp <= 10**14:
        assert not exact(lp) and exact(lp + 1)


# -- the book ----------------------------------------------------------------------------------


class BookModel:
    """Live positions per side as a sorted list of (key, slot), with their terms."""

    def __init__(self) -> None:
        self.live: dict[int, tuple[Terms, int]] = {}

    def ordered(self, side: int) -> list[int]:
        return [s for (_, s) in sorted((k, s) for s, (t, k) in self.live.items() if t.side == side)]

    def sums(self, side: int) -> str:
        mine = [t for t, _ in self.live.values() if t.side == side]
        return " ".join(
            str(v)
            for v in (
                len(mine),
                sum(t.collateral for t in mine),
                sum(t.size for t in mine),
                sum(t.size * t.entry_price for t in mine),
                sum(t.size * t.funding_at_open for t in mine),
            )
        )


book_terms = st.builds(
    Terms,
    side=sides,
    size=st.integers(1, 10**12),
    collateral=st.integers(1, 10**12),
    # few distinct prices and collaterals: many equal keys, told apart by slot
    entry_price=st.one_of(st.integers(1, 10**12), st.sampled_from([10**9, 10**9 + 1, 64_000 * 10**6])),
    funding_at_open=st.integers(-(10**20), 10**20),
)
operations = st.lists(st.one_of(st.tuples(st.just("open"), book_terms), st.tuples(st.just("close"), st.integers(0, 10**6))), min_size=1, max_size=120)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(ops=operations)
def test_book_insert_remove_against_a_sorted_model(native: Driver, ops: list[tuple[str, Any]]) -> None:
    assert native.ask("bnew", 64) == "ok"
    model = BookModel()
    for op, arg in ops:
        if op == "open":
            t: Terms = arg
            answer = native.ask("bopen", t.side, t.size, t.collateral, t.entry_price, t.funding_at_open)
            if len(model.live) == 64:
                assert answer == f"err {CODES['BookFull']}"
                continue
            slot_text, key_text = answer.split()
            slot = int(slot_text)
            assert slot not in model.live and int(key_text) == risk.key(t)
            model.live[slot] = (t, risk.key(t))
        elif model.live:
            slot = sorted(model.live)[arg % len(model.live)]
            assert native.ask("bclose", slot) == "0"
            del model.live[slot]
            assert native.ask("blive", slot) == "0"
            assert native.ask("bclose", slot) == str(CODES["PositionLiquidated"])  # gone: not live any more
        assert native.ask("bcheck") == "ok"
        for side in Side:
            assert native.ask("blist", side).split()[1:] == [str(s) for s in model.ordered(side)]
            assert native.ask("bsums", side) == model.sums(side)
            # the most exposed position (update_market_params' check): the highest long key, the lowest short one
            order = model.ordered(side)
            assert native.ask("bextreme", side) == (
                str(order[-1] if side == Side.LONG else order[0]) if order else "none"
            )
    for slot in model.live:
        assert native.ask("blive", slot) == "1"


def test_book_reuses_slots_and_fills_up(native: Driver) -> None:
    assert native.ask("bnew", 4) == "ok"
    slots = [int(native.ask("bopen", 0, 10**6, 10**8, 10**9, 0).split()[0]) for _ in range(4)]
    assert slots == [0, 1, 2, 3]
    assert native.ask("bopen", 1, 10**6, 10**8, 10**9, 0) == f"err {CODES['BookFull']}"
    assert native.ask("bclose", 2) == "0"
    assert native.ask("bopen", 1, 10**6, 10**8, 10**9, 0).split()[0] == "2"  # the freed slot, reused
    assert native.ask("bcheck") == "ok"


# -- batch liquidation: equity, payout, the cut and garbage collection ---------------------------


@settings(max_examples=300, deadline=None)
@given(side=sides, terms_list=st.lists(st.builds(Terms, side=st.just(0), size=st.integers(1, 10**12),
       collateral=st.integers(0, 10**12), entry_price=st.integers(1, 10**12),
       funding_at_open=st.integers(-(10**20), 10**20)), min_size=1, max_size=8),
       price=prices, index=st.integers(-(10**20), 10**20))  # fmt: skip
def test_batch_equity(native: Driver, side: int, terms_list: list[Terms], price: int, index: int) -> None:
    sums = risk.Sums.of(terms_list)
    want = expect(lambda: risk.batch_equity(side, sums, price, index))
    got = native.ask("beq", side, sums.collateral, sums.size, sums.size_entry, sums.size_funding, price, index)
    assert got == want


@settings(max_examples=300, deadline=None)
@given(equity=st.integers(-(10**16), 10**16), collateral=st.integers(0, 10**15), pool=st.integers(0, 10**15),
       insurance=st.integers(0, 10**15), reward=bps)  # fmt: skip
def test_batch_payout(native: Driver, equity: int, collateral: int, pool: int, insurance: int, reward: int) -> None:
    try:
        p = risk.batch_payout(equity, collateral, pool, insurance, reward)
        want = f"{p.reward} {p.insurance_credit} {p.insurance_paid} {p.socialized_loss} {p.pool_credit}"
    except RiskError as exc:
        want = f"err {CODES[exc.error_name]}"
    assert native.ask("payout", equity, collateral, pool, insurance, reward) == want
    if not want.startswith("err"):
        # value is only moved, never made: what the traders' collateral and the funds give equals what is paid
        assert collateral + p.insurance_paid == p.reward + p.insurance_credit + p.pool_credit


cuts = st.lists(st.tuples(sides, st.integers(0, 10**6), st.integers(-3, 3)), min_size=1, max_size=6)


@settings(max_examples=80, deadline=None)
@given(opens=st.lists(book_terms, min_size=1, max_size=70), closes=st.lists(st.integers(0, 10**6), max_size=10),
       cut_plan=cuts, gc_chunks=st.lists(st.integers(1, 9), min_size=1, max_size=40))  # fmt: skip
def test_book_cut_and_collect_against_the_model(
    native: Driver, opens: list[Terms], closes: list[int], cut_plan: list[tuple[int, int, int]], gc_chunks: list[int]
) -> None:
    assert native.ask("bnew", 80) == "ok"
    model = BookModel()
    for t in opens:
        slot = int(native.ask("bopen", t.side, t.size, t.collateral, t.entry_price, t.funding_at_open).split()[0])
        model.live[slot] = (t, risk.key(t))
    for pick in closes:
        slot = sorted(model.live)[pick % len(model.live)]
        assert native.ask("bclose", slot) == "0"
        del model.live[slot]
        if not model.live:
            break
    cut_count = 0
    for side, pick, offset in cut_plan:
        keys = sorted(k for t, k in model.live.values() if t.side == side) or [0]
        threshold = keys[pick % len(keys)] + offset  # at, just below and just above existing keys
        above = side == Side.LONG
        gone = [s for s, (t, k) in model.live.items() if t.side == side and (k > threshold if above else k < threshold)]
        answer = native.ask("bcut", side, threshold, 2**32 - 1 if above else 0, int(above))
        expected = risk.Sums.of([model.live[s][0] for s in gone])
        assert answer == " ".join(str(v) for v in (expected.count, expected.collateral, expected.size,
                                                   expected.size_entry, expected.size_funding))  # fmt: skip
        for s in gone:
            del model.live[s]
            assert native.ask("blive", s) == "0"
        cut_count += len(gone)
        assert native.ask("bcheck") == "ok"
        for check_side in Side:
            assert native.ask("blist", check_side).split()[1:] == [str(s) for s in model.ordered(check_side)]
            assert native.ask("bsums", check_side) == model.sums(check_side)
    pending = cut_count
    for chunk in gc_chunks:
        freed, pending_now = map(int, native.ask("bgc", chunk).split())
        assert freed <= chunk and pending_now <= pending
        pending = pending_now
        assert native.ask("bcheck") == "ok"
    while pending:
        pending = int(native.ask("bgc", 1000).split()[1])
    free_slots, slots_used, free_nodes, nodes_used = map(int, native.ask("bfree").split())
    live = len(model.live)
    assert slots_used - free_slots == live  # every cut or closed slot is free again
    inner = sum(max(0, sum(1 for t, _ in model.live.values() if t.side == s) - 1) for s in Side)
    assert nodes_used - free_nodes == inner  # and every node of a cut subtree
    # freed slots are reused (with a new generation) without disturbing the live ones
    new = [int(native.ask("bopen", 0, 10**6, 10**8, 10**9, 0).split()[0]) for _ in range(min(3, 80 - live))]
    assert all(s not in model.live for s in new)
    assert native.ask("bcheck") == "ok"
