/* Internal interface of the perps program: the instruction context, account
 * validation (accounts.c), CPI wrappers (system.c, token.c), the state every
 * market instruction shares (market.c) and the instruction handlers.
 *
 * Handlers receive their accounts as a generated struct of named references
 * (perps_idl.h: PerpsXxxAccounts, filled once at dispatch after the count and
 * the signer/writable flags are checked), and validate each one before using
 * it: owner, address or PDA, discriminator and size. */
#ifndef PERPS_H
#define PERPS_H

#include "book.h"
#include "perps_idl.h"
#include "pyth.h"
#include "result.h"
#include "risk.h"
#include "sol/cpi.h"
#include "sol/entrypoint.h"
#include "sol/mem.h"
#include "sol/syscalls.h"

/* Most accounts one instruction may pass. */
#define PERPS_MAX_ACCOUNTS 32

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
/* Record which account failed (for the error log) and return err. */
PerpsResult fail_account(Ctx *ctx, const SolAccountInfo *acc, PerpsResult err);
/* Check the account count and every signer/writable flag the IDL asks for. */
PerpsResult check_account_flags(Ctx *ctx, const uint8_t *flags, uint64_t count);
PerpsResult require_address(Ctx *ctx, const SolAccountInfo *acc, const SolPubkey *expected);
PerpsResult require_owner(Ctx *ctx, const SolAccountInfo *acc, const SolPubkey *owner);
/* The account is owned by this program and holds `discriminator` with at
 * least `size` bytes; returns the data after the discriminator in *out. */
PerpsResult load_account(Ctx *ctx, const SolAccountInfo *acc, uint64_t discriminator, uint64_t size, uint8_t **out);
/* Write `discriminator` at the start of a freshly created account of this
 * program; returns its data after the discriminator, for the account struct. */
uint8_t *init_account(SolAccountInfo *acc, uint64_t discriminator);
/* The account is a fresh address: no data and owned by the system program. */
PerpsResult require_uninitialized(Ctx *ctx, const SolAccountInfo *acc);
/* The account's key is the PDA of the first `count` seeds under this program;
 * the bump is found (sol_try_find_program_address) and written to *bump. */
PerpsResult find_pda(Ctx *ctx, const SolAccountInfo *acc, const SolBytes *seeds, uint64_t count, uint8_t *bump);
/* The account's key is the PDA of `count` seeds that end with a stored bump. */
PerpsResult require_pda(Ctx *ctx, const SolAccountInfo *acc, const SolBytes *seeds, uint64_t count);
/* Current unix time and slot from the Clock sysvar. */
void clock_now(SolClock *clock);
/* Lamports that make `size` bytes rent-exempt. */
PerpsResult rent_exempt_lamports(uint64_t size, uint64_t *lamports);
/* Checked u64 addition in place: ArithmeticOverflow instead of a wrap. */
PerpsResult add_u64(uint64_t *to, uint64_t v);

/* ---- system.c ---- */
/* A program-derived account to create (upstream BPF calls take at most five
 * arguments, hence the struct). */
typedef struct {
  SolAccountInfo *payer;        /* pays the rent */
  SolAccountInfo *target;       /* the new account */
  uint64_t size;                /* data bytes */
  const SolPubkey *owner;       /* program that will own it */
  const SolSignerSeeds *seeds;  /* the target's seeds, ending with its bump */
} CreatePda;
/* Create the account, rent-exempt.  Works even if someone has already sent
 * lamports to the address (CreateAccount alone would refuse it). */
PerpsResult system_create_pda(Ctx *ctx, const CreatePda *spec);
/* A new account of this program at the PDA of `count` seeds (the IDL's seed
 * builder filled seeds[0..count-1] and pointed seeds[count] at *bump): the
 * address is checked and its bump found, it must be fresh, then it is
 * created, rent-exempt, paid by `payer`. */
typedef struct {
  SolAccountInfo *payer;
  SolAccountInfo *target;
  uint64_t size;
  SolBytes *seeds;
  uint64_t count;
  uint8_t *bump;
} NewPdaAccount;
PerpsResult create_program_account(Ctx *ctx, const NewPdaAccount *spec);

