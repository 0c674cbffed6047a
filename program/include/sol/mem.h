/* Memory functions.  clang lowers struct copies and zeroing to calls to
 * memcpy/memset, so the program defines them (runtime/mem.c). */
#ifndef SOL_MEM_H
#define SOL_MEM_H

#include "sol/types.h"

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

static inline bool sol_pubkey_eq(const SolPubkey *a, const SolPubkey *b) {
  const uint64_t *x = (const uint64_t *)a->x;
  const uint64_t *y = (const uint64_t *)b->x;
  return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
}

/* True when all n bytes at p are zero (p 8-byte aligned for the fast path). */
static inline bool sol_is_zero(const uint8_t *p, uint64_t n) {
  uint64_t acc = 0;
  uint64_t i = 0;
  if (((uintptr_t)p & 7) == 0) {
    for (; i + 8 <= n; i += 8) acc |= *(const uint64_t *)(p + i);
  }
  for (; i < n; i++) acc |= p[i];
  return acc == 0;
}

#endif
