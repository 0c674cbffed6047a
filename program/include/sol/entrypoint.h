/* The program's view of its input: the accounts, instruction data and
 * program id that the runtime serialises into the input region. */
#ifndef SOL_ENTRYPOINT_H
#define SOL_ENTRYPOINT_H

#include "sol/types.h"

/* Bytes the runtime reserves after each account's data so that the program
 * may grow it (MAX_PERMITTED_DATA_INCREASE). */
#define SOL_MAX_PERMITTED_DATA_INCREASE (10 * 1024)
/* Marker of an account that is not a duplicate of an earlier one. */
#define SOL_NON_DUP_MARKER 0xff

/* One account as the program sees it.  The layout is also the one
 * sol_invoke_signed_c reads (agave syscalls/cpi.rs, SolAccountInfo). */
typedef struct {
  SolPubkey *key;
  uint64_t *lamports;
  uint64_t data_len;
  uint8_t *data;
  SolPubkey *owner;
  uint64_t rent_epoch;
  bool is_signer;
  bool is_writable;
  bool executable;
} SolAccountInfo;

/* Everything the entrypoint receives, deserialised. */
typedef struct {
  SolAccountInfo *accounts; /* filled by sol_deserialize, capacity given by the caller */
  uint64_t num_accounts;
  const uint8_t *data;
  uint64_t data_len;
  const SolPubkey *program_id;
} SolParameters;

/* Outcome of sol_deserialize. */
typedef enum {
  SOL_DESERIALIZE_OK = 0,
  SOL_DESERIALIZE_TOO_MANY_ACCOUNTS = 1,
  SOL_DESERIALIZE_BAD_DUPLICATE = 2,
} SolDeserializeResult;

/* Parse the aligned input region of the BPF loaders (v2/v3) into `params`,
 * which must point at `capacity` SolAccountInfo slots.  Pure: no syscalls. */
SolDeserializeResult sol_deserialize(uint8_t *input, SolParameters *params, uint64_t capacity);

#endif
