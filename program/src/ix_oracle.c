/* The program-owned test oracle: initialize_oracle and set_oracle_price.
 * The authority may set any value (zero, negative, stale, wide, in the
 * future): the checks of SPEC section 3 apply where a market reads the price. */
#include "perps.h"

PerpsResult ix_initialize_oracle(Ctx *ctx, const PerpsInitializeOracleAccounts *a,
                                 const PerpsInitializeOracleArgs *args) {
  TRY(require_address(ctx, a->system_program, &PERPS_ADDRESS_SYSTEM_PROGRAM));
  uint8_t bump;
  SolBytes seeds[PERPS_INITIALIZE_ORACLE_ORACLE_SEEDS + 1];
  perps_initialize_oracle_oracle_seeds(a, args, seeds, &bump);
  NewPdaAccount create = {a->authority, a->oracle, PERPS_SIZE_ORACLE,
                          seeds, PERPS_INITIALIZE_ORACLE_ORACLE_SEEDS, &bump};
  TRY(create_program_account(ctx, &create));

  SolClock clock;
  clock_now(&clock);
  PerpsOracle *oracle = (PerpsOracle *)init_account(a->oracle, PERPS_DISC_ORACLE);
  oracle->authority = *a->authority->key;
  oracle->price = args->price;
  oracle->conf = args->conf;
  oracle->publish_time = clock.unix_timestamp;
  oracle->expo = (int32_t)PERPS_ORACLE_EXPO;
  oracle->oracle_id = args->oracle_id;
  oracle->bump = bump;
  return 0;
}

PerpsResult ix_set_oracle_price(Ctx *ctx, const PerpsSetOraclePriceAccounts *a, const PerpsSetOraclePriceArgs *args) {
  uint8_t *data;
  TRY(load_account(ctx, a->oracle, PERPS_DISC_ORACLE, PERPS_SIZE_ORACLE, &data));
  PerpsOracle *oracle = (PerpsOracle *)data;
  if (!sol_pubkey_eq(&oracle->authority, a->authority->key))
    return fail_account(ctx, a->authority, PERPS_ERR_UNAUTHORIZED);
  oracle->price = args->price;
  oracle->conf = args->conf;
  oracle->publish_time = args->publish_time;
  return 0;
}
