/* Internal interface of the perps program: the instruction context, account
 * validation (accounts.c), CPI wrappers (system.c, token.c) and the
 * instruction handlers. */
#ifndef PERPS_H
#define PERPS_H

#include "book.h"
#include "perps_idl.h"
#include "risk.h"
#include "sol/cpi.h"
#include "sol/entrypoint.h"
#include "sol/mem.h"
#include "sol/syscalls.h"

/* Most accounts one instruction may pass. */
#define PERPS_MAX_ACCOUNTS 32

/* PerpsResult (0 or a PERPS_ERR_* code) comes from risk.h. */

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

/* ---- market.c: the state every market instruction shares ---- */
/* Limits beyond SPEC's own: skew scale below 2^62 (so 2K fits in u64), funding
 * at most 100% a day, an EWMA window of at most a week. */
bool market_params_valid(const PerpsMarketParams *p);
/* The market account at `index`: ours, a Market, and writable if `writable`. */
PerpsResult market_load(Ctx *ctx, uint64_t index, PerpsMarket **out);
/* The clock, then funding brought up to now at the last index price. */
PerpsResult market_touch(Ctx *ctx, PerpsMarket *m, int64_t *now);
/* Read the market's oracle at `index` (all SPEC 3 checks), update the EWMA
 * and last index price; the index price in *price. */
PerpsResult market_read_oracle(Ctx *ctx, PerpsMarket *m, uint64_t index, int64_t now, uint64_t *price);
/* The book at `index`, which must be the market's. */
PerpsResult market_book(Ctx *ctx, uint64_t index, const PerpsMarket *m, Book *out);
/* The user account at `user`, of the market at `market` and the signer at `owner`. */
PerpsResult user_load(Ctx *ctx, uint64_t user, uint64_t market, uint64_t owner, PerpsUser **out);
/* The signer at `admin` is the market's admin. */
PerpsResult require_admin(Ctx *ctx, uint64_t admin, const PerpsMarket *m);
/* The user's reference to `slot`: PositionNotFound if it has none,
 * PositionLiquidated if that position is no longer live. */
PerpsResult user_position(Ctx *ctx, PerpsUser *u, const Book *b, uint32_t slot, uint32_t *ref);
/* The position in `slot` as the risk engine sees it. */
void position_terms(const PerpsPositionSlot *p, PositionTerms *out);
/* The market's vault at `index`. */
PerpsResult require_vault(Ctx *ctx, uint64_t index, const PerpsMarket *m);
/* The vault's owner at `index`: PDA("authority", market, stored bump), checked.
 * `seeds` (3, kept alive by the caller) then sign for it in a CPI. */
PerpsResult require_market_authority(Ctx *ctx, uint64_t index, uint64_t market, const PerpsMarket *m,
                                     SolBytes seeds[3]);

/* ---- token.c ---- */
#define SPL_TOKEN_ACCOUNT_SIZE 165
#define SPL_MINT_SIZE 82
/* InitializeAccount3: make `account` a token account of `mint` owned by `owner`. */
PerpsResult token_initialize_account(Ctx *ctx, uint64_t account, uint64_t mint, const SolPubkey *owner);
/* Transfer `amount` tokens; `seeds` signs for a PDA authority (NULL: the
 * authority account signed the transaction). */
typedef struct {
  uint64_t from;
  uint64_t to;
  uint64_t authority;
  uint64_t amount;
  const SolSignerSeeds *seeds;
} TokenTransfer;
PerpsResult token_transfer(Ctx *ctx, const TokenTransfer *t);
/* The account is an initialized mint of the token program; its decimals. */
PerpsResult token_mint_decimals(Ctx *ctx, uint64_t mint, uint8_t *decimals);
/* The account is an initialised, unfrozen token account of `mint`. */
PerpsResult token_require_account(Ctx *ctx, uint64_t account, const SolPubkey *mint);

/* ---- handlers ---- */
#define DECLARE_HANDLER(UPPER, lower, Args) PerpsResult ix_##lower(Ctx *ctx, const Args *args);
PERPS_INSTRUCTIONS(DECLARE_HANDLER)
#undef DECLARE_HANDLER

#endif
