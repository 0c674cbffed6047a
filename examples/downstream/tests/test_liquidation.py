"""Open a 20x long, crash the price past its liquidation price, liquidate, and collect the reward."""

from perpkit import Client, MarketParams, Side, clear_liquidated, liquidate
from perpkit.spl_token import associated_token_address
from perpkit.testing import setup_trading

UNIT = 10**6  # the quote token has 6 decimals


async def test_a_crashed_20x_long_is_liquidated_and_the_cranker_is_paid(perps_client: Client) -> None:
    client = perps_client
    setup = await setup_trading(
        client,
        price=100 * UNIT,
        params=MarketParams(initial_margin_bps=501, maintenance_margin_bps=500),  # up to about 20x
        insurance=UNIT,
    )
    trader = setup.traders[0]
    long = await client.open_position(setup.market, Side.LONG, 10 * UNIT, 51 * UNIT, owner=trader)

    # The price crashes one tick past the long's liquidation price.
    await setup.set_price(client, long.liquidation_price() - 1)

    # The cranker (the client's payer) liquidates and is paid into its token account.
    reward_account = associated_token_address(client.payer.pubkey(), setup.quote_mint)
    balance_before = await client.token_balance(reward_account)
    liquidation = await liquidate(client, setup.market)

    assert liquidation is not None and liquidation.batch.long_count == 1
    assert liquidation.batch.cranker_reward > 0
    assert await client.token_balance(reward_account) - balance_before == liquidation.batch.cranker_reward
    assert (await client.fetch_position(setup.market, long.slot)).liquidated
    assert not (await client.fetch_book(setup.market)).live_mask()[long.slot]

    # Clearing drops the trader's reference to the liquidated position.
    await clear_liquidated(client, setup.market)
    assert (await client.fetch_user(setup.market, trader.pubkey())).open_refs == []
