/* Batch liquidation, garbage collection and clearing (docs/risk-engine.md,
 * "Batch liquidation" and "Garbage collection and clearing"). */
#include "perps.h"

static void to_risk_sums(const BookSums *b, RiskSums *r) {
  r->collateral = b->collateral;
  r->size = b->size;
  r->size_entry = b->size_entry;
  r->size_funding = b->size_funding;
}

/* Cut one side beyond its threshold at the index price: the sums of what went. */
static PerpsResult cut_side(const PerpsMarket *m, Book *b, uint8_t side, uint64_t price, BookSums *sums) {
  i128 index = market_funding_index(m, side), threshold;
  TRY(risk_threshold(side, price, &index, m->params.maintenance_margin_bps, &threshold));
  BookCut cut = {
      .key = book_ordered(threshold),
      .slot = side == PERPS_SIDE_LONG ? UINT32_MAX : 0,
      .above = side == PERPS_SIDE_LONG,
  };
  return book_cut(b, side, &cut, sums);
}

/* Aggregate equity of a side's cut positions at the exit price. */
static PerpsResult side_equity(const PerpsMarket *m, uint8_t side, const BookSums *sums, uint64_t exit_price,
                               i128 *equity) {
  *equity = 0;
  if (sums->count == 0) return 0;
  RiskSums r;
  to_risk_sums(sums, &r);
  i128 index = market_funding_index(m, side);
  return risk_batch_equity(side, &r, exit_price, &index, equity);
}

PerpsResult ix_liquidate(Ctx *ctx, const PerpsLiquidateAccounts *a, const PerpsLiquidateArgs *args) {
  PerpsMarket *m;
  Book b;
  int64_t now;
  uint64_t price, exit_price;
  TRY(market_load(ctx, a->market, &m));
  TRY(market_book(ctx, a->book, m, &b));
  TRY(require_vault(ctx, a->vault, m));
  TRY(require_address(ctx, a->token_program, &PERPS_ADDRESS_TOKEN_PROGRAM));
  /* checked even when there is no reward, so a misconfigured cranker learns it at once */
  TRY(token_require_account(ctx, a->cranker_token, &m->quote_mint));
  TRY(require_not_vault(ctx, a->cranker_token, m)); /* a reward to itself */
  SolBytes seeds[PERPS_LIQUIDATE_MARKET_AUTHORITY_SEEDS + 1];
  perps_liquidate_market_authority_seeds(a, args, seeds, &m->authority_bump);
  TRY(require_pda(ctx, a->market_authority, seeds, PERPS_LIQUIDATE_MARKET_AUTHORITY_SEEDS + 1));
  TRY(market_touch(m, &now));
  TRY(market_read_oracle(ctx, m, a->oracle, now, &price)); /* the index: never the mark */

  /* which positions go is decided at the index price ... */
  BookSums longs, shorts;
  TRY(cut_side(m, &b, PERPS_SIDE_LONG, price, &longs));
  TRY(cut_side(m, &b, PERPS_SIDE_SHORT, price, &shorts));
  if (longs.count + shorts.count == 0) return PERPS_ERR_NOTHING_TO_LIQUIDATE;
  /* ... and they leave as one trade at the fill price of the batch's net size (SPEC 6) */
  BatchExit exit = {price, (i128)m->oi_long - (i128)m->oi_short, longs.size, shorts.size, m->params.skew_scale};
  TRY(risk_batch_exit_price(&exit, &exit_price));
  i128 long_equity, short_equity, equity;
  TRY(side_equity(m, PERPS_SIDE_LONG, &longs, exit_price, &long_equity));
  TRY(side_equity(m, PERPS_SIDE_SHORT, &shorts, exit_price, &short_equity));
  if (!pk_add_i128(long_equity, short_equity, &equity)) return PERPS_ERR_ARITHMETIC_OVERFLOW;
  uint64_t collateral = longs.collateral;
  TRY(add_u64(&collateral, shorts.collateral));

  BatchInput in = {equity, collateral, m->pool_balance, m->insurance_balance, m->params.liquidation_reward_bps};
  BatchPayout out;
  TRY(risk_batch_payout(&in, &out));
  m->total_position_collateral -= collateral;
  m->pool_balance = (uint64_t)((i128)m->pool_balance + out.pool_credit); /* >= 0 by construction */
  m->insurance_balance -= out.insurance_paid;
  TRY(add_u64(&m->insurance_balance, out.insurance_credit));
  m->oi_long -= longs.size;
  m->oi_short -= shorts.size;

  SolClock clock;
  clock_now(&clock);
  TRY(add_u64(&m->liquidation_batches, 1));
  TRY(add_u64(&m->positions_liquidated, (uint64_t)longs.count + shorts.count));
  TRY(add_u64(&m->collateral_liquidated, collateral));
  TRY(add_u64(&m->cranker_rewards, out.reward));
  TRY(add_u64(&m->insurance_from_liquidations, out.insurance_credit));
  TRY(add_u64(&m->insurance_paid, out.insurance_paid));
  TRY(add_u64(&m->socialized_loss, out.socialized_loss));
  m->last_liquidation_slot = clock.slot;
  m->last_liquidation_price = price;
  m->last_liquidation_exit_price = exit_price;

  if (out.reward) {
    SolSignerSeeds signer = {seeds, PERPS_LIQUIDATE_MARKET_AUTHORITY_SEEDS + 1};
    TokenTransfer t = {a->vault, a->cranker_token, a->market_authority, out.reward, &signer};
    TRY(token_transfer(ctx, &t));
  }

  /* The batch as an Anchor event: "Program data: base64(discriminator || borsh)". */
  struct {
    uint64_t disc;
    PerpsLiquidationBatch batch;
  } event = {.disc = PERPS_EVENT_LIQUIDATION_BATCH,
             .batch = {
                 .market = *a->market->key,
                 .cranker = *a->cranker->key,
                 .slot = clock.slot,
                 .unix_timestamp = now,
                 .index_price = price,
                 .exit_price = exit_price,
                 .long_count = longs.count,
                 .short_count = shorts.count,
                 .long_size = longs.size,
                 .short_size = shorts.size,
                 .collateral = collateral,
                 .cranker_reward = out.reward,
                 .insurance_credit = out.insurance_credit,
                 .insurance_paid = out.insurance_paid,
                 .socialized_loss = out.socialized_loss,
                 .pool_credit = (int64_t)out.pool_credit,
             }};
  _Static_assert(sizeof(event) == 8 + sizeof(PerpsLiquidationBatch), "event record has no padding");
  pk_store_i128(&event.batch.equity, equity);
  /* One slice, as Anchor's emit! writes it, so every event parser reads it. */
  SolBytes record = {(const uint8_t *)&event, sizeof(event)};
  sol_log_data(&record, 1);
  return 0;
}

