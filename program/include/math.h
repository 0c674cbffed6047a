/* Fixed-point and 128-bit integer helpers.
 *
 * Upstream clang's BPF target expands 128-bit add, subtract, compare and
 * shift inline, but has no 128-bit multiply or divide (no __multi3/__udivti3)
 * and cannot return 128-bit values.  So 128-bit values are native __int128
 * locals and arguments, every multiply or divide involving them goes through
 * these helpers, and results come back through out-parameters.  A stray
 * `a * b` on 128-bit operands fails the BPF build, so it cannot slip in.
 * Accounts store 128-bit values as PkU128 (two little-endian words).
 *
 * Pure: no syscalls; compiled natively for the tests (tests/test_native.py). */
#ifndef PERPS_MATH_H
#define PERPS_MATH_H

#include "sol/types.h"

typedef unsigned __int128 u128;
typedef __int128 i128;

#define U128_MAX (~(u128)0)
#define I128_MAX ((i128)(U128_MAX >> 1))
#define I128_MIN (-I128_MAX - 1)

static inline u128 pk_load_u128(const PkU128 *p) { return ((u128)p->hi << 64) | p->lo; }
static inline i128 pk_load_i128(const PkU128 *p) { return (i128)pk_load_u128(p); }
static inline void pk_store_u128(PkU128 *p, u128 v) {
  p->lo = (uint64_t)v;
  p->hi = (uint64_t)(v >> 64);
}
static inline void pk_store_i128(PkU128 *p, i128 v) { pk_store_u128(p, (u128)v); }
static inline u128 pk_abs_i128(i128 v) { return v < 0 ? (u128)0 - (u128)v : (u128)v; }

/* Variable 128-bit shifts, from 64-bit ones: upstream BPF has no __ashlti3 /
 * __lshrti3, and these are always inlined (BPF calls cannot return 128 bits). */
static inline __attribute__((always_inline)) u128 pk_shr128(u128 v, uint32_t s) {
  uint64_t hi = (uint64_t)(v >> 64), lo = (uint64_t)v;
  if (s >= 128) return 0;
  if (s >= 64) return (u128)(hi >> (s - 64));
  if (s == 0) return v;
  return ((u128)(hi >> s) << 64) | ((lo >> s) | (hi << (64 - s)));
}
static inline __attribute__((always_inline)) u128 pk_shl128(u128 v, uint32_t s) {
  uint64_t hi = (uint64_t)(v >> 64), lo = (uint64_t)v;
  if (s >= 128) return 0;
  if (s >= 64) return (u128)(lo << (s - 64)) << 64;
  if (s == 0) return v;
  return ((u128)((hi << s) | (lo >> (64 - s))) << 64) | (lo << s);
}
/* Bit `i` of v counted from the most significant (0..127). */
static inline uint32_t pk_bit128(u128 v, uint32_t i) {
  return i < 64 ? (uint32_t)((uint64_t)(v >> 64) >> (63 - i)) & 1 : (uint32_t)((uint64_t)v >> (127 - i)) & 1;
}

/* Number of leading zero bits of x (64 for 0). */
uint32_t pk_clz64(uint64_t x);
/* Full 128-bit product a * b. */
void pk_mul_64(uint64_t a, uint64_t b, u128 *out);
/* a * b; false (out untouched) when the product needs more than 128 bits. */
bool pk_mul_128_64(u128 a, uint64_t b, u128 *out);
/* Signed a * b; false when the product does not fit in i128. */
bool pk_mul_i128_64(i128 a, uint64_t b, i128 *out);
/* n / d with a 128-bit quotient and the remainder; false when d == 0. */
bool pk_div_128_64(u128 n, uint64_t d, u128 *q, uint64_t *r);
/* floor(a * b / d) through a 192-bit intermediate; false when d == 0 or the
 * result does not fit in 128 bits. */
bool pk_muldiv_128(u128 a, uint64_t b, uint64_t d, u128 *out);
/* ceil(a * b / d), likewise. */
bool pk_muldiv_128_ceil(u128 a, uint64_t b, uint64_t d, u128 *out);
/* Checked signed add/subtract. */
static inline bool pk_add_i128(i128 a, i128 b, i128 *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool pk_sub_i128(i128 a, i128 b, i128 *out) { return !__builtin_sub_overflow(a, b, out); }
/* floor(n / d) and ceil(n / d) of a signed numerator (d > 0; false if d == 0). */
bool pk_floordiv_i128(i128 n, uint64_t d, i128 *out);
bool pk_ceildiv_i128(i128 n, uint64_t d, i128 *out);
/* floor(a * b / d) and ceil(a * b / d) of 64-bit values, in 128 bits; false
 * when d == 0 or the result does not fit in 64 bits. */
bool pk_mul_div_floor(uint64_t a, uint64_t b, uint64_t d, uint64_t *out);
bool pk_mul_div_ceil(uint64_t a, uint64_t b, uint64_t d, uint64_t *out);

/* Rent::minimum_balance(data_len) of the runtime, bit for bit:
 *   (((128 + data_len) * lamports_per_byte_year) as f64 * threshold) as u64
 * with the double `threshold` given by its IEEE-754 bits, evaluated in
 * integers (round-to-nearest-even, then truncation, saturating at
 * u64::MAX).  False when the threshold is negative, infinite or NaN, or the
 * integer product overflows. */
bool pk_rent_minimum_balance(uint64_t lamports_per_byte_year, uint64_t threshold_bits, uint64_t data_len,
                             uint64_t *out);

#endif
