/* A trader's account in a market: create_user, deposit, withdraw. */
#include "perps.h"

PerpsResult ix_create_user(Ctx *ctx, const PerpsCreateUserAccounts *a, const PerpsCreateUserArgs *args) {
  TRY(require_address(ctx, a->system_program, &PERPS_ADDRESS_SYSTEM_PROGRAM));
  PerpsMarket *m;
  TRY(market_load(ctx, a->market, &m));
  uint8_t bump;
  SolBytes seeds[PERPS_CREATE_USER_USER_SEEDS + 1];
  perps_create_user_user_seeds(a, args, seeds, &bump);
  NewPdaAccount create = {a->owner, a->user, PERPS_SIZE_USER, seeds, PERPS_CREATE_USER_USER_SEEDS, &bump};
  TRY(create_program_account(ctx, &create));
  PerpsUser *u = (PerpsUser *)init_account(a->user, PERPS_DISC_USER);
  u->market = *a->market->key;
  u->owner = *a->owner->key;
  u->bump = bump;
  for (uint32_t i = 0; i < PERPS_MAX_USER_POSITIONS; i++) u->positions[i].slot = UINT32_MAX;
  return 0;
}

PerpsResult ix_deposit(Ctx *ctx, const PerpsDepositAccounts *a, const PerpsDepositArgs *args) {
  if (args->amount == 0) return PERPS_ERR_INVALID_AMOUNT;
  PerpsMarket *m;
  PerpsUser *u;
  int64_t now;
  TRY(market_load(ctx, a->market, &m));
  TRY(user_load(ctx, a->user, a->market, a->owner, &u));
  TRY(require_vault(ctx, a->vault, m));
  TRY(require_not_vault(ctx, a->owner_token, m));
  TRY(require_address(ctx, a->token_program, &PERPS_ADDRESS_TOKEN_PROGRAM));
  TRY(market_touch(m, &now));
  TRY(add_u64(&u->free_collateral, args->amount));
  TRY(add_u64(&m->total_free_collateral, args->amount));
  TokenTransfer t = {a->owner_token, a->vault, a->owner, args->amount, NULL};
  return token_transfer(ctx, &t);
}

PerpsResult ix_withdraw(Ctx *ctx, const PerpsWithdrawAccounts *a, const PerpsWithdrawArgs *args) {
  if (args->amount == 0) return PERPS_ERR_INVALID_AMOUNT;
  PerpsMarket *m;
  PerpsUser *u;
  int64_t now;
  TRY(market_load(ctx, a->market, &m));
  TRY(user_load(ctx, a->user, a->market, a->owner, &u));
  TRY(require_vault(ctx, a->vault, m));
  /* paid into the vault, the tokens would stay while the free collateral went (SPEC 4) */
  TRY(require_not_vault(ctx, a->owner_token, m));
  TRY(require_address(ctx, a->token_program, &PERPS_ADDRESS_TOKEN_PROGRAM));
  SolBytes seeds[PERPS_WITHDRAW_MARKET_AUTHORITY_SEEDS + 1];
  perps_withdraw_market_authority_seeds(a, args, seeds, &m->authority_bump);
  TRY(require_pda(ctx, a->market_authority, seeds, PERPS_WITHDRAW_MARKET_AUTHORITY_SEEDS + 1));
  TRY(market_touch(m, &now));
  if (u->free_collateral < args->amount) return PERPS_ERR_INSUFFICIENT_FREE_COLLATERAL;
  u->free_collateral -= args->amount;
  m->total_free_collateral -= args->amount;
  SolSignerSeeds signer = {seeds, PERPS_WITHDRAW_MARKET_AUTHORITY_SEEDS + 1};
  TokenTransfer t = {a->vault, a->owner_token, a->market_authority, args->amount, &signer};
  return token_transfer(ctx, &t);
}
