/* Basic types of the Solana C ABI, written for this project from the
 * documented runtime ABI (agave: program-runtime serialization and the
 * syscalls' C structs).  Usable both for the SBF target and natively. */
#ifndef SOL_TYPES_H
#define SOL_TYPES_H

/* The compiler's freestanding headers (clang's resource headers on BPF,
 * the C library's on the host for native tests). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

_Static_assert(sizeof(uint64_t) == 8, "uint64_t");
_Static_assert(sizeof(void *) == 8, "64-bit pointers");

#define SOL_PUBKEY_SIZE 32

/* A 32-byte public key.  8-byte aligned: every key the program sees (input
 * region, account structs, constants) is, so keys compare as four words. */
typedef struct {
  uint8_t x[SOL_PUBKEY_SIZE];
} __attribute__((aligned(8))) SolPubkey;

/* A 128-bit integer as two little-endian 64-bit words (low word first).
 * Same layout on the host and on BPF; math.h has the operations. */
typedef struct {
  uint64_t lo;
  uint64_t hi;
} PkU128;

/* A byte slice, as passed to sol_log_data and the PDA syscalls. */
typedef struct {
  const uint8_t *addr;
  uint64_t len;
} SolBytes;

#endif
