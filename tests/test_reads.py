"""Reads sized to the need: trading over RPC never downloads the book (issue 10).

The session's ``perpkit localnet`` counts the calls and the bytes it answers
with (``perpkit_getStats``); with an 8.5 MiB book, one read of the whole
account would be some 11 MB of base64.
"""

from __future__ import annotations

from typing import Any

import httpx
from solana.constants import LAMPORTS_PER_SOL

from perpkit import Client
from perpkit import instructions as ix
from perpkit.accounts import PositionRef
from perpkit.positions import Side
from perpkit.testing import setup_trading

UNIT = 10**6


def stats(url: str) -> dict[str, Any]:
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "perpkit_getStats"}).json()
    result: dict[str, Any] = answer["result"]
    return result


async def test_an_open_close_pair_reads_slots_not_the_book(perps_rpc_url: str) -> None:
    client = await Client.connect(perps_rpc_url, airdrop_lamports=100 * LAMPORTS_PER_SOL)
    try:
        setup = await setup_trading(client, price=100 * UNIT, traders=1, book_capacity=65_536)
        trader = setup.traders[0]
        warm_up = await client.open_position(setup.market, Side.SHORT, UNIT, 50 * UNIT, owner=trader)
        await client.close_position(setup.market, warm_up, owner=trader)  # one-off reads happen here
        before = stats(perps_rpc_url)
        position = await client.open_position(setup.market, Side.LONG, UNIT, 50 * UNIT, owner=trader)
        assert position.size == UNIT and not position.liquidated and position.owner == trader.pubkey()
        # by reference only: the side comes from one slot of the book
        await client.close_position(setup.market, PositionRef(position.slot, position.generation), owner=trader)
        after = stats(perps_rpc_url)
        downloaded = after["responseBytes"] - before["responseBytes"]
        assert downloaded < 64 * 1024, f"{downloaded:,} bytes for one open/close pair"
        calls = after["requests"] - before["requests"] - 1
        assert calls <= 10, after["calls"]
        assert (await client.positions(setup.market, trader.pubkey())) == []
    finally:
        await client.close()


async def test_transaction_outcome_and_recent_prioritization_fees(perps_client: Client) -> None:
    """What a crank needs after a fault and before a send: the fate of a signature, and recent priority fees."""
    from solders.keypair import Keypair as NewKeypair

    c = perps_client
    setup = await setup_trading(c, traders=1)
    result = await c.send([ix.update_funding(market=setup.market, oracle=setup.oracle, program_id=c.program_id)],
                          compute_unit_price=1_234)  # fmt: skip
    outcome = await c.transaction_outcome(result.signature)
    assert outcome is not None and outcome.ok and outcome.logs == result.logs
    assert outcome.compute_units == result.compute_units
    never = str(NewKeypair().sign_message(b"never sent"))
    assert await c.transaction_outcome(never) is None
    mine = await c.signatures_for_address(setup.market)
    assert mine[0] == (result.signature, False)  # newest first
    assert await c.signatures_for_address(setup.market, until=result.signature) == []
    assert len(await c.signatures_for_address(setup.market, limit=2)) == 2
    fees = await c.recent_prioritization_fees([setup.market])
    assert 1_234 in fees
    assert 1_234 not in await c.recent_prioritization_fees([NewKeypair().pubkey()])
