/* The risk engine's arithmetic: see risk.h and docs/risk-engine.md. */
#include "risk.h"

#define OVERFLOW PERPS_ERR_ARITHMETIC_OVERFLOW
#define CHECK(cond) \
  do {              \
    if (!(cond)) return OVERFLOW; \
  } while (0)

PerpsResult risk_check_oracle(const PerpsOracle *oracle, int64_t now, const PerpsMarketParams *params) {
  if (oracle->price <= 0) return PERPS_ERR_ORACLE_PRICE_NOT_POSITIVE;
  /* Ages in unsigned arithmetic: the difference of two i64 may not fit in one (signed overflow is UB). */
  if (now > oracle->publish_time && (uint64_t)now - (uint64_t)oracle->publish_time > params->max_staleness_s)
    return PERPS_ERR_ORACLE_STALE;
  /* a little ahead of the cluster clock is clock skew; further ahead would never go stale */
  if (oracle->publish_time > now && (uint64_t)oracle->publish_time - (uint64_t)now > params->max_publish_ahead_s)
    return PERPS_ERR_ORACLE_PUBLISHED_IN_FUTURE;
  u128 lhs, rhs;
  pk_mul_64(oracle->conf, PERPS_BPS, &lhs);
  pk_mul_64(params->max_conf_bps, (uint64_t)oracle->price, &rhs);
  if (lhs > rhs) return PERPS_ERR_ORACLE_CONFIDENCE_TOO_WIDE;
  return 0;
}

void risk_update_ewma(uint64_t *ewma, int64_t *updated_at, uint64_t price, int64_t now, uint32_t window) {
  if (*ewma == 0) {
    *ewma = price;
  } else {
    int64_t dt = now - *updated_at;
    uint64_t w = dt <= 0 ? 0 : (uint64_t)dt < window ? (uint64_t)dt : window;
    if (w) {
      i128 delta = (i128)price - (i128)*ewma;
      i128 step, moved;
      /* |delta| < 2^64 and w <= 2^32: the product fits; window > 0 */
      pk_mul_i128_64(delta, w, &moved);
      pk_floordiv_i128(moved, window, &step);
      *ewma = (uint64_t)((i128)*ewma + step);
    }
  }
  *updated_at = now;
}

PerpsResult risk_accrue_funding(const FundingAccrual *in, i128 index[2]) {
  uint64_t l = in->oi[PERPS_SIDE_LONG], s = in->oi[PERPS_SIDE_SHORT];
  if (in->dt == 0 || in->price == 0 || l == s) return 0;
  int heavy = l > s ? PERPS_SIDE_LONG : PERPS_SIDE_SHORT;
  int light = 1 - heavy;
  uint64_t skew = l > s ? l - s : s - l;
  u128 total = (u128)l + s;
  CHECK(!(total >> 64)); /* open interest totals fit in u64 by construction */
  u128 rate_dt, a, b, d;
  pk_mul_64(in->max_rate_bps_per_day, in->dt, &rate_dt);
  CHECK(!(rate_dt >> 64));
  pk_mul_64(in->price, (uint64_t)rate_dt, &a);
  CHECK(pk_muldiv_128(a, skew, (uint64_t)total, &b));
  CHECK(pk_muldiv_128(b, PERPS_FUNDING_SCALE, PERPS_BPS * PERPS_SECONDS_PER_DAY, &d));
  CHECK(d <= (u128)I128_MAX);
  i128 heavy_index, light_index = index[light];
  CHECK(pk_add_i128(index[heavy], (i128)d, &heavy_index));
  if (in->oi[light]) CHECK(pk_sub_i128(index[light], (i128)d, &light_index));
  index[heavy] = heavy_index;
  index[light] = light_index;
  return 0;
}

