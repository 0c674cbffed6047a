/* Account validation: every account is checked (count, signer, writable,
 * owner, address or PDA, discriminator, size) before its data is used. */
#include "math.h"
#include "perps.h"

PerpsResult fail_account(Ctx *ctx, uint64_t index, PerpsResult err) {
  ctx->failed_account = (int64_t)index;
  return err;
}

PerpsResult check_account_flags(Ctx *ctx, const uint8_t *flags, uint64_t count) {
  if (ctx->params->num_accounts < count) return PERPS_ERR_NOT_ENOUGH_ACCOUNTS;
  for (uint64_t i = 0; i < count; i++) {
    const SolAccountInfo *acc = &ctx->accounts[i];
    if ((flags[i] & PERPS_ACC_SIGNER) && !acc->is_signer) return fail_account(ctx, i, PERPS_ERR_MISSING_SIGNER);
    if ((flags[i] & PERPS_ACC_WRITABLE) && !acc->is_writable)
      return fail_account(ctx, i, PERPS_ERR_ACCOUNT_NOT_WRITABLE);
  }
  return 0;
}

PerpsResult require_address(Ctx *ctx, uint64_t index, const SolPubkey *expected) {
  if (!sol_pubkey_eq(ctx->accounts[index].key, expected))
    return fail_account(ctx, index, PERPS_ERR_INVALID_ACCOUNT_ADDRESS);
  return 0;
}

PerpsResult require_owner(Ctx *ctx, uint64_t index, const SolPubkey *owner) {
  if (!sol_pubkey_eq(ctx->accounts[index].owner, owner))
    return fail_account(ctx, index, PERPS_ERR_INVALID_ACCOUNT_OWNER);
  return 0;
}

PerpsResult load_account(Ctx *ctx, uint64_t index, uint64_t discriminator, uint64_t size, uint8_t **out) {
  SolAccountInfo *acc = &ctx->accounts[index];
  TRY(require_owner(ctx, index, ctx->params->program_id));
  if (acc->data_len < 8) return fail_account(ctx, index, PERPS_ERR_INVALID_DISCRIMINATOR);
  uint64_t disc;
  __builtin_memcpy(&disc, acc->data, 8);
  if (disc != discriminator) return fail_account(ctx, index, PERPS_ERR_INVALID_DISCRIMINATOR);
  if (acc->data_len < size) return fail_account(ctx, index, PERPS_ERR_INVALID_ACCOUNT_DATA);
  *out = acc->data + 8;
  return 0;
}

uint8_t *init_account(Ctx *ctx, uint64_t index, uint64_t discriminator) {
  uint8_t *data = ctx->accounts[index].data;
  __builtin_memcpy(data, &discriminator, 8);
  return data + 8;
}

PerpsResult require_uninitialized(Ctx *ctx, uint64_t index) {
  const SolAccountInfo *acc = &ctx->accounts[index];
  if (sol_pubkey_eq(acc->owner, ctx->params->program_id))
    return fail_account(ctx, index, PERPS_ERR_ACCOUNT_ALREADY_INITIALIZED);
  if (acc->data_len != 0 || !sol_pubkey_eq(acc->owner, &PERPS_ADDRESS_SYSTEM_PROGRAM))
    return fail_account(ctx, index, PERPS_ERR_INVALID_ACCOUNT_OWNER);
  return 0;
}

PerpsResult find_pda(Ctx *ctx, uint64_t index, const SolBytes *seeds, uint64_t count, uint8_t *bump) {
  SolPubkey derived;
  if (sol_try_find_program_address(seeds, count, ctx->params->program_id, &derived, bump) != 0)
    return fail_account(ctx, index, PERPS_ERR_INVALID_PDA);
  if (!sol_pubkey_eq(ctx->accounts[index].key, &derived)) return fail_account(ctx, index, PERPS_ERR_INVALID_PDA);
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
