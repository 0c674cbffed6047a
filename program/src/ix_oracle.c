/* The program-owned test oracle: initialize_oracle and set_oracle_price.
 * The authority may set any value (zero, negative, stale, wide): the checks
 * of SPEC section 3 apply where a market reads the price. */
#include "perps.h"

PerpsResult ix_initialize_oracle(Ctx *ctx, const PerpsInitializeOracleArgs *args) {
  enum { AUTHORITY = PERPS_INITIALIZE_ORACLE_AUTHORITY, ORACLE = PERPS_INITIALIZE_ORACLE_ORACLE };
  SolAccountInfo *acc = ctx->accounts;
  TRY(require_address(ctx, PERPS_INITIALIZE_ORACLE_SYSTEM_PROGRAM, &PERPS_ADDRESS_SYSTEM_PROGRAM));

  uint32_t id = args->oracle_id;
  uint8_t bump;
  SolBytes seeds[4] = {
      {(const uint8_t *)"oracle", 6},
      {acc[AUTHORITY].key->x, 32},
      {(const uint8_t *)&id, 4},
      {&bump, 1},
  };
  TRY(find_pda(ctx, ORACLE, seeds, 3, &bump));
  TRY(require_uninitialized(ctx, ORACLE));
  SolSignerSeeds signer = {seeds, 4};
  CreatePda create = {AUTHORITY, ORACLE, PERPS_SIZE_ORACLE, ctx->params->program_id, &signer};
  TRY(system_create_pda(ctx, &create));

  SolClock clock;
  clock_now(&clock);
  PerpsOracle *oracle = (PerpsOracle *)init_account(ctx, ORACLE, PERPS_DISC_ORACLE);
  oracle->authority = *acc[AUTHORITY].key;
  oracle->price = args->price;
  oracle->conf = args->conf;
  oracle->publish_time = clock.unix_timestamp;
  oracle->expo = (int32_t)PERPS_ORACLE_EXPO;
  oracle->oracle_id = id;
  oracle->bump = bump;
  return 0;
}

PerpsResult ix_set_oracle_price(Ctx *ctx, const PerpsSetOraclePriceArgs *args) {
  enum { AUTHORITY = PERPS_SET_ORACLE_PRICE_AUTHORITY, ORACLE = PERPS_SET_ORACLE_PRICE_ORACLE };
  uint8_t *data;
  TRY(load_account(ctx, ORACLE, PERPS_DISC_ORACLE, PERPS_SIZE_ORACLE, &data));
  PerpsOracle *oracle = (PerpsOracle *)data;
  if (!sol_pubkey_eq(&oracle->authority, ctx->accounts[AUTHORITY].key))
    return fail_account(ctx, AUTHORITY, PERPS_ERR_UNAUTHORIZED);
  oracle->price = args->price;
  oracle->conf = args->conf;
  oracle->publish_time = args->publish_time;
  return 0;
}
