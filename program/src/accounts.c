/* Account validation: every account is checked (count, signer, writable,
 * owner, address or PDA, discriminator, size) before its data is used. */
#include "math.h"
#include "perps.h"

PerpsResult fail_account(Ctx *ctx, const SolAccountInfo *acc, PerpsResult err) {
  /* the account's index (unsigned: upstream BPF has no signed division) */
  ctx->failed_account = (int64_t)(((uintptr_t)acc - (uintptr_t)ctx->accounts) / sizeof(SolAccountInfo));
  return err;
}

PerpsResult check_account_flags(Ctx *ctx, const uint8_t *flags, uint64_t count) {
  if (ctx->params->num_accounts < count) return PERPS_ERR_NOT_ENOUGH_ACCOUNTS;
  for (uint64_t i = 0; i < count; i++) {
    const SolAccountInfo *acc = &ctx->accounts[i];
    if ((flags[i] & PERPS_ACC_SIGNER) && !acc->is_signer) return fail_account(ctx, acc, PERPS_ERR_MISSING_SIGNER);
    if ((flags[i] & PERPS_ACC_WRITABLE) && !acc->is_writable)
      return fail_account(ctx, acc, PERPS_ERR_ACCOUNT_NOT_WRITABLE);
  }
  return 0;
}

PerpsResult require_address(Ctx *ctx, const SolAccountInfo *acc, const SolPubkey *expected) {
  if (!sol_pubkey_eq(acc->key, expected)) return fail_account(ctx, acc, PERPS_ERR_INVALID_ACCOUNT_ADDRESS);
  return 0;
}

PerpsResult require_owner(Ctx *ctx, const SolAccountInfo *acc, const SolPubkey *owner) {
  if (!sol_pubkey_eq(acc->owner, owner)) return fail_account(ctx, acc, PERPS_ERR_INVALID_ACCOUNT_OWNER);
  return 0;
}

PerpsResult load_account(Ctx *ctx, const SolAccountInfo *acc, uint64_t discriminator, uint64_t size, uint8_t **out) {
  TRY(require_owner(ctx, acc, ctx->params->program_id));
  if (acc->data_len < 8) return fail_account(ctx, acc, PERPS_ERR_INVALID_DISCRIMINATOR);
  uint64_t disc;
  __builtin_memcpy(&disc, acc->data, 8);
  if (disc != discriminator) return fail_account(ctx, acc, PERPS_ERR_INVALID_DISCRIMINATOR);
  if (acc->data_len < size) return fail_account(ctx, acc, PERPS_ERR_INVALID_ACCOUNT_DATA);
  *out = acc->data + 8;
  return 0;
}

uint8_t *init_account(SolAccountInfo *acc, uint64_t discriminator) {
  __builtin_memcpy(acc->data, &discriminator, 8);
  return acc->data + 8;
}

PerpsResult require_uninitialized(Ctx *ctx, const SolAccountInfo *acc) {
  if (sol_pubkey_eq(acc->owner, ctx->params->program_id))
    return fail_account(ctx, acc, PERPS_ERR_ACCOUNT_ALREADY_INITIALIZED);
  if (acc->data_len != 0 || !sol_pubkey_eq(acc->owner, &PERPS_ADDRESS_SYSTEM_PROGRAM))
    return fail_account(ctx, acc, PERPS_ERR_INVALID_ACCOUNT_OWNER);
  return 0;
}

PerpsResult find_pda(Ctx *ctx, const SolAccountInfo *acc, const SolBytes *seeds, uint64_t count, uint8_t *bump) {
  SolPubkey derived;
  if (sol_try_find_program_address(seeds, count, ctx->params->program_id, &derived, bump) != 0 ||
      !sol_pubkey_eq(acc->key, &derived))
    return fail_account(ctx, acc, PERPS_ERR_INVALID_PDA);
  return 0;
}

PerpsResult require_pda(Ctx *ctx, const SolAccountInfo *acc, const SolBytes *seeds, uint64_t count) {
  SolPubkey expected;
  if (sol_create_program_address(seeds, count, ctx->params->program_id, &expected) != 0 ||
      !sol_pubkey_eq(&expected, acc->key))
    return fail_account(ctx, acc, PERPS_ERR_INVALID_PDA);
  return 0;
}

void clock_now(SolClock *clock) { sol_get_clock_sysvar(clock); }

PerpsResult rent_exempt_lamports(uint64_t size, uint64_t *lamports) {
  SolRent rent;
  sol_get_rent_sysvar(&rent);
  if (!pk_rent_minimum_balance(rent.lamports_per_byte_year, rent.exemption_threshold_bits, size, lamports))
    return PERPS_ERR_ARITHMETIC_OVERFLOW;
  return 0;
}

PerpsResult add_u64(uint64_t *to, uint64_t v) {
  return __builtin_add_overflow(*to, v, to) ? PERPS_ERR_ARITHMETIC_OVERFLOW : 0;
}
