/* What every market instruction shares: loading and cross-checking the
 * market, user, book, oracle and vault accounts; the clock and lazy funding;
 * the oracle read with its EWMA. */
#include "perps.h"

bool market_params_valid(const PerpsMarketParams *p) {
  return p->maintenance_margin_bps > 0 && p->maintenance_margin_bps < p->initial_margin_bps &&
         p->initial_margin_bps <= RISK_BPS && p->taker_fee_bps <= RISK_BPS && p->liquidation_reward_bps <= RISK_BPS &&
         p->price_band_bps > 0 && p->price_band_bps <= RISK_BPS && p->max_conf_bps <= RISK_BPS &&
         p->max_staleness_s > 0 && p->ewma_window_s > 0 && p->ewma_window_s <= 7 * RISK_DAY && p->skew_scale > 0 &&
         p->skew_scale < (1ULL << 62) && p->max_funding_rate_bps_per_day <= RISK_BPS;
}

PerpsResult market_load(Ctx *ctx, uint64_t index, PerpsMarket **out) {
  uint8_t *data;
  TRY(load_account(ctx, index, PERPS_DISC_MARKET, PERPS_SIZE_MARKET, &data));
  *out = (PerpsMarket *)data;
  return 0;
}

PerpsResult market_touch(Ctx *ctx, PerpsMarket *m, int64_t *now) {
  (void)ctx;
  SolClock clock;
  clock_now(&clock);
  *now = clock.unix_timestamp;
  if (*now <= m->funding_updated_at) return 0;
  FundingAccrual accrual = {
      .oi = {m->oi_long, m->oi_short},
      .price = m->last_index_price,
      .dt = (uint64_t)(*now - m->funding_updated_at),
      .max_rate_bps_per_day = m->params.max_funding_rate_bps_per_day,
  };
  i128 index[2] = {pk_load_i128(&m->funding_index_long), pk_load_i128(&m->funding_index_short)};
  TRY(risk_accrue_funding(&accrual, index));
  pk_store_i128(&m->funding_index_long, index[SIDE_LONG]);
  pk_store_i128(&m->funding_index_short, index[SIDE_SHORT]);
  m->funding_updated_at = *now;
  return 0;
}

PerpsResult market_read_oracle(Ctx *ctx, PerpsMarket *m, uint64_t index, int64_t now, uint64_t *price) {
  TRY(require_address(ctx, index, &m->oracle));
  uint8_t *data;
  TRY(load_account(ctx, index, PERPS_DISC_ORACLE, PERPS_SIZE_ORACLE, &data));
  const PerpsOracle *oracle = (const PerpsOracle *)data;
  PerpsResult err = risk_check_oracle(oracle, now, &m->params);
  if (err) return fail_account(ctx, index, err);
  *price = (uint64_t)oracle->price;
  risk_update_ewma(&m->ewma_price, &m->ewma_updated_at, *price, now, m->params.ewma_window_s);
  m->last_index_price = *price;
  return 0;
}

PerpsResult market_book(Ctx *ctx, uint64_t index, const PerpsMarket *m, Book *out) {
  TRY(require_address(ctx, index, &m->book));
  uint8_t *data;
  TRY(load_account(ctx, index, PERPS_DISC_BOOK, book_size(m->book_capacity), &data));
  book_view(data, m->book_capacity, out);
  return 0;
}

PerpsResult user_load(Ctx *ctx, uint64_t user, uint64_t market, uint64_t owner, PerpsUser **out) {
  uint8_t *data;
  TRY(load_account(ctx, user, PERPS_DISC_USER, PERPS_SIZE_USER, &data));
  PerpsUser *u = (PerpsUser *)data;
  if (!sol_pubkey_eq(&u->market, ctx->accounts[market].key)) return fail_account(ctx, user, PERPS_ERR_WRONG_MARKET);
  if (!sol_pubkey_eq(&u->owner, ctx->accounts[owner].key)) return fail_account(ctx, owner, PERPS_ERR_UNAUTHORIZED);
  *out = u;
  return 0;
}

PerpsResult require_admin(Ctx *ctx, uint64_t admin, const PerpsMarket *m) {
  if (!sol_pubkey_eq(&m->admin, ctx->accounts[admin].key)) return fail_account(ctx, admin, PERPS_ERR_UNAUTHORIZED);
  return 0;
}

PerpsResult require_vault(Ctx *ctx, uint64_t index, const PerpsMarket *m) {
  return require_address(ctx, index, &m->vault);
}

PerpsResult require_market_authority(Ctx *ctx, uint64_t index, uint64_t market, const PerpsMarket *m,
                                     SolBytes seeds[3]) {
  seeds[0] = (SolBytes){(const uint8_t *)"authority", 9};
  seeds[1] = (SolBytes){ctx->accounts[market].key->x, 32};
  seeds[2] = (SolBytes){&m->authority_bump, 1};
  SolPubkey expected;
  if (sol_create_program_address(seeds, 3, ctx->params->program_id, &expected) != 0 ||
      !sol_pubkey_eq(&expected, ctx->accounts[index].key))
    return fail_account(ctx, index, PERPS_ERR_INVALID_PDA);
  return 0;
}

PerpsResult user_position(Ctx *ctx, PerpsUser *u, const Book *b, uint32_t slot, uint32_t *ref) {
  (void)ctx;
  for (uint32_t i = 0; i < PERPS_MAX_USER_POSITIONS; i++) {
    if (u->positions[i].slot != slot) continue;
    *ref = i;
    if (slot >= b->capacity || b->slots[slot].generation != u->positions[i].generation || !book_is_live(b, slot))
      return PERPS_ERR_POSITION_LIQUIDATED;
    return 0;
  }
  return PERPS_ERR_POSITION_NOT_FOUND;
}

void position_terms(const PerpsPositionSlot *p, PositionTerms *out) {
  out->side = p->side;
  out->size = p->size;
  out->collateral = p->collateral;
  out->entry_price = p->entry_price;
  out->funding_at_open = pk_load_i128(&p->funding_at_open);
}