PerpsResult risk_check_params(const PerpsMarketParams *p, uint64_t oi_long, uint64_t oi_short) {
  bool ok = p->skew_scale > 0 && p->skew_scale < (1ULL << 62) && p->max_funding_rate_bps_per_day <= 1000 &&
            p->max_staleness_s > 0 && p->max_staleness_s <= PERPS_SECONDS_PER_DAY && p->ewma_window_s > 0 &&
            p->ewma_window_s <= 7 * PERPS_SECONDS_PER_DAY && p->maintenance_margin_bps > 0 &&
            p->maintenance_margin_bps < p->initial_margin_bps && p->initial_margin_bps <= PERPS_BPS &&
            p->taker_fee_bps <= 100 && p->liquidation_reward_bps <= PERPS_BPS / 2 && p->price_band_bps > 0 &&
            p->price_band_bps <= PERPS_BPS && p->max_conf_bps <= PERPS_BPS && p->max_open_interest > 0 &&
            p->min_position_notional >= 1000000 && p->max_publish_ahead_s <= 60 && p->padding[0] == 0 &&
            p->padding[1] == 0 && p->padding[2] == 0 && p->padding[3] == 0;
  if (!ok) return PERPS_ERR_INVALID_MARKET_PARAMS;
  /* |skew| <= max(OI) keeps the mark within half the maintenance margin of the
   * index: cap * 2 * BPS <= K * mm, for the cap and for the open interest now */
  uint64_t largest = p->max_open_interest;
  if (oi_long > largest) largest = oi_long;
  if (oi_short > largest) largest = oi_short;
  u128 lhs, rhs;
  pk_mul_64(largest, 2 * PERPS_BPS, &lhs);
  pk_mul_64(p->skew_scale, p->maintenance_margin_bps, &rhs);
  return lhs <= rhs ? 0 : PERPS_ERR_INVALID_MARKET_PARAMS;
}

PerpsResult risk_fill_price(const Fill *fill, uint64_t *price) {
  i128 factor = 2 * (i128)fill->skew_scale + fill->skew0 + fill->skew1;
  if (factor <= 0) return PERPS_ERR_SKEW_LIMIT_EXCEEDED;
  CHECK(!((u128)factor >> 64));
  u128 num, q;
  uint64_t r;
  pk_mul_64(fill->index_price, (uint64_t)factor, &num);
  u128 two_k = (u128)fill->skew_scale * 2;
  CHECK(!(two_k >> 64));
  pk_div_128_64(num, (uint64_t)two_k, &q, &r);
  if (fill->buy && r) q += 1;
  CHECK(!(q >> 64));
  if (q == 0) return PERPS_ERR_SKEW_LIMIT_EXCEEDED;
  *price = (uint64_t)q;
  return 0;
}

/* |I * (K + s) - ewma * K| */
static PerpsResult mark_distance(uint64_t index, i128 skew, uint64_t skew_scale, u128 ewma_k, u128 *out) {
  i128 mark;
  CHECK(pk_mul_i128_64((i128)skew_scale + skew, index, &mark));
  CHECK(ewma_k <= (u128)I128_MAX);
  i128 diff;
  CHECK(pk_sub_i128(mark, (i128)ewma_k, &diff));
  *out = pk_abs_i128(diff);
  return 0;
}

PerpsResult risk_check_band(const Fill *fill, uint64_t ewma, uint16_t band_bps) {
  u128 ewma_k, after, before, lhs, rhs;
  pk_mul_64(ewma, fill->skew_scale, &ewma_k);
  TRY(mark_distance(fill->index_price, fill->skew1, fill->skew_scale, ewma_k, &after));
  bool within = pk_mul_128_64(after, PERPS_BPS, &lhs) && pk_mul_128_64(ewma_k, band_bps, &rhs) && lhs <= rhs;
  if (within) return 0;
  TRY(mark_distance(fill->index_price, fill->skew0, fill->skew_scale, ewma_k, &before));
  return after < before ? 0 : PERPS_ERR_PRICE_BAND_BREACHED;
}

PerpsResult risk_notional(uint64_t size, uint64_t price, uint64_t *out) {
  CHECK(pk_mul_div_ceil(size, price, PERPS_BASE_UNIT, out));
  return 0;
}

