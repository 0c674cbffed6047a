/* SPL Token: mint validation and CPI. */
#include "perps.h"

enum { TOKEN_TRANSFER = 3, TOKEN_INITIALIZE_ACCOUNT3 = 18 };

/* Mint layout: COption<Pubkey> mint_authority (36), u64 supply (8),
 * u8 decimals, bool is_initialized, COption<Pubkey> freeze_authority (36). */
#define MINT_DECIMALS_OFFSET 44
#define MINT_INITIALIZED_OFFSET 45

PerpsResult token_mint_decimals(Ctx *ctx, const SolAccountInfo *mint, uint8_t *decimals) {
  if (!sol_pubkey_eq(mint->owner, &PERPS_ADDRESS_TOKEN_PROGRAM)) return fail_account(ctx, mint, PERPS_ERR_INVALID_MINT);
  if (mint->data_len != SPL_MINT_SIZE || mint->data[MINT_INITIALIZED_OFFSET] != 1)
    return fail_account(ctx, mint, PERPS_ERR_INVALID_MINT);
  *decimals = mint->data[MINT_DECIMALS_OFFSET];
  return 0;
}

/* Token account layout: Pubkey mint, Pubkey owner, u64 amount,
 * COption<Pubkey> delegate (36), u8 state (0 uninitialised, 1 initialised, 2 frozen), ... */
#define TOKEN_ACCOUNT_STATE_OFFSET 108

PerpsResult token_require_account(Ctx *ctx, const SolAccountInfo *account, const SolPubkey *mint) {
  TRY(require_owner(ctx, account, &PERPS_ADDRESS_TOKEN_PROGRAM));
  if (account->data_len != SPL_TOKEN_ACCOUNT_SIZE || account->data[TOKEN_ACCOUNT_STATE_OFFSET] != 1)
    return fail_account(ctx, account, PERPS_ERR_INVALID_ACCOUNT_DATA);
  if (!sol_pubkey_eq((const SolPubkey *)account->data, mint)) return fail_account(ctx, account, PERPS_ERR_INVALID_MINT);
  return 0;
}

PerpsResult token_initialize_account(Ctx *ctx, const SolAccountInfo *account, const SolAccountInfo *mint,
                                     const SolPubkey *owner) {
  uint8_t data[33];
  data[0] = TOKEN_INITIALIZE_ACCOUNT3;
  __builtin_memcpy(data + 1, owner, 32);
  SolAccountMeta metas[2] = {
      {account->key, true, false},
      {mint->key, false, false},
  };
  SolInstruction ix = {
      .program_id = &PERPS_ADDRESS_TOKEN_PROGRAM,
      .accounts = metas,
      .account_len = 2,
      .data = data,
      .data_len = sizeof(data),
  };
  if (sol_invoke_signed_c(&ix, ctx->accounts, (int)ctx->params->num_accounts, NULL, 0) != 0)
    return PERPS_ERR_CPI_FAILED;
  return 0;
}

PerpsResult token_transfer(Ctx *ctx, const TokenTransfer *t) {
  uint8_t data[9];
  data[0] = TOKEN_TRANSFER;
  __builtin_memcpy(data + 1, &t->amount, 8);
  SolAccountMeta metas[3] = {
      {t->from->key, true, false},
      {t->to->key, true, false},
      {t->authority->key, false, true},
  };
  SolInstruction ix = {
      .program_id = &PERPS_ADDRESS_TOKEN_PROGRAM,
      .accounts = metas,
      .account_len = 3,
      .data = data,
      .data_len = sizeof(data),
  };
  if (sol_invoke_signed_c(&ix, ctx->accounts, (int)ctx->params->num_accounts, t->seeds, t->seeds ? 1 : 0) != 0)
    return PERPS_ERR_CPI_FAILED;
  return 0;
}
