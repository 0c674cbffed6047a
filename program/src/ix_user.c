/* A trader's account in a market: create_user, deposit, withdraw. */
#include "perps.h"

PerpsResult ix_create_user(Ctx *ctx, const PerpsCreateUserArgs *args) {
  (void)args;
  enum { OWNER = PERPS_CREATE_USER_OWNER, MARKET = PERPS_CREATE_USER_MARKET, USER = PERPS_CREATE_USER_USER };
  SolAccountInfo *acc = ctx->accounts;
  TRY(require_address(ctx, PERPS_CREATE_USER_SYSTEM_PROGRAM, &PERPS_ADDRESS_SYSTEM_PROGRAM));
  PerpsMarket *m;
  TRY(market_load(ctx, MARKET, &m));
  uint8_t bump;
  SolBytes seeds[4] = {{(const uint8_t *)"user", 4}, {acc[MARKET].key->x, 32}, {acc[OWNER].key->x, 32}, {&bump, 1}};
  TRY(find_pda(ctx, USER, seeds, 3, &bump));
  TRY(require_uninitialized(ctx, USER));
  SolSignerSeeds signer = {seeds, 4};
  CreatePda create = {OWNER, USER, PERPS_SIZE_USER, ctx->params->program_id, &signer};
  TRY(system_create_pda(ctx, &create));
  PerpsUser *u = (PerpsUser *)init_account(ctx, USER, PERPS_DISC_USER);
  u->market = *acc[MARKET].key;
  u->owner = *acc[OWNER].key;
  u->bump = bump;
  for (uint32_t i = 0; i < PERPS_MAX_USER_POSITIONS; i++) u->positions[i].slot = UINT32_MAX;
  return 0;
}

PerpsResult ix_deposit(Ctx *ctx, const PerpsDepositArgs *args) {
  enum { OWNER = PERPS_DEPOSIT_OWNER, MARKET = PERPS_DEPOSIT_MARKET, USER = PERPS_DEPOSIT_USER };
  if (args->amount == 0) return PERPS_ERR_INVALID_AMOUNT;
  PerpsMarket *m;
  PerpsUser *u;
  int64_t now;
  TRY(market_load(ctx, MARKET, &m));
  TRY(user_load(ctx, USER, MARKET, OWNER, &u));
  TRY(require_vault(ctx, PERPS_DEPOSIT_VAULT, m));
  TRY(require_address(ctx, PERPS_DEPOSIT_TOKEN_PROGRAM, &PERPS_ADDRESS_TOKEN_PROGRAM));
  TRY(market_touch(ctx, m, &now));
  if (__builtin_add_overflow(u->free_collateral, args->amount, &u->free_collateral) ||
      __builtin_add_overflow(m->total_free_collateral, args->amount, &m->total_free_collateral))
    return PERPS_ERR_ARITHMETIC_OVERFLOW;
  TokenTransfer t = {PERPS_DEPOSIT_OWNER_TOKEN, PERPS_DEPOSIT_VAULT, OWNER, args->amount, NULL};
  return token_transfer(ctx, &t);
}

PerpsResult ix_withdraw(Ctx *ctx, const PerpsWithdrawArgs *args) {
  enum { OWNER = PERPS_WITHDRAW_OWNER, MARKET = PERPS_WITHDRAW_MARKET, USER = PERPS_WITHDRAW_USER };
  enum { AUTHORITY = PERPS_WITHDRAW_MARKET_AUTHORITY };
  if (args->amount == 0) return PERPS_ERR_INVALID_AMOUNT;
  PerpsMarket *m;
  PerpsUser *u;
  int64_t now;
  TRY(market_load(ctx, MARKET, &m));
  TRY(user_load(ctx, USER, MARKET, OWNER, &u));
  TRY(require_vault(ctx, PERPS_WITHDRAW_VAULT, m));
  TRY(require_address(ctx, PERPS_WITHDRAW_TOKEN_PROGRAM, &PERPS_ADDRESS_TOKEN_PROGRAM));
  TRY(market_touch(ctx, m, &now));
  if (u->free_collateral < args->amount) return PERPS_ERR_INSUFFICIENT_FREE_COLLATERAL;
  u->free_collateral -= args->amount;
  m->total_free_collateral -= args->amount;
  SolBytes seeds[3];
  TRY(require_market_authority(ctx, AUTHORITY, MARKET, m, seeds));
  SolSignerSeeds signer = {seeds, 3};
  TokenTransfer t = {PERPS_WITHDRAW_VAULT, PERPS_WITHDRAW_OWNER_TOKEN, AUTHORITY, args->amount, &signer};
  return token_transfer(ctx, &t);
}