PerpsResult ix_collect_garbage(Ctx *ctx, const PerpsCollectGarbageAccounts *a, const PerpsCollectGarbageArgs *args) {
  PerpsMarket *m;
  Book b;
  TRY(market_load(ctx, a->market, &m));
  TRY(market_book(ctx, a->book, m, &b));
  uint32_t freed;
  book_collect_garbage(&b, args->max_nodes, &freed);
  return 0;
}

PerpsResult ix_clear_position(Ctx *ctx, const PerpsClearPositionAccounts *a, const PerpsClearPositionArgs *args) {
  PerpsMarket *m;
  PerpsUser *u;
  Book b;
  TRY(market_load(ctx, a->market, &m));
  TRY(market_book(ctx, a->book, m, &b));
  TRY(user_load(ctx, a->user, a->market, NULL, &u)); /* anyone may clear: no owner check */
  uint32_t ref;
  PerpsResult found = user_position(u, &b, &args->position, &ref);
  if (found == 0) return PERPS_ERR_POSITION_NOT_LIQUIDATED; /* still live */
  if (found != PERPS_ERR_POSITION_LIQUIDATED) return found;
  return user_forget(u, ref);
}

PerpsResult ix_clear_user(Ctx *ctx, const PerpsClearUserAccounts *a, const PerpsClearUserArgs *args) {
  (void)args;
  PerpsMarket *m;
  PerpsUser *u;
  Book b;
  TRY(market_load(ctx, a->market, &m));
  TRY(market_book(ctx, a->book, m, &b));
  TRY(user_load(ctx, a->user, a->market, NULL, &u)); /* anyone may clear: no owner check */
  uint32_t dropped; /* none is no error: another cranker may have cleared first */
  return user_drop_stale(u, &b, &dropped);
}
