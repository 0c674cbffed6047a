/* Trading against the pool: open_position, close_position, add_margin,
 * remove_margin.  docs/risk-engine.md gives every formula and rounding. */
#include "perps.h"

/* What a trading instruction works on. */
typedef struct {
  PerpsMarket *m;
  PerpsUser *u;
  Book b;
  int64_t now;
  uint32_t ref; /* the user's reference to the position, when there is one */
} Trader;

/* The accounts the four trading instructions share (each has its own
 * generated struct; these are the ones they have in common). */
typedef struct {
  const SolAccountInfo *owner, *market, *user, *book;
} TraderAccounts;

/* Load and cross-check market, user (of the signer) and book; with a
 * position, the user's live reference to it; then bring funding up to now. */
static PerpsResult trader_load(Ctx *ctx, const TraderAccounts *a, const PerpsPositionRef *position, Trader *t) {
  TRY(market_load(ctx, a->market, &t->m));
  TRY(user_load(ctx, a->user, a->market, a->owner, &t->u));
  TRY(market_book(ctx, a->book, t->m, &t->b));
  if (position) TRY(user_position(t->u, &t->b, position, &t->ref));
  return market_touch(t->m, &t->now);
}

static i128 skew_of(const PerpsMarket *m) { return (i128)m->oi_long - (i128)m->oi_short; }

/* The index of the user's first empty reference, or PERPS_MAX_USER_POSITIONS. */
static uint32_t free_reference(const PerpsUser *u) {
  for (uint32_t i = 0; i < PERPS_MAX_USER_POSITIONS; i++)
    if (u->positions[i].slot == UINT32_MAX) return i;
  return PERPS_MAX_USER_POSITIONS;
}

/* What the trader asks of a fill. */
typedef struct {
  uint64_t index_price;
  uint64_t size;
  uint64_t worst_price;
  bool buy;
} Order;

/* A fill by the pool at the skew-adjusted price, checked against the trader's
 * worst price and the price band. */
static PerpsResult fill(const PerpsMarket *m, const Order *o, uint64_t *price) {
  if (m->paused) return PERPS_ERR_MARKET_PAUSED;
  Fill f = {
      .index_price = o->index_price,
      .skew0 = skew_of(m),
      .skew1 = o->buy ? skew_of(m) + o->size : skew_of(m) - o->size,
      .skew_scale = m->params.skew_scale,
      .buy = o->buy,
  };
  TRY(risk_fill_price(&f, price));
  if (o->buy ? *price > o->worst_price : *price < o->worst_price) return PERPS_ERR_SLIPPAGE_EXCEEDED;
  return risk_check_band(&f, m->ewma_price, m->params.price_band_bps);
}

/* Trading volume and fees, for the market's counters. */
static PerpsResult count_trade(PerpsMarket *m, uint64_t notional, uint64_t fee) {
  u128 volume = pk_load_u128(&m->volume) + notional;
  pk_store_u128(&m->volume, volume);
  return add_u64(&m->fees_collected, fee);
}

/* The pool pays (delta < 0) or receives (delta > 0); it never goes below zero. */
static PerpsResult pool_change(PerpsMarket *m, i128 delta) {
  i128 next = (i128)m->pool_balance + delta;
  if (next < 0) return PERPS_ERR_INSUFFICIENT_POOL_BALANCE;
  if ((u128)next >> 64) return PERPS_ERR_ARITHMETIC_OVERFLOW;
  m->pool_balance = (uint64_t)next;
  return 0;
}

