"""The anchorpy lane: a whole liquidation scenario through anchorpy's ``Program`` for the perps IDL.

Runs where anchorpy is installed (``pip install -e '.[anchorpy,test]'``, the
second CI lane) and is skipped elsewhere.  The scenario goes over JSON-RPC
against the session's ``perpkit localnet``: anchorpy's provider is solana-py's
``AsyncClient``.  perpkit's own client only builds the stage (mint, oracle,
market, funded traders); every step of the scenario is an anchorpy method
call, account fetch or event parse, and is checked against perpkit's own
decoders.
"""

from __future__ import annotations

from typing import Any

import pytest
from solana.constants import LAMPORTS_PER_SOL
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from perpkit import Client
from perpkit.accounts import PositionRef
from perpkit.crank import decode_batches
from perpkit.positions import Side
from perpkit.risk import U64_MAX
from perpkit.spl_token import TOKEN_PROGRAM_ID, associated_token_address
from perpkit.testing import ConservationChecker, create_token_account, setup_trading

anchorpy = pytest.importorskip("anchorpy", reason="the anchorpy lane only: pip install -e '.[anchorpy,test]'")

from anchorpy import EventParser, Provider, Wallet  # noqa: E402
from solana.rpc.async_api import AsyncClient  # noqa: E402
from solana.rpc.types import TxOpts  # noqa: E402

from perpkit import pda  # noqa: E402
from perpkit.anchor import perps_program  # noqa: E402

UNIT = 10**6
PRICE = 100 * UNIT


def trader_accounts(program_id: Pubkey, market: Pubkey, owner: Pubkey, book: Pubkey) -> dict[str, Pubkey]:
    return {"owner": owner, "market": market, "user": pda.user_address(market, owner, program_id), "book": book}


async def test_a_liquidation_scenario_through_anchorpys_program(perps_rpc_url: str) -> None:
    stage = await Client.connect(perps_rpc_url, airdrop_lamports=100 * LAMPORTS_PER_SOL)
    connection = AsyncClient(perps_rpc_url)
    try:
        setup = await setup_trading(stage, price=PRICE, traders=1, insurance=10 * UNIT)
        checker = ConservationChecker(stage, setup.market)
        (trader,) = setup.traders
        program = perps_program(
            Provider(connection, Wallet(trader), TxOpts(preflight_commitment="confirmed")), stage.program_id
        )
        m = await stage.fetch_market(setup.market)

        # account fetch: anchorpy's decode of the market equals perpkit's, field by field
        fetched: Any = await program.account["Market"].fetch(setup.market)
        assert (fetched.oi_long, fetched.pool_balance, fetched.params.skew_scale) == (
            m.oi_long, m.pool_balance, m.params.skew_scale,
        )  # fmt: skip
        assert fetched.params.max_open_interest == m.params.max_open_interest

        # methods: open a long (6.7x) through anchorpy
        accounts = {**trader_accounts(stage.program_id, setup.market, trader.pubkey(), m.book), "oracle": m.oracle}
        await (
            program.methods["open_position"]
            .args([Side.LONG, 10 * UNIT, 150 * UNIT, U64_MAX])
            .accounts(accounts)
            .signers([trader])
            .rpc()
        )
        await checker.check()
        user: Any = await program.account["User"].fetch(
            pda.user_address(setup.market, trader.pubkey(), stage.program_id)
        )
        (ref,) = [PositionRef(r.slot, r.generation) for r in user.positions if r.slot != PositionRef.EMPTY]
        (position,) = await stage.positions(setup.market, trader.pubkey())
        assert (position.slot, position.generation) == (ref.slot, ref.generation) and not position.liquidated

        # the price falls through the liquidation price; anchorpy liquidates and parses the event
        await stage.set_oracle_price(setup.oracle, price=position.liquidation_price() - UNIT)
        cranker = Keypair()
        await stage.backend.request_airdrop(cranker.pubkey(), LAMPORTS_PER_SOL)
        cranker_token = await create_token_account(stage, setup.quote_mint, cranker.pubkey())
        signature = await (
            program.methods["liquidate"]
            .accounts({
                "cranker": cranker.pubkey(), "market": setup.market, "book": m.book, "oracle": m.oracle,
                "vault": m.vault, "cranker_token": cranker_token,
                "market_authority": pda.market_authority_address(setup.market, stage.program_id),
                "token_program": TOKEN_PROGRAM_ID,
            })
            .signers([cranker])
            .rpc()
        )  # fmt: skip
        await checker.check()
        tx = await connection.get_transaction(signature, commitment="confirmed", max_supported_transaction_version=0)
        assert tx.value is not None and tx.value.transaction.meta is not None
        logs = list(tx.value.transaction.meta.log_messages or [])
        events: list[Any] = []
        EventParser(stage.program_id, program.coder).parse_logs(logs, events.append)
        (event,) = [e for e in events if e.name == "LiquidationBatch"]
        (ours,) = decode_batches(logs)
        assert (event.data.long_count, event.data.exit_price, event.data.cranker_reward) == (
            ours.long_count, ours.exit_price, ours.cranker_reward,
        )  # fmt: skip
        assert ours.long_count == 1 and ours.cranker_reward > 0
        assert (
            await stage.token_balance(associated_token_address(cranker.pubkey(), setup.quote_mint))
            == ours.cranker_reward
        )
        (after,) = await stage.positions(setup.market, trader.pubkey())
        assert after.liquidated

        # clear the reference through anchorpy, by (slot, generation)
        await (
            program.methods["clear_position"]
            .args([ref.to_idl()])
            .accounts({"market": setup.market, "user": pda.user_address(setup.market, trader.pubkey(), stage.program_id),
                       "book": m.book})
            .signers([trader])
            .rpc()
        )  # fmt: skip
        assert await stage.positions(setup.market, trader.pubkey()) == []
        market_after: Any = await program.account["Market"].fetch(setup.market)
        assert market_after.positions_liquidated == 1 and market_after.last_liquidation_exit_price == ours.exit_price
    finally:
        await connection.close()
        await stage.close()
