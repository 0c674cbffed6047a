/* initialize_market: the market PDA, its vault (an SPL token account owned by
 * the market authority PDA) and the header of the client-allocated book. */
#include "perps.h"

PerpsResult ix_initialize_market(Ctx *ctx, const PerpsInitializeMarketArgs *args) {
  enum {
    ADMIN = PERPS_INITIALIZE_MARKET_ADMIN,
    MARKET = PERPS_INITIALIZE_MARKET_MARKET,
    AUTHORITY = PERPS_INITIALIZE_MARKET_MARKET_AUTHORITY,
    VAULT = PERPS_INITIALIZE_MARKET_VAULT,
    MINT = PERPS_INITIALIZE_MARKET_QUOTE_MINT,
    ORACLE = PERPS_INITIALIZE_MARKET_ORACLE,
    BOOK = PERPS_INITIALIZE_MARKET_BOOK,
  };
  SolAccountInfo *acc = ctx->accounts;
  const SolPubkey *program_id = ctx->params->program_id;
  TRY(require_address(ctx, PERPS_INITIALIZE_MARKET_TOKEN_PROGRAM, &PERPS_ADDRESS_TOKEN_PROGRAM));
  TRY(require_address(ctx, PERPS_INITIALIZE_MARKET_SYSTEM_PROGRAM, &PERPS_ADDRESS_SYSTEM_PROGRAM));
  if (!market_params_valid(&args->params)) return PERPS_ERR_INVALID_MARKET_PARAMS;

  /* Addresses: market = PDA("market", admin, id); authority and vault are
   * PDAs of the market. */
  uint32_t id = args->market_id;
  uint8_t market_bump, authority_bump, vault_bump;
  SolBytes market_seeds[4] = {
      {(const uint8_t *)"market", 6}, {acc[ADMIN].key->x, 32}, {(const uint8_t *)&id, 4}, {&market_bump, 1}};
  TRY(find_pda(ctx, MARKET, market_seeds, 3, &market_bump));
  TRY(require_uninitialized(ctx, MARKET));
  SolBytes authority_seeds[2] = {{(const uint8_t *)"authority", 9}, {acc[MARKET].key->x, 32}};
  TRY(find_pda(ctx, AUTHORITY, authority_seeds, 2, &authority_bump));
  SolBytes vault_seeds[3] = {{(const uint8_t *)"vault", 5}, {acc[MARKET].key->x, 32}, {&vault_bump, 1}};
  TRY(find_pda(ctx, VAULT, vault_seeds, 2, &vault_bump));
  TRY(require_uninitialized(ctx, VAULT));

  /* Quote mint, oracle, book. */
  uint8_t decimals;
  TRY(token_mint_decimals(ctx, MINT, &decimals));
  if (decimals != PERPS_QUOTE_DECIMALS) return fail_account(ctx, MINT, PERPS_ERR_INVALID_MINT);
  uint8_t *oracle_data;
  TRY(load_account(ctx, ORACLE, PERPS_DISC_ORACLE, PERPS_SIZE_ORACLE, &oracle_data));
  TRY(require_owner(ctx, BOOK, program_id));
  uint64_t capacity = args->book_capacity;
  if (capacity == 0 || capacity > PERPS_MAX_BOOK_CAPACITY || acc[BOOK].data_len != book_size(capacity))
    return fail_account(ctx, BOOK, PERPS_ERR_INVALID_BOOK_SIZE);
  /* Only this program writes to accounts it owns, and it writes the
   * discriminator first: a zero header means a fresh allocation (the system
   * program zero-fills).  Scanning all of a 10 MiB book would exceed the
   * compute budget, so the header is what is checked. */
  if (!sol_is_zero(acc[BOOK].data, PERPS_BOOK_HEADER_SIZE)) return fail_account(ctx, BOOK, PERPS_ERR_BOOK_NOT_ZEROED);

  /* Create the market and the vault. */
  SolSignerSeeds market_signer = {market_seeds, 4};
  CreatePda create_market = {ADMIN, MARKET, PERPS_SIZE_MARKET, program_id, &market_signer};
  TRY(system_create_pda(ctx, &create_market));
  SolSignerSeeds vault_signer = {vault_seeds, 3};
  CreatePda create_vault = {ADMIN, VAULT, SPL_TOKEN_ACCOUNT_SIZE, &PERPS_ADDRESS_TOKEN_PROGRAM, &vault_signer};
  TRY(system_create_pda(ctx, &create_vault));
  TRY(token_initialize_account(ctx, VAULT, MINT, acc[AUTHORITY].key));

  SolClock clock;
  clock_now(&clock);
  PerpsMarket *market = (PerpsMarket *)init_account(ctx, MARKET, PERPS_DISC_MARKET);
  market->admin = *acc[ADMIN].key;
  market->quote_mint = *acc[MINT].key;
  market->vault = *acc[VAULT].key;
  market->oracle = *acc[ORACLE].key;
  market->book = *acc[BOOK].key;
  market->params = args->params;
  market->created_at = clock.unix_timestamp;
  market->funding_updated_at = clock.unix_timestamp;
  market->market_id = id;
  market->book_capacity = (uint32_t)capacity;
  market->bump = market_bump;
  market->authority_bump = authority_bump;
  market->vault_bump = vault_bump;

  Book book;
  book_view(init_account(ctx, BOOK, PERPS_DISC_BOOK), (uint32_t)capacity, &book);
  book_init(&book, acc[MARKET].key, (uint32_t)capacity);
  return 0;
}