PerpsResult ix_open_position(Ctx *ctx, const PerpsOpenPositionAccounts *a, const PerpsOpenPositionArgs *args) {
  if (args->side > PERPS_SIDE_SHORT) return PERPS_ERR_INVALID_SIDE;
  if (args->size == 0) return PERPS_ERR_INVALID_SIZE;
  if (args->collateral == 0) return PERPS_ERR_INVALID_AMOUNT;
  TraderAccounts shared = {a->owner, a->market, a->user, a->book};
  Trader t;
  uint64_t index_price, price, notional, fee, required;
  TRY(trader_load(ctx, &shared, NULL, &t));
  PerpsMarket *m = t.m;
  PerpsUser *u = t.u;
  Book b = t.b;
  TRY(market_read_oracle(ctx, m, a->oracle, t.now, &index_price));

  bool buy = args->side == PERPS_SIDE_LONG;
  Order order = {index_price, args->size, args->worst_price, buy};
  TRY(fill(m, &order, &price));
  /* SPEC 3: no side above the cap, so |skew| keeps the mark within half the maintenance margin */
  uint64_t *oi = buy ? &m->oi_long : &m->oi_short;
  if (args->size > m->params.max_open_interest || *oi > m->params.max_open_interest - args->size)
    return PERPS_ERR_OPEN_INTEREST_CAP_EXCEEDED;
  TRY(risk_notional(args->size, price, &notional));
  if (notional < m->params.min_position_notional) return PERPS_ERR_POSITION_TOO_SMALL;
  TRY(risk_fee(notional, m->params.taker_fee_bps, &fee));
  TRY(risk_requirement(args->size, price, m->params.initial_margin_bps, &required));
  if (args->collateral < required) return PERPS_ERR_INITIAL_MARGIN_NOT_MET;
  uint64_t cost;
  if (__builtin_add_overflow(args->collateral, fee, &cost) || u->free_collateral < cost)
    return PERPS_ERR_INSUFFICIENT_FREE_COLLATERAL;

  PositionTerms terms = {
      .side = args->side,
      .size = args->size,
      .collateral = args->collateral,
      .entry_price = price,
      .funding_at_open = market_funding_index(m, args->side),
  };
  i128 key, threshold, index = terms.funding_at_open, sum_check;
  TRY(risk_key(&terms, &key));
  TRY(risk_threshold(args->side, index_price, &index, m->params.maintenance_margin_bps, &threshold));
  if (risk_liquidatable(args->side, key, threshold)) return PERPS_ERR_WOULD_BE_LIQUIDATABLE;
  /* the book's sum of size x funding-at-open must stay within 128 bits */
  if (!pk_mul_i128_64(index, args->size, &sum_check)) return PERPS_ERR_ARITHMETIC_OVERFLOW;

  /* A free reference; when all 32 are taken, the stale ones (positions
   * liquidated since) are dropped first: nobody has to clear for a user to
   * keep trading. */
  uint32_t ref = free_reference(u);
  if (ref == PERPS_MAX_USER_POSITIONS) {
    uint32_t dropped;
    TRY(user_drop_stale(u, &b, &dropped));
    ref = free_reference(u);
  }
  if (ref == PERPS_MAX_USER_POSITIONS || u->position_count >= PERPS_MAX_USER_POSITIONS)
    return PERPS_ERR_TOO_MANY_POSITIONS;

  uint32_t slot;
  TRY(book_alloc_slot(&b, &slot));
  PerpsPositionSlot *p = &b.slots[slot];
  pk_store_i128(&p->key, key);
  pk_store_i128(&p->funding_at_open, index);
  p->size = args->size;
  p->collateral = args->collateral;
  p->entry_price = price;
  p->side = args->side;
  p->status = PERPS_SLOT_OPEN;
  TRY(book_insert(&b, slot));

  PerpsPositionRef *r = &u->positions[ref];
  r->slot = slot;
  r->generation = p->generation;
  u->position_count += 1;
  u->free_collateral -= cost;
  m->total_free_collateral -= cost;
  TRY(add_u64(&m->total_position_collateral, args->collateral));
  *oi += args->size; /* at most the cap */
  TRY(pool_change(m, fee));
  TRY(count_trade(m, notional, fee));
  TRY(add_u64(&m->positions_opened, 1));
  /* SPEC 4: the new position's slot and generation, as program return data */
  sol_set_return_data((const uint8_t *)r, sizeof(*r));
  return 0;
}

PerpsResult ix_close_position(Ctx *ctx, const PerpsClosePositionAccounts *a, const PerpsClosePositionArgs *args) {
  TraderAccounts shared = {a->owner, a->market, a->user, a->book};
  Trader t;
  uint64_t index_price, price, notional, fee;
  TRY(trader_load(ctx, &shared, &args->position, &t));
  PerpsMarket *m = t.m;
  Book b = t.b;
  TRY(market_read_oracle(ctx, m, a->oracle, t.now, &index_price));

  uint32_t slot = args->position.slot;
  PositionTerms terms;
  position_terms(&b.slots[slot], &terms);
  /* closing a long sells, closing a short buys */
  Order order = {index_price, terms.size, args->worst_price, terms.side == PERPS_SIDE_SHORT};
  TRY(fill(m, &order, &price));
  TRY(risk_notional(terms.size, price, &notional));
  TRY(risk_fee(notional, m->params.taker_fee_bps, &fee));
  i128 pnl, owed;
  TRY(risk_pnl(&terms, price, &pnl));
  TRY(risk_funding_owed(&terms, market_funding_index(m, terms.side), &owed));
  /* the trader never owes more than the collateral: a deficit is the pool's */
  i128 value = (i128)terms.collateral + pnl - owed - (i128)fee;
  if (value > 0 && (u128)value >> 64) return PERPS_ERR_ARITHMETIC_OVERFLOW;
  uint64_t payout = value <= 0 ? 0 : (uint64_t)value;
  TRY(pool_change(m, (i128)terms.collateral - (i128)payout));

  TRY(book_remove(&b, slot));
  book_free_slot(&b, slot);
  TRY(user_forget(t.u, t.ref));
  TRY(add_u64(&t.u->free_collateral, payout));
  TRY(add_u64(&m->total_free_collateral, payout));
  m->total_position_collateral -= terms.collateral;
  if (terms.side == PERPS_SIDE_LONG) {
    m->oi_long -= terms.size;
  } else {
    m->oi_short -= terms.size;
  }
  TRY(count_trade(m, notional, fee));
  return add_u64(&m->positions_closed, 1);
}

