/* initialize_market: the market PDA, its vault (an SPL token account owned by
 * the market authority PDA) and the header of the client-allocated book. */
#include "perps.h"

PerpsResult ix_initialize_market(Ctx *ctx, const PerpsInitializeMarketAccounts *a,
                                 const PerpsInitializeMarketArgs *args) {
  const SolPubkey *program_id = ctx->params->program_id;
  TRY(require_address(ctx, a->token_program, &PERPS_ADDRESS_TOKEN_PROGRAM));
  TRY(require_address(ctx, a->system_program, &PERPS_ADDRESS_SYSTEM_PROGRAM));
  TRY(risk_check_params(&args->params, 0, 0));

  /* Addresses: market = PDA("market", admin, id); authority and vault are PDAs of the market. */
  uint8_t market_bump, authority_bump, vault_bump;
  SolBytes market_seeds[PERPS_INITIALIZE_MARKET_MARKET_SEEDS + 1];
  SolBytes authority_seeds[PERPS_INITIALIZE_MARKET_MARKET_AUTHORITY_SEEDS + 1];
  SolBytes vault_seeds[PERPS_INITIALIZE_MARKET_VAULT_SEEDS + 1];
  perps_initialize_market_market_seeds(a, args, market_seeds, &market_bump);
  perps_initialize_market_market_authority_seeds(a, args, authority_seeds, &authority_bump);
  perps_initialize_market_vault_seeds(a, args, vault_seeds, &vault_bump);
  TRY(find_pda(ctx, a->market, market_seeds, PERPS_INITIALIZE_MARKET_MARKET_SEEDS, &market_bump));
  TRY(require_uninitialized(ctx, a->market));
  TRY(find_pda(ctx, a->market_authority, authority_seeds, PERPS_INITIALIZE_MARKET_MARKET_AUTHORITY_SEEDS,
               &authority_bump));
  TRY(find_pda(ctx, a->vault, vault_seeds, PERPS_INITIALIZE_MARKET_VAULT_SEEDS, &vault_bump));
  TRY(require_uninitialized(ctx, a->vault));

  /* Quote mint, oracle, book. */
  uint8_t decimals;
  TRY(token_mint_decimals(ctx, a->quote_mint, &decimals));
  if (decimals != PERPS_QUOTE_DECIMALS) return fail_account(ctx, a->quote_mint, PERPS_ERR_INVALID_MINT);
  /* The oracle must read as its kind says (not yet fresh: a market may be created before trading starts). */
  if (args->oracle_kind == PERPS_ORACLE_KIND_TEST &&
      !(sol_is_zero(args->pyth_receiver.x, 32) && sol_is_zero(args->pyth_feed_id, 32)))
    return fail_account(ctx, a->oracle, PERPS_ERR_INVALID_ORACLE_KIND);
  if (args->oracle_kind == PERPS_ORACLE_KIND_PYTH && sol_is_zero(args->pyth_receiver.x, 32))
    return fail_account(ctx, a->oracle, PERPS_ERR_INVALID_ORACLE_KIND);
  PerpsOracle oracle;
  OracleSource source = {args->oracle_kind, &args->pyth_receiver, args->pyth_feed_id};
  TRY(oracle_load(ctx, a->oracle, &source, &oracle));
  TRY(require_owner(ctx, a->book, program_id));
  uint64_t capacity = args->book_capacity;
  if (capacity == 0 || capacity > PERPS_MAX_BOOK_CAPACITY || a->book->data_len != book_size(capacity))
    return fail_account(ctx, a->book, PERPS_ERR_INVALID_BOOK_SIZE);
  /* Only this program writes to accounts it owns, and it writes the
   * discriminator first: a zero header means a fresh allocation (the system
   * program zero-fills).  Scanning all of a 10 MiB book would exceed the
   * compute budget, so the header is what is checked. */
  if (!sol_is_zero(a->book->data, PERPS_BOOK_HEADER_SIZE)) return fail_account(ctx, a->book, PERPS_ERR_BOOK_NOT_ZEROED);

  /* Create the market and the vault. */
  SolSignerSeeds market_signer = {market_seeds, PERPS_INITIALIZE_MARKET_MARKET_SEEDS + 1};
  CreatePda create_market = {a->admin, a->market, PERPS_SIZE_MARKET, program_id, &market_signer};
  TRY(system_create_pda(ctx, &create_market));
  SolSignerSeeds vault_signer = {vault_seeds, PERPS_INITIALIZE_MARKET_VAULT_SEEDS + 1};
  CreatePda create_vault = {a->admin, a->vault, SPL_TOKEN_ACCOUNT_SIZE, &PERPS_ADDRESS_TOKEN_PROGRAM, &vault_signer};
  TRY(system_create_pda(ctx, &create_vault));
  TRY(token_initialize_account(ctx, a->vault, a->quote_mint, a->market_authority->key));

  SolClock clock;
  clock_now(&clock);
  PerpsMarket *market = (PerpsMarket *)init_account(a->market, PERPS_DISC_MARKET);
  market->admin = *a->admin->key;
  market->quote_mint = *a->quote_mint->key;
  market->vault = *a->vault->key;
  market->oracle = *a->oracle->key;
  market->oracle_kind = args->oracle_kind;
  market->oracle_publish_time = oracle.publish_time;
  market->pyth_receiver = args->pyth_receiver;
  __builtin_memcpy(market->pyth_feed_id, args->pyth_feed_id, 32);
  market->book = *a->book->key;
  market->params = args->params;
  market->created_at = clock.unix_timestamp;
  market->funding_updated_at = clock.unix_timestamp;
  market->market_id = args->market_id;
  market->book_capacity = (uint32_t)capacity;
  market->bump = market_bump;
  market->authority_bump = authority_bump;
  market->vault_bump = vault_bump;

  Book book;
  book_view(init_account(a->book, PERPS_DISC_BOOK), (uint32_t)capacity, &book);
  book_init(&book, a->market->key, (uint32_t)capacity);
  return 0;
}
