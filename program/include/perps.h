/* Internal interface of the perps program: the instruction context, account
 * validation (accounts.c), CPI wrappers (system.c, token.c) and the
 * instruction handlers. */
#ifndef PERPS_H
#define PERPS_H

#include "perps_idl.h"
#include "sol/cpi.h"
#include "sol/entrypoint.h"
#include "sol/mem.h"
#include "sol/syscalls.h"

/* Most accounts one instruction may pass. */
#define PERPS_MAX_ACCOUNTS 32

/* 0 on success, else a program error code (PERPS_ERR_*). */
typedef uint64_t PerpsResult;

#define TRY(expr)                 \
  do {                            \
    PerpsResult try_err_ = (expr); \
    if (try_err_) return try_err_; \
  } while (0)

/* Everything an instruction handler works with. */
typedef struct {
  const SolParameters *params;
  SolAccountInfo *accounts;
  /* Names of the instruction's accounts from the IDL, for error messages. */
  const char *account_names;
  const uint16_t *account_name_offsets;
  /* Index of the account that failed validation, or -1. */
  int64_t failed_account;
} Ctx;

/* ---- accounts.c ---- */
/* Record which account failed and return err. */
PerpsResult fail_account(Ctx *ctx, uint64_t index, PerpsResult err);
/* Check the account count and every signer/writable flag the IDL asks for. */
PerpsResult check_account_flags(Ctx *ctx, const uint8_t *flags, uint64_t count);
PerpsResult require_address(Ctx *ctx, uint64_t index, const SolPubkey *expected);
PerpsResult require_owner(Ctx *ctx, uint64_t index, const SolPubkey *owner);
/* The account is owned by this program and holds `discriminator` with at
 * least `size` bytes; returns the data after the discriminator in *out. */
PerpsResult load_account(Ctx *ctx, uint64_t index, uint64_t discriminator, uint64_t size, uint8_t **out);
/* Write `discriminator` at the start of a freshly created account of this
 * program; returns its data after the discriminator, for the account struct. */
uint8_t *init_account(Ctx *ctx, uint64_t index, uint64_t discriminator);
/* The account is a fresh address: no data and owned by the system program. */
PerpsResult require_uninitialized(Ctx *ctx, uint64_t index);
/* The account's key is the PDA of `seeds` under this program; the bump is
 * found (sol_try_find_program_address) and written to *bump. */
PerpsResult find_pda(Ctx *ctx, uint64_t index, const SolBytes *seeds, uint64_t count, uint8_t *bump);
/* Current unix time and slot from the Clock sysvar. */
void clock_now(SolClock *clock);
/* Lamports that make `size` bytes rent-exempt. */
PerpsResult rent_exempt_lamports(uint64_t size, uint64_t *lamports);

/* ---- system.c ---- */
/* A program-derived account to create (upstream BPF calls take at most five
 * arguments, hence the struct). */
typedef struct {
  uint64_t payer;               /* account index of the rent payer */
  uint64_t target;              /* account index of the new account */
  uint64_t size;                /* data bytes */
  const SolPubkey *owner;       /* program that will own it */
  const SolSignerSeeds *seeds;  /* the target's seeds, ending with its bump */
} CreatePda;
/* Create the account, rent-exempt.  Works even if someone has already sent
 * lamports to the address (CreateAccount alone would refuse it). */
PerpsResult system_create_pda(Ctx *ctx, const CreatePda *spec);

/* ---- token.c ---- */
#define SPL_TOKEN_ACCOUNT_SIZE 165
#define SPL_MINT_SIZE 82
/* InitializeAccount3: make `account` a token account of `mint` owned by `owner`. */
PerpsResult token_initialize_account(Ctx *ctx, uint64_t account, uint64_t mint, const SolPubkey *owner);
/* The account is an initialized mint of the token program; its decimals. */
PerpsResult token_mint_decimals(Ctx *ctx, uint64_t mint, uint8_t *decimals);

/* ---- handlers ---- */
#define DECLARE_HANDLER(UPPER, lower, Args) PerpsResult ix_##lower(Ctx *ctx, const Args *args);
PERPS_INSTRUCTIONS(DECLARE_HANDLER)
#undef DECLARE_HANDLER

#endif