/* ---- market.c: the state every market instruction shares ---- */
/* The market account: ours, a Market. */
PerpsResult market_load(Ctx *ctx, const SolAccountInfo *acc, PerpsMarket **out);
/* The clock, then funding brought up to now at the last index price. */
PerpsResult market_touch(PerpsMarket *m, int64_t *now);
/* Read the market's oracle (all SPEC 3 checks), update the EWMA and last
 * index price; the index price in *price. */
/* Where a market's price comes from: the test oracle, or a Pyth receiver's account of one feed. */
typedef struct {
  uint8_t kind; /* PERPS_ORACLE_KIND_* */
  const SolPubkey *receiver;
  const uint8_t *feed_id;
} OracleSource;
PerpsResult oracle_load(Ctx *ctx, const SolAccountInfo *oracle, const OracleSource *source, PerpsOracle *out);
PerpsResult market_read_oracle(Ctx *ctx, PerpsMarket *m, const SolAccountInfo *oracle, int64_t now, uint64_t *price);
/* The book account, which must be the market's. */
PerpsResult market_book(Ctx *ctx, const SolAccountInfo *acc, const PerpsMarket *m, Book *out);
/* The user account, of the market `market` and the signer `owner`. */
PerpsResult user_load(Ctx *ctx, const SolAccountInfo *user, const SolAccountInfo *market, const SolAccountInfo *owner,
                      PerpsUser **out);
/* The signer `admin` is the market's admin. */
PerpsResult require_admin(Ctx *ctx, const SolAccountInfo *admin, const PerpsMarket *m);
/* The user's reference equal to `position` (slot and generation): its index
 * in *ref.  PositionNotFound if the user has no such reference (an empty
 * reference is never a position), PositionLiquidated if that position is no
 * longer live. */
PerpsResult user_position(const PerpsUser *u, const Book *b, const PerpsPositionRef *position, uint32_t *ref);
/* Drop the user's reference `ref` (the position count never wraps). */
/* Forget every reference of the user to a position that is no longer live (liquidated, collected, or its
 * slot reused); `dropped` says how many. */
PerpsResult user_drop_stale(PerpsUser *u, const Book *b, uint32_t *dropped);
PerpsResult user_forget(PerpsUser *u, uint32_t ref);
/* The position in `slot` as the risk engine sees it. */
void position_terms(const PerpsPositionSlot *p, PositionTerms *out);
/* The side's cumulative funding index (inlined: BPF calls cannot return 128 bits). */
static inline __attribute__((always_inline)) i128 market_funding_index(const PerpsMarket *m, uint8_t side) {
  return pk_load_i128(side == PERPS_SIDE_LONG ? &m->funding_index_long : &m->funding_index_short);
}
/* The market's vault. */
PerpsResult require_vault(Ctx *ctx, const SolAccountInfo *acc, const PerpsMarket *m);
/* A token account the program pays out to: never the vault itself. */
PerpsResult require_not_vault(Ctx *ctx, const SolAccountInfo *acc, const PerpsMarket *m);

/* ---- token.c ---- */
#define SPL_TOKEN_ACCOUNT_SIZE 165
#define SPL_MINT_SIZE 82
/* InitializeAccount3: make `account` a token account of `mint` owned by `owner`. */
PerpsResult token_initialize_account(Ctx *ctx, const SolAccountInfo *account, const SolAccountInfo *mint,
                                     const SolPubkey *owner);
/* Transfer `amount` tokens; `seeds` signs for a PDA authority (NULL: the
 * authority account signed the transaction). */
typedef struct {
  const SolAccountInfo *from;
  const SolAccountInfo *to;
  const SolAccountInfo *authority;
  uint64_t amount;
  const SolSignerSeeds *seeds;
} TokenTransfer;
PerpsResult token_transfer(Ctx *ctx, const TokenTransfer *t);
/* The account is an initialized mint of the token program; its decimals. */
PerpsResult token_mint_decimals(Ctx *ctx, const SolAccountInfo *mint, uint8_t *decimals);
/* The account is an initialised, unfrozen token account of `mint`. */
PerpsResult token_require_account(Ctx *ctx, const SolAccountInfo *account, const SolPubkey *mint);

/* ---- handlers ---- */
#define DECLARE_HANDLER(UPPER, lower, Args, Accounts) \
  PerpsResult ix_##lower(Ctx *ctx, const Accounts *a, const Args *args);
PERPS_INSTRUCTIONS(DECLARE_HANDLER)
#undef DECLARE_HANDLER

#endif
