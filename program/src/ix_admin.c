/* The market admin's instructions, and the permissionless funding crank. */
#include "perps.h"

/* fund_pool and fund_insurance: tokens from the admin into the vault. */
static PerpsResult fund(Ctx *ctx, uint64_t amount, bool pool) {
  enum { ADMIN = PERPS_FUND_POOL_ADMIN, MARKET = PERPS_FUND_POOL_MARKET };
  _Static_assert(PERPS_FUND_POOL_VAULT == PERPS_FUND_INSURANCE_VAULT, "same account lists");
  _Static_assert(PERPS_FUND_POOL_TOKEN_PROGRAM == PERPS_FUND_INSURANCE_TOKEN_PROGRAM, "same account lists");
  if (amount == 0) return PERPS_ERR_INVALID_AMOUNT;
  PerpsMarket *m;
  int64_t now;
  TRY(market_load(ctx, MARKET, &m));
  TRY(require_admin(ctx, ADMIN, m));
  TRY(require_vault(ctx, PERPS_FUND_POOL_VAULT, m));
  TRY(require_address(ctx, PERPS_FUND_POOL_TOKEN_PROGRAM, &PERPS_ADDRESS_TOKEN_PROGRAM));
  TRY(market_touch(ctx, m, &now));
  uint64_t *balance = pool ? &m->pool_balance : &m->insurance_balance;
  if (__builtin_add_overflow(*balance, amount, balance)) return PERPS_ERR_ARITHMETIC_OVERFLOW;
  TokenTransfer t = {PERPS_FUND_POOL_ADMIN_TOKEN, PERPS_FUND_POOL_VAULT, ADMIN, amount, NULL};
  return token_transfer(ctx, &t);
}

PerpsResult ix_fund_pool(Ctx *ctx, const PerpsFundPoolArgs *args) { return fund(ctx, args->amount, true); }

PerpsResult ix_fund_insurance(Ctx *ctx, const PerpsFundInsuranceArgs *args) { return fund(ctx, args->amount, false); }

PerpsResult ix_update_market_params(Ctx *ctx, const PerpsUpdateMarketParamsArgs *args) {
  PerpsMarket *m;
  int64_t now;
  TRY(market_load(ctx, PERPS_UPDATE_MARKET_PARAMS_MARKET, &m));
  TRY(require_admin(ctx, PERPS_UPDATE_MARKET_PARAMS_ADMIN, m));
  if (!market_params_valid(&args->params)) return PERPS_ERR_INVALID_MARKET_PARAMS;
  TRY(market_touch(ctx, m, &now)); /* funding up to now accrues under the old parameters */
  m->params = args->params;
  return 0;
}

PerpsResult ix_set_paused(Ctx *ctx, const PerpsSetPausedArgs *args) {
  PerpsMarket *m;
  int64_t now;
  TRY(market_load(ctx, PERPS_SET_PAUSED_MARKET, &m));
  TRY(require_admin(ctx, PERPS_SET_PAUSED_ADMIN, m));
  if (args->paused > 1) return PERPS_ERR_INVALID_INSTRUCTION_DATA;
  TRY(market_touch(ctx, m, &now));
  m->paused = args->paused;
  return 0;
}

PerpsResult ix_update_funding(Ctx *ctx, const PerpsUpdateFundingArgs *args) {
  (void)args;
  PerpsMarket *m;
  int64_t now;
  uint64_t price;
  TRY(market_load(ctx, PERPS_UPDATE_FUNDING_MARKET, &m));
  TRY(market_touch(ctx, m, &now));
  return market_read_oracle(ctx, m, PERPS_UPDATE_FUNDING_ORACLE, now, &price);
}
