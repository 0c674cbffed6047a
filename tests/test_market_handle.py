"""The market handle (``await client.market(address)``) and the rule that only the session touches the backend."""

from __future__ import annotations

import inspect
import re

from conftest import ROOT
from solders.instruction import Instruction

from perpkit import UNIT, Client, Side
from perpkit.market_handle import MarketHandle
from perpkit.testing import mint_to, setup_trading

SENDING = [
    name
    for name, member in inspect.getmembers(MarketHandle, inspect.iscoroutinefunction)
    # reads, and clear_liquidated (packed clear_user transactions: no single instruction)
    if not name.startswith("_")
    and name not in {"refresh", "book", "slot", "user", "position", "positions", "clear_liquidated"}
]


def test_every_sending_method_has_an_instruction_builder_twin() -> None:
    twins = {"fund_pool": "fund_ix", "fund_insurance": "fund_ix"}
    assert SENDING, "no sending methods found"
    for name in SENDING:
        twin = twins.get(name, f"{name}_ix")
        assert callable(getattr(MarketHandle, twin, None)), f"MarketHandle.{name} has no {twin}"


async def test_the_handle_builds_instructions_without_reading_the_chain(perps_client: Client) -> None:
    c = perps_client
    setup = await setup_trading(c, price=100 * UNIT, traders=1)
    market = await c.market(setup.market)
    assert await c.market(setup.market) is market  # one handle per market per session
    trader = setup.traders[0]
    reads_before = market.state
    built = market.open_position_ix(trader.pubkey(), Side.LONG, UNIT, 50 * UNIT)
    assert isinstance(built, Instruction) and built.program_id == c.program_id
    position = await market.open_position(Side.LONG, UNIT, 50 * UNIT, owner=trader)
    assert market.state is not reads_before  # the open refreshed the state with the clock, in one read
    assert (await market.position(position)).size == UNIT
    await c.send([market.close_position_ix(trader.pubkey(), position, worst_price=0)], [trader])
    assert await market.positions(trader.pubkey()) == []


def test_only_the_session_and_the_backends_touch_the_backend() -> None:
    allowed = {"client.py", "chain.py", "runtime.py"}  # the session; the chain and runtime own LiteSVM
    offenders = []
    for path in [*(ROOT / "client" / "perpkit").glob("*.py"), *(ROOT / "bench").glob("*.py")]:
        if path.name in allowed:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\.(backend|svm)\b", line) and not line.lstrip().startswith("#"):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


async def test_set_account_restores_a_snapshot_on_both_backends(perps_client: Client) -> None:
    c = perps_client
    setup = await setup_trading(c, price=100 * UNIT, traders=1)
    market = await c.market(setup.market)
    (saved,) = await c.accounts([setup.market])
    assert saved is not None
    before = (await market.refresh()).pool_balance
    await mint_to(c, setup.quote_mint, market._token(c.payer.pubkey(), None), UNIT)
    await market.fund_pool(UNIT)
    assert (await market.refresh()).pool_balance == before + UNIT
    await c.set_account(setup.market, saved)
    assert (await market.refresh()).pool_balance == before
    (restored,) = await c.accounts([setup.market])
    assert restored is not None and bytes(restored.data) == bytes(saved.data)
