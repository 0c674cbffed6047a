/* Cross-program invocation structures read by sol_invoke_signed_c. */
#ifndef SOL_CPI_H
#define SOL_CPI_H

#include "sol/entrypoint.h"

typedef struct {
  SolPubkey *pubkey;
  bool is_writable;
  bool is_signer;
} SolAccountMeta;

typedef struct {
  const SolPubkey *program_id;
  const SolAccountMeta *accounts;
  uint64_t account_len;
  const uint8_t *data;
  uint64_t data_len;
} SolInstruction;

/* One signer's seeds: an array of byte slices (SolBytes). */
typedef struct {
  const SolBytes *addr;
  uint64_t len;
} SolSignerSeeds;

#ifdef __bpf__
uint64_t sol_invoke_signed_c(const SolInstruction *instruction, const SolAccountInfo *account_infos,
                             int account_infos_len, const SolSignerSeeds *signers_seeds, int signers_seeds_len);
#endif

#endif
