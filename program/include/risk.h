/* The risk engine's arithmetic: oracle checks, EWMA, funding, fill prices,
 * price bands, fees, margins, funding-free liquidation keys and thresholds.
 * docs/risk-engine.md is the specification; perpkit.risk (Python) computes
 * the same numbers bit for bit, and tests/test_native.py compares them.
 *
 * Pure: no syscalls, no account access; every function returns 0 or a
 * PERPS_ERR_* code and writes results through out-parameters. */
#ifndef PERPS_RISK_H
#define PERPS_RISK_H

#include "math.h"
#include "perps_idl.h"
#include "result.h"

/* Constants (from the IDL, perps_idl.h): PERPS_BASE_UNIT base atoms per whole
 * base unit (B), PERPS_BPS basis points in 100%, PERPS_FUNDING_SCALE funding
 * index units per quote atom per base unit (FS), PERPS_SECONDS_PER_DAY, and
 * the sides PERPS_SIDE_LONG/PERPS_SIDE_SHORT. */

/* SPEC 3: price > 0, age <= max staleness, publish time at most
 * max_publish_ahead_s ahead of now, conf * 1e4 <= max_conf_bps * price. */
PerpsResult risk_check_oracle(const PerpsOracle *oracle, int64_t now, const PerpsMarketParams *params);

/* EWMA of the index over `window` seconds: the first update sets it. */
void risk_update_ewma(uint64_t *ewma, int64_t *updated_at, uint64_t price, int64_t now, uint32_t window);

/* Bounds of the market parameters (docs/risk-engine.md, "Parameters"),
 * including the open-interest cap rule, which must also hold for the open
 * interest the market has now: InvalidMarketParams otherwise. */
PerpsResult risk_check_params(const PerpsMarketParams *p, uint64_t oi_long, uint64_t oi_short);

/* One funding accrual over `dt` seconds at `price`, for open interest
 * `oi[PERPS_SIDE_LONG]`/`oi[PERPS_SIDE_SHORT]`; updates index[PERPS_SIDE_LONG]/[PERPS_SIDE_SHORT].
 * The heavy side's index rises by D per unit and the light side's falls by
 * the same D: each unit of the light side receives the rate the heavy side
 * pays, and the pool keeps the rest (SPEC 5). */
typedef struct {
  uint64_t oi[2];
  uint64_t price;
  uint64_t dt;
  uint32_t max_rate_bps_per_day;
} FundingAccrual;
PerpsResult risk_accrue_funding(const FundingAccrual *in, i128 index[2]);

/* A fill of the pool: skew (long OI minus short OI) moves from skew0 to skew1. */
typedef struct {
  uint64_t index_price;
  i128 skew0;
  i128 skew1;
  uint64_t skew_scale;
  bool buy;
} Fill;
/* I * (2K + s0 + s1) / (2K), rounded up for a buy and down for a sell. */
PerpsResult risk_fill_price(const Fill *fill, uint64_t *price);
/* PriceBandBreached unless the mark after the fill is within the band of
 * the EWMA or strictly closer to it than before. */
PerpsResult risk_check_band(const Fill *fill, uint64_t ewma, uint16_t band_bps);

/* ceil(size * price / B). */
PerpsResult risk_notional(uint64_t size, uint64_t price, uint64_t *out);
/* ceil(notional * fee_bps / BPS). */
PerpsResult risk_fee(uint64_t notional, uint16_t fee_bps, uint64_t *out);
/* ceil(size * price * bps / (B * BPS)): initial or maintenance requirement. */
PerpsResult risk_requirement(uint64_t size, uint64_t price, uint16_t bps, uint64_t *out);

/* What the engine needs of a position. */
typedef struct {
  uint8_t side;
  uint64_t size;
  uint64_t collateral;
  uint64_t entry_price;
  i128 funding_at_open;
} PositionTerms;

/* The funding-free liquidation key (docs/risk-engine.md). */
PerpsResult risk_key(const PositionTerms *pos, i128 *key);
/* The side's threshold at `price`: long positions with key > threshold, short
 * positions with key < threshold, are liquidatable. */
PerpsResult risk_threshold(uint8_t side, uint64_t price, const i128 *funding_index, uint16_t mm_bps, i128 *out);
static inline bool risk_liquidatable(uint8_t side, i128 key, i128 threshold) {
  return side == PERPS_SIDE_LONG ? threshold < key : key < threshold;
}
/* Liquidation price: a long is liquidatable below it, a short above it. */
PerpsResult risk_liquidation_price(const PositionTerms *pos, i128 funding_index, uint16_t mm_bps, i128 *out);
/* ceil(size * (index - funding_at_open) / (B * FS)): funding the position owes (< 0: is owed). */
PerpsResult risk_funding_owed(const PositionTerms *pos, i128 funding_index, i128 *out);
/* floor(size * (price - entry) / B) for a long, (entry - price) for a short. */
PerpsResult risk_pnl(const PositionTerms *pos, uint64_t price, i128 *out);

/* The sums of a side's cut positions (from the book's subtree sums). */
typedef struct {
  uint64_t collateral;
  uint64_t size;
  u128 size_entry;
  i128 size_funding;
} RiskSums;
/* Aggregate equity of a side's cut positions at `price`:
 * collateral + floor(pnl) - ceil(funding owed), from their sums. */
PerpsResult risk_batch_equity(uint8_t side, const RiskSums *sums, uint64_t price, const i128 *funding_index,
                              i128 *equity);

/* The exit price of a liquidation batch (SPEC 6): the fill of its net size.
 * The cut longs sell `long_size` and the cut shorts buy `short_size` at one
 * price, which moves the skew from skew0 to skew0 - long_size + short_size;
 * it is rounded as the net trade's fill (down when the batch sells on net). */
typedef struct {
  uint64_t index_price;
  i128 skew0;
  uint64_t long_size;  /* cut longs: they sell */
  uint64_t short_size; /* cut shorts: they buy */
  uint64_t skew_scale;
} BatchExit;
PerpsResult risk_batch_exit_price(const BatchExit *batch, uint64_t *price);

/* Where a batch's value goes (docs/risk-engine.md, "Payout"). */
typedef struct {
  i128 equity;         /* both sides' aggregate equity */
  uint64_t collateral; /* both sides' cut collateral */
  uint64_t pool;
  uint64_t insurance;
  uint16_t reward_bps;
} BatchInput;
typedef struct {
  uint64_t reward;           /* to the cranker */
  uint64_t insurance_credit; /* to the insurance fund */
  uint64_t insurance_paid;   /* from the insurance fund to the pool */
  uint64_t socialized_loss;  /* absorbed by the pool */
  i128 pool_credit;          /* to the pool (negative: from it) */
} BatchPayout;
PerpsResult risk_batch_payout(const BatchInput *in, BatchPayout *out);

#endif
