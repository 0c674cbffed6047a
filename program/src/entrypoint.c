/* Entrypoint: deserialise the input, route by the 8-byte Anchor
 * discriminator, check the instruction's account count and flags from the
 * IDL, decode the arguments, name the accounts (the generated struct), run
 * the handler, and log a failure in Anchor's format. */
#include "perps.h"
#include "sol/log.h"

static PerpsResult begin(Ctx *ctx, const uint8_t *flags, uint64_t count, const char *names,
                         const uint16_t *name_offsets, uint64_t args_size) {
  ctx->account_names = names;
  ctx->account_name_offsets = name_offsets;
  if (ctx->params->data_len != 8 + args_size) return PERPS_ERR_INVALID_INSTRUCTION_DATA;
  return check_account_flags(ctx, flags, count);
}

static PerpsResult dispatch(Ctx *ctx) {
  const SolParameters *params = ctx->params;
  if (params->data_len < 8) return PERPS_ERR_UNKNOWN_INSTRUCTION;
  uint64_t disc;
  __builtin_memcpy(&disc, params->data, 8);
  switch (disc) {
#define ROUTE(UPPER, lower, Args, Accounts)                                                                 \
  case PERPS_IX_##UPPER: {                                                                                  \
    TRY(begin(ctx, PERPS_##UPPER##_ACCOUNT_FLAGS, PERPS_##UPPER##_NUM_ACCOUNTS, PERPS_##UPPER##_ACCOUNT_NAMES, \
              PERPS_##UPPER##_ACCOUNT_NAMES_OFFSETS, PERPS_##UPPER##_ARGS_SIZE));                             \
    Args args;                                                                                              \
    perps_decode_##lower##_args(params->data + 8, &args);                                                   \
    Accounts accounts;                                                                                      \
    perps_##lower##_accounts(ctx->accounts, &accounts);                                                     \
    return ix_##lower(ctx, &accounts, &args);                                                               \
  }
    PERPS_INSTRUCTIONS(ROUTE)
#undef ROUTE
    default:
      return PERPS_ERR_UNKNOWN_INSTRUCTION;
  }
}

/* "AnchorError [caused by account: X|occurred]. Error Code: Name. Error
 * Number: N. Error Message: text." -- the line Anchor's clients parse. */
static void log_error(const Ctx *ctx, PerpsResult err) {
  SolLogLine line = {.len = 0};
  if (ctx->failed_account >= 0 && ctx->account_names) {
    sol_line_str(&line, "AnchorError caused by account: ");
    sol_line_str(&line, ctx->account_names + ctx->account_name_offsets[ctx->failed_account]);
  } else {
    sol_line_str(&line, "AnchorError occurred");
  }
  sol_line_str(&line, ". Error Code: ");
  uint64_t i = err - PERPS_ERROR_FIRST;
  if (err >= PERPS_ERROR_FIRST && i < PERPS_ERROR_COUNT) {
    sol_line_str(&line, PERPS_ERROR_NAMES + PERPS_ERROR_NAMES_OFFSETS[i]);
    sol_line_str(&line, ". Error Number: ");
    sol_line_u64(&line, err);
    sol_line_str(&line, ". Error Message: ");
    sol_line_str(&line, PERPS_ERROR_MESSAGES + PERPS_ERROR_MESSAGES_OFFSETS[i]);
    sol_line_str(&line, ".");
  } else {
    sol_line_str(&line, "Unknown. Error Number: ");
    sol_line_u64(&line, err);
    sol_line_str(&line, ".");
  }
  sol_line_emit(&line);
}

uint64_t entrypoint(uint8_t *input) {
  SolAccountInfo accounts[PERPS_MAX_ACCOUNTS];
  SolParameters params = {.accounts = accounts};
  Ctx ctx = {.params = &params, .accounts = accounts, .failed_account = -1};
  PerpsResult err;
  switch (sol_deserialize(input, &params, PERPS_MAX_ACCOUNTS)) {
    case SOL_DESERIALIZE_OK:
      err = dispatch(&ctx);
      break;
    case SOL_DESERIALIZE_TOO_MANY_ACCOUNTS:
      err = PERPS_ERR_TOO_MANY_ACCOUNTS;
      break;
    default:
      err = PERPS_ERR_INVALID_ACCOUNT_DATA;
      break;
  }
  if (err) log_error(&ctx, err);
  return err;
}
