/* Fixed-point and 128-bit integer helpers.  Upstream clang's BPF target has
 * no 128-bit multiply/divide libcalls and cannot return 128-bit values, so
 * these work on PkU128 words through out-parameters.  Pure: no syscalls;
 * compiled natively for the tests (tests/test_native.py). */
#ifndef PERPS_MATH_H
#define PERPS_MATH_H

#include "sol/types.h"

static inline void pk_u128_from_u64(PkU128 *out, uint64_t v) {
  out->lo = v;
  out->hi = 0;
}

/* Number of leading zero bits of x (64 for 0). */
uint32_t pk_clz64(uint64_t x);
/* Full 128-bit product a * b. */
void pk_mul_u64(uint64_t a, uint64_t b, PkU128 *out);
/* acc += x; false (acc unchanged) on overflow. */
bool pk_u128_add(PkU128 *acc, const PkU128 *x);
/* acc -= x; false (acc unchanged) when x > acc. */
bool pk_u128_sub(PkU128 *acc, const PkU128 *x);
/* -1, 0 or 1 as a <, == or > b. */
int pk_u128_cmp(const PkU128 *a, const PkU128 *b);
/* out = v << s or v >> s, for any s (bits shifted out are lost). */
void pk_u128_shl(const PkU128 *v, uint32_t s, PkU128 *out);
void pk_u128_shr(const PkU128 *v, uint32_t s, PkU128 *out);
/* q = n / d, r = n % d; false when d == 0 or the quotient needs more than
 * 64 bits (n->hi >= d). */
bool pk_div_u128_u64(const PkU128 *n, uint64_t d, uint64_t *q, uint64_t *r);
/* floor(a * b / d) and ceil(a * b / d), computed in 128 bits; false when
 * d == 0 or the result does not fit in 64 bits. */
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