PerpsResult risk_fee(uint64_t notional, uint16_t fee_bps, uint64_t *out) {
  CHECK(pk_mul_div_ceil(notional, fee_bps, PERPS_BPS, out));
  return 0;
}

PerpsResult risk_requirement(uint64_t size, uint64_t price, uint16_t bps, uint64_t *out) {
  u128 product, q;
  pk_mul_64(size, price, &product);
  CHECK(pk_muldiv_128_ceil(product, bps, PERPS_BASE_UNIT * PERPS_BPS, &q));
  CHECK(!(q >> 64));
  *out = (uint64_t)q;
  return 0;
}

PerpsResult risk_key(const PositionTerms *pos, i128 *key) {
  if (pos->size == 0) return PERPS_ERR_INVALID_SIZE;
  u128 fs_entry, scaled_c, c_over_s;
  uint64_t rem;
  pk_mul_64(PERPS_FUNDING_SCALE, pos->entry_price, &fs_entry);
  pk_mul_64(pos->collateral, PERPS_BASE_UNIT * PERPS_BPS * PERPS_FUNDING_SCALE, &scaled_c); /* C < 2^64, 1e16 < 2^54 */
  pk_div_128_64(scaled_c, pos->size, &c_over_s, &rem);
  CHECK(c_over_s <= (u128)I128_MAX);
  i128 base, scaled, result;
  if (pos->side == PERPS_SIDE_LONG) {
    CHECK(pk_sub_i128((i128)fs_entry, pos->funding_at_open, &base));
    CHECK(pk_mul_i128_64(base, PERPS_BPS, &scaled));
    CHECK(pk_sub_i128(scaled, (i128)c_over_s, &result));
  } else {
    CHECK(pk_add_i128((i128)fs_entry, pos->funding_at_open, &base));
    CHECK(pk_mul_i128_64(base, PERPS_BPS, &scaled));
    CHECK(pk_add_i128(scaled, (i128)c_over_s, &result));
  }
  *key = result;
  return 0;
}

PerpsResult risk_threshold(uint8_t side, uint64_t price, const i128 *funding_index, uint16_t mm_bps, i128 *out) {
  u128 fs_price, scaled_price;
  pk_mul_64(PERPS_FUNDING_SCALE, price, &fs_price);
  uint64_t factor = side == PERPS_SIDE_LONG ? PERPS_BPS - mm_bps : PERPS_BPS + mm_bps;
  CHECK(pk_mul_128_64(fs_price, factor, &scaled_price) && scaled_price <= (u128)I128_MAX);
  i128 scaled_index;
  CHECK(pk_mul_i128_64(*funding_index, PERPS_BPS, &scaled_index));
  if (side == PERPS_SIDE_LONG) {
    CHECK(pk_sub_i128((i128)scaled_price, scaled_index, out));
  } else {
    CHECK(pk_add_i128((i128)scaled_price, scaled_index, out));
  }
  return 0;
}

PerpsResult risk_liquidation_price(const PositionTerms *pos, i128 funding_index, uint16_t mm_bps, i128 *out) {
  i128 key, scaled_index, num;
  TRY(risk_key(pos, &key));
  CHECK(pk_mul_i128_64(funding_index, PERPS_BPS, &scaled_index));
  if (pos->side == PERPS_SIDE_LONG) {
    CHECK(pk_add_i128(key, scaled_index, &num));
    CHECK(pk_ceildiv_i128(num, PERPS_FUNDING_SCALE * (PERPS_BPS - mm_bps), out));
  } else {
    CHECK(pk_sub_i128(key, scaled_index, &num));
    CHECK(pk_floordiv_i128(num, PERPS_FUNDING_SCALE * (PERPS_BPS + mm_bps), out));
  }
  return 0;
}

PerpsResult risk_funding_owed(const PositionTerms *pos, i128 funding_index, i128 *out) {
  i128 diff, total;
  CHECK(pk_sub_i128(funding_index, pos->funding_at_open, &diff));
  CHECK(pk_mul_i128_64(diff, pos->size, &total));
  CHECK(pk_ceildiv_i128(total, PERPS_BASE_UNIT * PERPS_FUNDING_SCALE, out));
  return 0;
}