/* Settle the position's funding into its collateral and change the collateral
 * by `change`; the position is re-keyed (its key depends on the collateral).
 * The pool receives the funding owed (pays it when the position is owed). */
static PerpsResult rebalance(PerpsMarket *m, Book *b, uint32_t slot, const i128 *change, i128 *new_collateral) {
  i128 delta = *change;
  PerpsPositionSlot *p = &b->slots[slot];
  PositionTerms terms;
  position_terms(p, &terms);
  i128 index = market_funding_index(m, terms.side), owed;
  TRY(risk_funding_owed(&terms, index, &owed));
  i128 next = (i128)terms.collateral - owed + delta;
  if (next <= 0) return delta < 0 ? PERPS_ERR_INITIAL_MARGIN_NOT_MET : PERPS_ERR_POSITION_UNDERWATER;
  if ((u128)next >> 64) return PERPS_ERR_ARITHMETIC_OVERFLOW;
  TRY(pool_change(m, owed));
  TRY(book_remove(b, slot));
  terms.collateral = (uint64_t)next;
  terms.funding_at_open = index;
  i128 key;
  TRY(risk_key(&terms, &key));
  p->collateral = terms.collateral;
  pk_store_i128(&p->funding_at_open, index);
  pk_store_i128(&p->key, key);
  TRY(book_insert(b, slot));
  *new_collateral = next;
  return 0;
}

PerpsResult ix_add_margin(Ctx *ctx, const PerpsAddMarginAccounts *a, const PerpsAddMarginArgs *args) {
  if (args->amount == 0) return PERPS_ERR_INVALID_AMOUNT;
  TraderAccounts shared = {a->owner, a->market, a->user, a->book};
  Trader t;
  TRY(trader_load(ctx, &shared, &args->position, &t));
  if (t.u->free_collateral < args->amount) return PERPS_ERR_INSUFFICIENT_FREE_COLLATERAL;
  uint32_t slot = args->position.slot;
  uint64_t before = t.b.slots[slot].collateral;
  i128 after, change = (i128)args->amount;
  TRY(rebalance(t.m, &t.b, slot, &change, &after));
  t.u->free_collateral -= args->amount;
  t.m->total_free_collateral -= args->amount;
  t.m->total_position_collateral = (uint64_t)((i128)t.m->total_position_collateral - (i128)before + after);
  return 0;
}

PerpsResult ix_remove_margin(Ctx *ctx, const PerpsRemoveMarginAccounts *a, const PerpsRemoveMarginArgs *args) {
  if (args->amount == 0) return PERPS_ERR_INVALID_AMOUNT;
  TraderAccounts shared = {a->owner, a->market, a->user, a->book};
  Trader t;
  uint64_t index_price, required;
  TRY(trader_load(ctx, &shared, &args->position, &t));
  TRY(market_read_oracle(ctx, t.m, a->oracle, t.now, &index_price));
  uint32_t slot = args->position.slot;
  uint64_t before = t.b.slots[slot].collateral;
  i128 after, change = -(i128)args->amount;
  TRY(rebalance(t.m, &t.b, slot, &change, &after));
  /* what is left must still meet the initial margin at the index price */
  PositionTerms terms;
  position_terms(&t.b.slots[slot], &terms);
  i128 pnl;
  TRY(risk_pnl(&terms, index_price, &pnl));
  TRY(risk_requirement(terms.size, index_price, t.m->params.initial_margin_bps, &required));
  if ((i128)terms.collateral + pnl < (i128)required) return PERPS_ERR_INITIAL_MARGIN_NOT_MET;
  TRY(add_u64(&t.u->free_collateral, args->amount));
  TRY(add_u64(&t.m->total_free_collateral, args->amount));
  t.m->total_position_collateral = (uint64_t)((i128)t.m->total_position_collateral - (i128)before + after);
  return 0;
}
