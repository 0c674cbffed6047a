/* Batch liquidation, garbage collection and clearing (docs/risk-engine.md,
 * "Batch liquidation" and "Garbage collection and clearing"). */
#include "perps.h"

static void to_risk_sums(const BookSums *b, RiskSums *r) {
  r->collateral = b->collateral;
  r->size = b->size;
  r->size_entry = b->size_entry;
  r->size_funding = b->size_funding;
}

/* What one side's cut removed: its sums and their aggregate equity. */
typedef struct {
  BookSums sums;
  i128 equity;
} SideCut;

/* Cut one side beyond its threshold at `price`. */
static PerpsResult cut_side(const PerpsMarket *m, Book *b, uint8_t side, uint64_t price, SideCut *out) {
  BookSums *sums = &out->sums;
  i128 *equity = &out->equity;
  i128 index = pk_load_i128(side == SIDE_LONG ? &m->funding_index_long : &m->funding_index_short);
  i128 threshold;
  TRY(risk_threshold(side, price, &index, m->params.maintenance_margin_bps, &threshold));
  BookCut cut = {
      .key = book_ordered(threshold),
      .slot = side == SIDE_LONG ? UINT32_MAX : 0,
      .above = side == SIDE_LONG,
  };
  TRY(book_cut(b, side, &cut, sums));
  *equity = 0;
  if (sums->count == 0) return 0;
  RiskSums r;
  to_risk_sums(sums, &r);
  return risk_batch_equity(side, &r, price, &index, equity);
}

static PerpsResult add_u64(uint64_t *to, uint64_t v) {
  return __builtin_add_overflow(*to, v, to) ? PERPS_ERR_ARITHMETIC_OVERFLOW : 0;
}

PerpsResult ix_liquidate(Ctx *ctx, const PerpsLiquidateArgs *args) {
  (void)args;
  enum {
    CRANKER = PERPS_LIQUIDATE_CRANKER,
    MARKET = PERPS_LIQUIDATE_MARKET,
    AUTHORITY = PERPS_LIQUIDATE_MARKET_AUTHORITY,
  };
  PerpsMarket *m;
  Book b;
  int64_t now;
  uint64_t price;
  TRY(market_load(ctx, MARKET, &m));
  TRY(market_book(ctx, PERPS_LIQUIDATE_BOOK, m, &b));
  TRY(require_vault(ctx, PERPS_LIQUIDATE_VAULT, m));
  TRY(require_address(ctx, PERPS_LIQUIDATE_TOKEN_PROGRAM, &PERPS_ADDRESS_TOKEN_PROGRAM));
  /* checked even when there is no reward, so a misconfigured cranker learns it at once */
  TRY(token_require_account(ctx, PERPS_LIQUIDATE_CRANKER_TOKEN, &m->quote_mint));
  if (sol_pubkey_eq(ctx->accounts[PERPS_LIQUIDATE_CRANKER_TOKEN].key, &m->vault)) /* a reward to itself */
    return fail_account(ctx, PERPS_LIQUIDATE_CRANKER_TOKEN, PERPS_ERR_INVALID_ACCOUNT_ADDRESS);
  SolBytes seeds[3];
  TRY(require_market_authority(ctx, AUTHORITY, MARKET, m, seeds));
  TRY(market_touch(ctx, m, &now));
  TRY(market_read_oracle(ctx, m, PERPS_LIQUIDATE_ORACLE, now, &price)); /* the index: never the mark */

  SideCut long_cut, short_cut;
  TRY(cut_side(m, &b, SIDE_LONG, price, &long_cut));
  TRY(cut_side(m, &b, SIDE_SHORT, price, &short_cut));
  const BookSums longs = long_cut.sums, shorts = short_cut.sums;
  if (longs.count + shorts.count == 0) return PERPS_ERR_NOTHING_TO_LIQUIDATE;
  i128 equity;
  if (!pk_add_i128(long_cut.equity, short_cut.equity, &equity)) return PERPS_ERR_ARITHMETIC_OVERFLOW;
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
  m->liquidation_batches += 1;
  TRY(add_u64(&m->positions_liquidated, longs.count + shorts.count));
  TRY(add_u64(&m->collateral_liquidated, collateral));
  TRY(add_u64(&m->cranker_rewards, out.reward));
  TRY(add_u64(&m->insurance_from_liquidations, out.insurance_credit));
  TRY(add_u64(&m->insurance_paid, out.insurance_paid));
  TRY(add_u64(&m->socialized_loss, out.socialized_loss));
  m->last_liquidation_slot = clock.slot;
  m->last_liquidation_price = price;

  if (out.reward) {
    SolSignerSeeds signer = {seeds, 3};
    TokenTransfer t = {PERPS_LIQUIDATE_VAULT, PERPS_LIQUIDATE_CRANKER_TOKEN, AUTHORITY, out.reward, &signer};
    TRY(token_transfer(ctx, &t));
  }

  /* The batch as an Anchor event: "Program data: base64(discriminator || borsh)". */
  struct {
    uint64_t disc;
    PerpsLiquidationBatch batch;
  } event = {.disc = PERPS_EVENT_LIQUIDATION_BATCH,
             .batch = {
      .market = *ctx->accounts[MARKET].key,
      .cranker = *ctx->accounts[CRANKER].key,
      .slot = clock.slot,
      .unix_timestamp = now,
      .index_price = price,
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

PerpsResult ix_collect_garbage(Ctx *ctx, const PerpsCollectGarbageArgs *args) {
  PerpsMarket *m;
  Book b;
  TRY(market_load(ctx, PERPS_COLLECT_GARBAGE_MARKET, &m));
  TRY(market_book(ctx, PERPS_COLLECT_GARBAGE_BOOK, m, &b));
  uint32_t freed;
  book_collect_garbage(&b, args->max_nodes, &freed);
  return 0;
}

PerpsResult ix_clear_position(Ctx *ctx, const PerpsClearPositionArgs *args) {
  enum { MARKET = PERPS_CLEAR_POSITION_MARKET, USER = PERPS_CLEAR_POSITION_USER };
  PerpsMarket *m;
  Book b;
  uint8_t *data;
  TRY(market_load(ctx, MARKET, &m));
  TRY(market_book(ctx, PERPS_CLEAR_POSITION_BOOK, m, &b));
  TRY(load_account(ctx, USER, PERPS_DISC_USER, PERPS_SIZE_USER, &data));
  PerpsUser *u = (PerpsUser *)data;
  if (!sol_pubkey_eq(&u->market, ctx->accounts[MARKET].key)) return fail_account(ctx, USER, PERPS_ERR_WRONG_MARKET);
  uint32_t ref;
  PerpsResult found = user_position(ctx, u, &b, args->position, &ref);
  if (found == 0) return PERPS_ERR_POSITION_NOT_LIQUIDATED; /* still live */
  if (found != PERPS_ERR_POSITION_LIQUIDATED) return found;
  u->positions[ref].slot = UINT32_MAX;
  u->positions[ref].generation = 0;
  u->position_count -= 1;
  return 0;
}
