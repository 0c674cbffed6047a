/* Input deserialisation for the aligned BPF loader (v2/v3) ABI.
 *
 * Layout of the input region, all integers little-endian:
 *   u64 number of accounts
 *   per account:
 *     u8 duplicate marker: 0xff for a new account, else the index of the
 *        account this one duplicates, followed by 7 bytes of padding
 *     for a new account:
 *       u8 is_signer, u8 is_writable, u8 executable, 4 bytes (original data
 *       length, unused here), 32-byte key, 32-byte owner, u64 lamports,
 *       u64 data length, the data, MAX_PERMITTED_DATA_INCREASE spare bytes,
 *       padding to 8-byte alignment, u64 rent epoch
 *   u64 instruction data length, the instruction data, 32-byte program id
 */
#include "sol/entrypoint.h"

static inline uint64_t read_u64(const uint8_t *p) { return *(const uint64_t *)p; }

SolDeserializeResult sol_deserialize(uint8_t *input, SolParameters *params, uint64_t capacity) {
  uint8_t *p = input;
  uint64_t n = read_u64(p);
  p += 8;
  if (n > capacity) return SOL_DESERIALIZE_TOO_MANY_ACCOUNTS;
  for (uint64_t i = 0; i < n; i++) {
    SolAccountInfo *acc = &params->accounts[i];
    uint8_t dup = *p;
    if (dup != SOL_NON_DUP_MARKER) {
      if (dup >= i) return SOL_DESERIALIZE_BAD_DUPLICATE;
      *acc = params->accounts[dup];
      p += 8;
      continue;
    }
    acc->is_signer = p[1] != 0;
    acc->is_writable = p[2] != 0;
    acc->executable = p[3] != 0;
    p += 8;
    acc->key = (SolPubkey *)p;
    p += SOL_PUBKEY_SIZE;
    acc->owner = (SolPubkey *)p;
    p += SOL_PUBKEY_SIZE;
    acc->lamports = (uint64_t *)p;
    p += 8;
    acc->data_len = read_u64(p);
    p += 8;
    acc->data = p;
    p += acc->data_len + SOL_MAX_PERMITTED_DATA_INCREASE;
    p = (uint8_t *)(((uintptr_t)p + 7) & ~(uintptr_t)7);
    acc->rent_epoch = read_u64(p);
    p += 8;
  }
  params->num_accounts = n;
  params->data_len = read_u64(p);
  p += 8;
  params->data = p;
  p += params->data_len;
  params->program_id = (const SolPubkey *)p;
  return SOL_DESERIALIZE_OK;
}
