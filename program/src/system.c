/* System program CPI: creating program-derived accounts. */
#include "perps.h"

enum { SYS_CREATE_ACCOUNT = 0, SYS_ASSIGN = 1, SYS_TRANSFER = 2, SYS_ALLOCATE = 8 };

static PerpsResult invoke(Ctx *ctx, SolAccountMeta *metas, uint64_t n_metas, const uint8_t *data, uint64_t len,
                          const SolSignerSeeds *seeds) {
  SolInstruction ix = {
      .program_id = &PERPS_ADDRESS_SYSTEM_PROGRAM,
      .accounts = metas,
      .account_len = n_metas,
      .data = data,
      .data_len = len,
  };
  if (sol_invoke_signed_c(&ix, ctx->accounts, (int)ctx->params->num_accounts, seeds, seeds ? 1 : 0) != 0)
    return PERPS_ERR_CPI_FAILED;
  return 0;
}

static void put_u32(uint8_t *p, uint32_t v) { __builtin_memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { __builtin_memcpy(p, &v, 8); }

PerpsResult system_create_pda(Ctx *ctx, const CreatePda *spec) {
  SolAccountInfo *from = spec->payer;
  SolAccountInfo *to = spec->target;
  const SolSignerSeeds *seeds = spec->seeds;
  uint64_t size = spec->size;
  uint64_t needed;
  TRY(rent_exempt_lamports(size, &needed));
  uint8_t data[52];
  uint64_t have = *to->lamports;

  if (have == 0) {
    SolAccountMeta metas[2] = {{from->key, true, true}, {to->key, true, true}};
    put_u32(data, SYS_CREATE_ACCOUNT);
    put_u64(data + 4, needed);
    put_u64(data + 12, size);
    __builtin_memcpy(data + 20, spec->owner, 32);
    return invoke(ctx, metas, 2, data, 52, seeds);
  }
  /* Someone sent lamports to the address first: CreateAccount would refuse
   * it, so top up, allocate and assign instead. */
  if (have < needed) {
    SolAccountMeta metas[2] = {{from->key, true, true}, {to->key, true, false}};
    put_u32(data, SYS_TRANSFER);
    put_u64(data + 4, needed - have);
    TRY(invoke(ctx, metas, 2, data, 12, NULL));
  }
  SolAccountMeta meta = {to->key, true, true};
  put_u32(data, SYS_ALLOCATE);
  put_u64(data + 4, size);
  TRY(invoke(ctx, &meta, 1, data, 12, seeds));
  put_u32(data, SYS_ASSIGN);
  __builtin_memcpy(data + 4, spec->owner, 32);
  return invoke(ctx, &meta, 1, data, 36, seeds);
}

PerpsResult create_program_account(Ctx *ctx, const NewPdaAccount *spec) {
  TRY(find_pda(ctx, spec->target, spec->seeds, spec->count, spec->bump));
  TRY(require_uninitialized(ctx, spec->target));
  SolSignerSeeds signer = {spec->seeds, spec->count + 1};
  CreatePda create = {spec->payer, spec->target, spec->size, ctx->params->program_id, &signer};
  return system_create_pda(ctx, &create);
}