PerpsResult risk_pnl(const PositionTerms *pos, uint64_t price, i128 *out) {
  i128 move = pos->side == PERPS_SIDE_LONG ? (i128)price - (i128)pos->entry_price : (i128)pos->entry_price - (i128)price;
  i128 total;
  CHECK(pk_mul_i128_64(move, pos->size, &total));
  CHECK(pk_floordiv_i128(total, PERPS_BASE_UNIT, out));
  return 0;
}

PerpsResult risk_batch_equity(uint8_t side, const RiskSums *sums, uint64_t price, const i128 *funding_index,
                              i128 *equity) {
  /* pnl: floor((I*S - SE)/B) for longs, floor((SE - I*S)/B) for shorts */
  u128 value, gain, loss, q;
  uint64_t r;
  pk_mul_64(price, sums->size, &value);
  if (side == PERPS_SIDE_LONG) {
    gain = value > sums->size_entry ? value - sums->size_entry : 0;
    loss = value > sums->size_entry ? 0 : sums->size_entry - value;
  } else {
    gain = sums->size_entry > value ? sums->size_entry - value : 0;
    loss = sums->size_entry > value ? 0 : value - sums->size_entry;
  }
  i128 pnl;
  if (gain) {
    pk_div_128_64(gain, PERPS_BASE_UNIT, &q, &r);
    CHECK(q <= (u128)I128_MAX);
    pnl = (i128)q;
  } else {
    pk_div_128_64(loss, PERPS_BASE_UNIT, &q, &r);
    q += r != 0;
    CHECK(q <= (u128)I128_MAX);
    pnl = -(i128)q;
  }
  /* funding owed: ceil((idx*S - SF) / (B*FS)) */
  i128 accrued, owed_num, owed;
  CHECK(pk_mul_i128_64(*funding_index, sums->size, &accrued));
  CHECK(pk_sub_i128(accrued, sums->size_funding, &owed_num));
  CHECK(pk_ceildiv_i128(owed_num, PERPS_BASE_UNIT * PERPS_FUNDING_SCALE, &owed));
  i128 result;
  CHECK(pk_add_i128((i128)sums->collateral, pnl, &result));
  CHECK(pk_sub_i128(result, owed, equity));
  return 0;
}

PerpsResult risk_batch_exit_price(const BatchExit *batch, uint64_t *price) {
  Fill f = {
      .index_price = batch->index_price,
      .skew0 = batch->skew0,
      .skew1 = batch->skew0 - (i128)batch->long_size + (i128)batch->short_size,
      .skew_scale = batch->skew_scale,
      .buy = batch->short_size > batch->long_size,
  };
  return risk_fill_price(&f, price);
}

PerpsResult risk_batch_payout(const BatchInput *in, BatchPayout *out) {
  *out = (BatchPayout){0};
  if (in->equity >= 0) {
    u128 r = (u128)in->equity;
    u128 can_pay = (u128)in->collateral + in->pool; /* what the vault holds for it */
    if (r > can_pay) {
      CHECK(!((r - can_pay) >> 64));
      out->socialized_loss = (uint64_t)(r - can_pay);
      r = can_pay;
    }
    CHECK(!(r >> 64));
    CHECK(pk_mul_div_floor((uint64_t)r, in->reward_bps, PERPS_BPS, &out->reward));
    out->insurance_credit = (uint64_t)r - out->reward;
    out->pool_credit = (i128)in->collateral - (i128)r;
  } else {
    u128 shortfall = (u128)0 - (u128)in->equity;
    uint64_t cover = shortfall < in->insurance ? (uint64_t)shortfall : in->insurance;
    CHECK(!((shortfall - cover) >> 64));
    out->insurance_paid = cover;
    out->socialized_loss = (uint64_t)(shortfall - cover);
    out->pool_credit = (i128)in->collateral + cover;
  }
  return 0;
}
