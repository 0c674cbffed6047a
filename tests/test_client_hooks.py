"""``Client.on_sent``: every transaction the client sends is reported, landed or refused."""

from __future__ import annotations

import pytest
from solders.keypair import Keypair
from solders.system_program import TransferParams, transfer

from perpkit import Client
from perpkit import instructions as ix
from perpkit.backends.base import TxResult
from perpkit.crank import LIQUIDATE_COMPUTE_LIMIT, collect_garbage, liquidate
from perpkit.errors import ProgramError, TransactionFailed
from perpkit.risk import Side
from perpkit.testing import create_oracle, setup_trading

UNIT = 10**6


async def test_on_sent_sees_landed_and_refused_transactions(perps_client: Client) -> None:
    c = perps_client
    seen: list[TxResult] = []
    c.on_sent.append(seen.append)
    oracle = await create_oracle(c, price=100 * UNIT, oracle_id=7)
    assert len(seen) == 1 and seen[0].ok

    landed = await c.send([transfer(TransferParams(from_pubkey=c.payer.pubkey(), to_pubkey=Keypair().pubkey(),
                                                   lamports=1_000_000))])  # fmt: skip
    assert seen[-1] == landed and landed.ok

    # refused by the program (another authority), with a compute-budget prefix: the index is the caller's
    stranger = Keypair()
    await c.airdrop(stranger.pubkey(), 10_000_000)
    refuse = ix.set_oracle_price(authority=stranger.pubkey(), oracle=oracle, price=UNIT, conf=0,
                                 publish_time=await c.now(), program_id=c.program_id)  # fmt: skip
    before = len(seen)
    with pytest.raises(ProgramError) as refused:
        await c.send([refuse], [stranger], compute_unit_limit=200_000, compute_unit_price=1)
    assert len(seen) == before + 1
    result = seen[-1]
    assert not result.ok and result.signature == refused.value.signature and result.logs == refused.value.logs
    assert result.error is not None and result.error.instruction_index == 0

    # refused by the runtime (more lamports than the payer has): a TransactionFailed, not a program error
    poor = Keypair()
    await c.airdrop(poor.pubkey(), 10_000_000)
    with pytest.raises(TransactionFailed) as failed:
        await c.send([transfer(TransferParams(from_pubkey=poor.pubkey(), to_pubkey=Keypair().pubkey(),
                                              lamports=10**12))], [poor])  # fmt: skip
    assert not isinstance(failed.value, ProgramError)
    assert not seen[-1].ok and seen[-1].signature == failed.value.signature

    # a simulation sends nothing; a listener removed hears no more
    count = len(seen)
    with pytest.raises(ProgramError):
        await c.simulate([refuse], [stranger])
    assert len(seen) == count
    c.on_sent.remove(seen.append)
    await c.send([transfer(TransferParams(from_pubkey=c.payer.pubkey(), to_pubkey=Keypair().pubkey(),
                                          lamports=1_000_000))])  # fmt: skip
    assert len(seen) == count


async def test_on_sent_sees_the_crank_transactions(perps_client: Client) -> None:
    """The crank's paths (a liquidate sized by its simulation, garbage collection) report through it too."""
    c = perps_client
    setup = await setup_trading(c, price=100 * UNIT, traders=1)
    await c.open_position(setup.market, Side.LONG, 10 * UNIT, 150 * UNIT, owner=setup.traders[0])
    await c.set_oracle_price(setup.oracle, price=80 * UNIT)
    seen: list[TxResult] = []
    c.on_sent.append(seen.append)
    done = await liquidate(c, setup.market)
    assert done is not None
    assert seen == [done.result] and done.result.compute_units < LIQUIDATE_COMPUTE_LIMIT
    assert await liquidate(c, setup.market) is None  # the simulation finds nothing: nothing is sent
    assert seen == [done.result]
    gc = await collect_garbage(c, setup.market)
    assert gc and seen[1:] == gc
