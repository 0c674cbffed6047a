/* The market admin's instructions, and the permissionless funding crank. */
#include "perps.h"

/* fund_pool and fund_insurance: tokens from the admin into the vault. */
typedef struct {
  const SolAccountInfo *admin, *market, *admin_token, *vault, *token_program;
} FundAccounts;

static PerpsResult fund(Ctx *ctx, const FundAccounts *a, uint64_t amount, bool pool) {
  if (amount == 0) return PERPS_ERR_INVALID_AMOUNT;
  PerpsMarket *m;
  int64_t now;
  TRY(market_load(ctx, a->market, &m));
  TRY(require_admin(ctx, a->admin, m));
  TRY(require_vault(ctx, a->vault, m));
  TRY(require_not_vault(ctx, a->admin_token, m));
  TRY(require_address(ctx, a->token_program, &PERPS_ADDRESS_TOKEN_PROGRAM));
  TRY(market_touch(m, &now));
  TRY(add_u64(pool ? &m->pool_balance : &m->insurance_balance, amount));
  TokenTransfer t = {a->admin_token, a->vault, a->admin, amount, NULL};
  return token_transfer(ctx, &t);
}

PerpsResult ix_fund_pool(Ctx *ctx, const PerpsFundPoolAccounts *a, const PerpsFundPoolArgs *args) {
  FundAccounts f = {a->admin, a->market, a->admin_token, a->vault, a->token_program};
  return fund(ctx, &f, args->amount, true);
}

PerpsResult ix_fund_insurance(Ctx *ctx, const PerpsFundInsuranceAccounts *a, const PerpsFundInsuranceArgs *args) {
  FundAccounts f = {a->admin, a->market, a->admin_token, a->vault, a->token_program};
  return fund(ctx, &f, args->amount, false);
}

/* SPEC 7b: no parameter change may make an open position liquidatable at the
 * current index.  Keys do not depend on the parameters, so the most exposed
 * position of each side (one walk down its tree) is the only one to test. */
static PerpsResult check_nobody_liquidated(const PerpsMarket *m, const Book *b, uint64_t price,
                                           const PerpsMarketParams *next) {
  for (uint8_t side = PERPS_SIDE_LONG; side <= PERPS_SIDE_SHORT; side++) {
    uint32_t slot = book_extreme(b, side);
    if (slot == UINT32_MAX) continue;
    i128 index = market_funding_index(m, side), threshold;
    TRY(risk_threshold(side, price, &index, next->maintenance_margin_bps, &threshold));
    if (risk_liquidatable(side, pk_load_i128(&b->slots[slot].key), threshold)) return PERPS_ERR_PARAMS_WOULD_LIQUIDATE;
  }
  return 0;
}

PerpsResult ix_update_market_params(Ctx *ctx, const PerpsUpdateMarketParamsAccounts *a,
                                    const PerpsUpdateMarketParamsArgs *args) {
  PerpsMarket *m;
  Book b;
  int64_t now;
  uint64_t price;
  TRY(market_load(ctx, a->market, &m));
  TRY(require_admin(ctx, a->admin, m));
  TRY(market_book(ctx, a->book, m, &b));
  TRY(risk_check_params(&args->params, m->oi_long, m->oi_short));
  TRY(market_touch(m, &now)); /* funding up to now accrues under the old parameters */
  m->params = args->params;
  /* The oracle is read under the new parameters, so that a fix of a too
   * strict staleness or confidence limit is not blocked by that very limit.
   * Any refusal below reverts the whole instruction, the new parameters too. */
  TRY(market_read_oracle(ctx, m, a->oracle, now, &price));
  return check_nobody_liquidated(m, &b, price, &m->params);
}

PerpsResult ix_set_paused(Ctx *ctx, const PerpsSetPausedAccounts *a, const PerpsSetPausedArgs *args) {
  PerpsMarket *m;
  int64_t now;
  TRY(market_load(ctx, a->market, &m));
  TRY(require_admin(ctx, a->admin, m));
  if (args->paused > 1) return PERPS_ERR_INVALID_INSTRUCTION_DATA;
  TRY(market_touch(m, &now));
  m->paused = args->paused;
  return 0;
}

PerpsResult ix_set_market_oracle(Ctx *ctx, const PerpsSetMarketOracleAccounts *a,
                                 const PerpsSetMarketOracleArgs *args) {
  PerpsMarket *m;
  int64_t now;
  uint64_t price;
  TRY(market_load(ctx, a->market, &m));
  TRY(require_admin(ctx, a->admin, m));
  /* The test oracle's authority can always publish: only a Pyth market needs this. */
  if (m->oracle_kind != PERPS_ORACLE_KIND_PYTH) return fail_account(ctx, a->oracle, PERPS_ERR_INVALID_ORACLE_KIND);
  /* The feed stays the market's (the read checks it). The receiver stays, or
   * moves between Pyth's own: a receiver of the admin's choosing would give
   * the admin the price. */
  bool same = sol_pubkey_eq(&args->pyth_receiver, &m->pyth_receiver);
  if (!same && !(pyth_known_receiver(&m->pyth_receiver) && pyth_known_receiver(&args->pyth_receiver)))
    return fail_account(ctx, a->oracle, PERPS_ERR_ORACLE_REPOINT_REFUSED);
  TRY(market_touch(m, &now)); /* funding up to now accrues at the last price read */
  m->oracle = *a->oracle->key;
  m->pyth_receiver = args->pyth_receiver;
  /* Every read check, freshness and "not older than the last update read"
   * included; any refusal reverts the whole instruction. */
  return market_read_oracle(ctx, m, a->oracle, now, &price);
}

PerpsResult ix_update_funding(Ctx *ctx, const PerpsUpdateFundingAccounts *a, const PerpsUpdateFundingArgs *args) {
  (void)args;
  PerpsMarket *m;
  int64_t now;
  uint64_t price;
  TRY(market_load(ctx, a->market, &m));
  TRY(market_touch(m, &now));
  return market_read_oracle(ctx, m, a->oracle, now, &price);
}
