/* What every market instruction shares: loading and cross-checking the
 * market, user, book, oracle and vault accounts; the clock and lazy funding;
 * the oracle read with its EWMA; the user's position references. */
#include "perps.h"

PerpsResult market_load(Ctx *ctx, const SolAccountInfo *acc, PerpsMarket **out) {
  uint8_t *data;
  TRY(load_account(ctx, acc, PERPS_DISC_MARKET, PERPS_SIZE_MARKET, &data));
  *out = (PerpsMarket *)data;
  return 0;
}

PerpsResult market_touch(PerpsMarket *m, int64_t *now) {
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
  i128 index[2] = {market_funding_index(m, PERPS_SIDE_LONG), market_funding_index(m, PERPS_SIDE_SHORT)};
  TRY(risk_accrue_funding(&accrual, index));
  pk_store_i128(&m->funding_index_long, index[PERPS_SIDE_LONG]);
  pk_store_i128(&m->funding_index_short, index[PERPS_SIDE_SHORT]);
  m->funding_updated_at = *now;
  return 0;
}

/* The oracle's price, confidence and publish time at 6 decimals, by kind
 * (SPEC 3): the program's test oracle, or a Pyth PriceUpdateV2 account owned
 * by the market's receiver, fully verified, of the market's feed. */
PerpsResult oracle_load(Ctx *ctx, const SolAccountInfo *oracle, const OracleSource *source, PerpsOracle *out) {
  if (source->kind == PERPS_ORACLE_KIND_TEST) {
    uint8_t *data;
    TRY(load_account(ctx, oracle, PERPS_DISC_ORACLE, PERPS_SIZE_ORACLE, &data));
    *out = *(const PerpsOracle *)data;
    return 0;
  }
  if (source->kind != PERPS_ORACLE_KIND_PYTH) return fail_account(ctx, oracle, PERPS_ERR_INVALID_ORACLE_KIND);
  TRY(require_owner(ctx, oracle, source->receiver));
  PerpsResult refused = pyth_oracle_price(oracle->data, oracle->data_len, source->feed_id, out);
  if (refused) return fail_account(ctx, oracle, refused);
  return 0;
}

PerpsResult market_read_oracle(Ctx *ctx, PerpsMarket *m, const SolAccountInfo *oracle, int64_t now, uint64_t *price) {
  const PerpsMarketParams *params = &m->params;
  TRY(require_address(ctx, oracle, &m->oracle));
  PerpsOracle o;
  OracleSource source = {m->oracle_kind, &m->pyth_receiver, m->pyth_feed_id};
  TRY(oracle_load(ctx, oracle, &source, &o));
  PerpsResult refused = risk_check_oracle(&o, now, params);
  /* A Pyth update account other than a sponsored one can be rewritten by its
   * write authority with any signed update, an older one too: never go back.
   * (The test oracle's authority is trusted with its price by definition.) */
  if (!refused && m->oracle_kind == PERPS_ORACLE_KIND_PYTH && o.publish_time < m->oracle_publish_time)
    refused = PERPS_ERR_ORACLE_PUBLISH_TIME_WENT_BACK;
  if (refused) return fail_account(ctx, oracle, refused); /* the error names the oracle account */
  m->oracle_publish_time = o.publish_time;
  *price = (uint64_t)o.price;
  risk_update_ewma(&m->ewma_price, &m->ewma_updated_at, *price, now, params->ewma_window_s);
  m->last_index_price = *price;
  return 0;
}

PerpsResult market_book(Ctx *ctx, const SolAccountInfo *acc, const PerpsMarket *m, Book *out) {
  TRY(require_address(ctx, acc, &m->book));
  uint8_t *data;
  TRY(load_account(ctx, acc, PERPS_DISC_BOOK, book_size(m->book_capacity), &data));
  book_view(data, m->book_capacity, out);
  return 0;
}

PerpsResult user_load(Ctx *ctx, const SolAccountInfo *user, const SolAccountInfo *market, const SolAccountInfo *owner,
                      PerpsUser **out) {
  uint8_t *data;
  TRY(load_account(ctx, user, PERPS_DISC_USER, PERPS_SIZE_USER, &data));
  PerpsUser *u = (PerpsUser *)data;
  if (!sol_pubkey_eq(&u->market, market->key)) return fail_account(ctx, user, PERPS_ERR_WRONG_MARKET);
  if (owner && !sol_pubkey_eq(&u->owner, owner->key)) return fail_account(ctx, owner, PERPS_ERR_UNAUTHORIZED);
  *out = u;
  return 0;
}

PerpsResult require_admin(Ctx *ctx, const SolAccountInfo *admin, const PerpsMarket *m) {
  if (!sol_pubkey_eq(&m->admin, admin->key)) return fail_account(ctx, admin, PERPS_ERR_UNAUTHORIZED);
  return 0;
}

PerpsResult require_vault(Ctx *ctx, const SolAccountInfo *acc, const PerpsMarket *m) {
  return require_address(ctx, acc, &m->vault);
}

PerpsResult require_not_vault(Ctx *ctx, const SolAccountInfo *acc, const PerpsMarket *m) {
  if (sol_pubkey_eq(acc->key, &m->vault)) return fail_account(ctx, acc, PERPS_ERR_INVALID_ACCOUNT_ADDRESS);
  return 0;
}

PerpsResult user_position(const PerpsUser *u, const Book *b, const PerpsPositionRef *position, uint32_t *ref) {
  if (position->slot == UINT32_MAX) return PERPS_ERR_POSITION_NOT_FOUND; /* the empty reference */
  for (uint32_t i = 0; i < PERPS_MAX_USER_POSITIONS; i++) {
    const PerpsPositionRef *r = &u->positions[i];
    if (r->slot != position->slot || r->generation != position->generation) continue;
    *ref = i;
    uint32_t slot = position->slot;
    if (slot >= b->capacity || b->slots[slot].generation != position->generation || !book_is_live(b, slot))
      return PERPS_ERR_POSITION_LIQUIDATED;
    return 0;
  }
  return PERPS_ERR_POSITION_NOT_FOUND;
}

PerpsResult user_forget(PerpsUser *u, uint32_t ref) {
  if (u->position_count == 0) return PERPS_ERR_INVALID_ACCOUNT_DATA;
  u->positions[ref].slot = UINT32_MAX;
  u->positions[ref].generation = 0;
  u->position_count -= 1;
  return 0;
}

PerpsResult user_drop_stale(PerpsUser *u, const Book *b, uint32_t *dropped) {
  *dropped = 0;
  for (uint32_t i = 0; i < PERPS_MAX_USER_POSITIONS; i++) {
    const PerpsPositionRef *r = &u->positions[i];
    if (r->slot == UINT32_MAX) continue;
    bool live = r->slot < b->capacity && b->slots[r->slot].generation == r->generation && book_is_live(b, r->slot);
    if (live) continue;
    TRY(user_forget(u, i));
    *dropped += 1;
  }
  return 0;
}

void position_terms(const PerpsPositionSlot *p, PositionTerms *out) {
  out->side = p->side;
  out->size = p->size;
  out->collateral = p->collateral;
  out->entry_price = p->entry_price;
  out->funding_at_open = pk_load_i128(&p->funding_at_open);
}
