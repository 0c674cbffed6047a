/* 128-bit integer helpers: see math.h. */
#include "math.h"

#define LO32(x) ((x) & 0xffffffffULL)

uint32_t pk_clz64(uint64_t x) {
  if (x == 0) return 64;
  uint32_t n = 0;
  if ((x >> 32) == 0) { n += 32; x <<= 32; }
  if ((x >> 48) == 0) { n += 16; x <<= 16; }
  if ((x >> 56) == 0) { n += 8; x <<= 8; }
  if ((x >> 60) == 0) { n += 4; x <<= 4; }
  if ((x >> 62) == 0) { n += 2; x <<= 2; }
  if ((x >> 63) == 0) { n += 1; }
  return n;
}

void pk_mul_64(uint64_t a, uint64_t b, u128 *out) {
  uint64_t a0 = LO32(a), a1 = a >> 32, b0 = LO32(b), b1 = b >> 32;
  uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  /* middle column: at most 3 * (2^32 - 1), no overflow */
  uint64_t mid = (p00 >> 32) + LO32(p01) + LO32(p10);
  uint64_t lo = (mid << 32) | LO32(p00);
  uint64_t hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
  *out = ((u128)hi << 64) | lo;
}

/* a * b as three 64-bit words, least significant first. */
static void mul_192(u128 a, uint64_t b, uint64_t w[3]) {
  u128 lo, hi;
  pk_mul_64((uint64_t)a, b, &lo);
  pk_mul_64((uint64_t)(a >> 64), b, &hi);
  hi += lo >> 64; /* cannot overflow: (2^64-1)^2 + 2^64-1 < 2^128 */
  w[0] = (uint64_t)lo;
  w[1] = (uint64_t)hi;
  w[2] = (uint64_t)(hi >> 64);
}

bool pk_mul_128_64(u128 a, uint64_t b, u128 *out) {
  uint64_t w[3];
  mul_192(a, b, w);
  if (w[2]) return false;
  *out = ((u128)w[1] << 64) | w[0];
  return true;
}

bool pk_mul_i128_64(i128 a, uint64_t b, i128 *out) {
  u128 mag;
  if (!pk_mul_128_64(pk_abs_i128(a), b, &mag)) return false;
  if (a < 0) {
    if (mag > (u128)I128_MAX + 1) return false;
    *out = (i128)((u128)0 - mag);
  } else {
    if (mag > (u128)I128_MAX) return false;
    *out = (i128)mag;
  }
  return true;
}

/* (hi:lo) / d for hi < d: 64-bit quotient and remainder, by normalising the
 * divisor and producing two 32-bit quotient digits, each estimated with one
 * native 64-bit division and corrected at most twice (Knuth, TAOCP vol. 2,
 * 4.3.1, algorithm D). */
static void div_small(uint64_t hi, uint64_t lo, uint64_t d, uint64_t *q, uint64_t *r) {
  if (hi == 0) {
    *q = lo / d;
    *r = lo % d;
    return;
  }
  const uint64_t base = 1ULL << 32;
  uint32_t s = pk_clz64(d);
  d <<= s;
  uint64_t dn1 = d >> 32, dn0 = LO32(d);
  uint64_t un32 = s ? (hi << s) | (lo >> (64 - s)) : hi;
  uint64_t un10 = lo << s;
  uint64_t un1 = un10 >> 32, un0 = LO32(un10);

  uint64_t q1 = un32 / dn1;
  uint64_t rhat = un32 - q1 * dn1;
  while (q1 >= base || q1 * dn0 > (rhat << 32) + un1) {
    q1--;
    rhat += dn1;
    if (rhat >= base) break;
  }
  uint64_t un21 = (un32 << 32) + un1 - q1 * d;

  uint64_t q0 = un21 / dn1;
  rhat = un21 - q0 * dn1;
  while (q0 >= base || q0 * dn0 > (rhat << 32) + un0) {
    q0--;
    rhat += dn1;
    if (rhat >= base) break;
  }
  *r = ((un21 << 32) + un0 - q0 * d) >> s;
  *q = (q1 << 32) | q0;
}

bool pk_div_128_64(u128 n, uint64_t d, u128 *q, uint64_t *r) {
  if (d == 0) return false;
  uint64_t hi = (uint64_t)(n >> 64), lo = (uint64_t)n;
  uint64_t q_hi = hi / d, rem = hi % d, q_lo;
  div_small(rem, lo, d, &q_lo, &rem);
  *q = ((u128)q_hi << 64) | q_lo;
  *r = rem;
  return true;
}

/* floor(a * b / d) and the remainder; false when d == 0 or it overflows. */
static bool muldiv_rem(const u128 *a, uint64_t b, uint64_t d, u128 *out, uint64_t *rem) {
  if (d == 0) return false;
  uint64_t w[3];
  mul_192(*a, b, w);
  if (w[2] >= d) return false; /* the quotient would need a third word */
  uint64_t q1, q0;
  div_small(w[2], w[1], d, &q1, rem);
  div_small(*rem, w[0], d, &q0, rem);
  *out = ((u128)q1 << 64) | q0;
  return true;
}

bool pk_muldiv_128(u128 a, uint64_t b, uint64_t d, u128 *out) {
  uint64_t rem;
  return muldiv_rem(&a, b, d, out, &rem);
}

bool pk_muldiv_128_ceil(u128 a, uint64_t b, uint64_t d, u128 *out) {
  uint64_t rem;
  u128 q;
  if (!muldiv_rem(&a, b, d, &q, &rem)) return false;
  if (rem) {
    if (q == U128_MAX) return false;
    q++;
  }
  *out = q;
  return true;
}

bool pk_floordiv_i128(i128 n, uint64_t d, i128 *out) {
  u128 q;
  uint64_t r;
  if (!pk_div_128_64(pk_abs_i128(n), d, &q, &r)) return false;
  /* q <= 2^127; negate in unsigned arithmetic so -2^127 needs no signed overflow */
  if (n >= 0) {
    *out = (i128)q;
  } else {
    *out = (i128)((u128)0 - q - (r != 0));
  }
  return true;
}

bool pk_ceildiv_i128(i128 n, uint64_t d, i128 *out) {
  u128 q;
  uint64_t r;
  if (!pk_div_128_64(pk_abs_i128(n), d, &q, &r)) return false;
  if (n >= 0) {
    *out = (i128)(q + (r != 0));
  } else {
    *out = (i128)((u128)0 - q);
  }
  return true;
}

bool pk_mul_div_floor(uint64_t a, uint64_t b, uint64_t d, uint64_t *out) {
  u128 p, q;
  uint64_t r;
  pk_mul_64(a, b, &p);
  if (!pk_div_128_64(p, d, &q, &r) || (q >> 64)) return false;
  *out = (uint64_t)q;
  return true;
}

bool pk_mul_div_ceil(uint64_t a, uint64_t b, uint64_t d, uint64_t *out) {
  u128 p, q;
  uint64_t r;
  pk_mul_64(a, b, &p);
  if (!pk_div_128_64(p, d, &q, &r)) return false;
  q += r != 0;
  if (q >> 64) return false;
  *out = (uint64_t)q;
  return true;
}

static uint32_t bit_length(u128 v) {
  uint64_t hi = (uint64_t)(v >> 64);
  return hi ? 128 - pk_clz64(hi) : 64 - pk_clz64((uint64_t)v);
}

/* Round *v to 53 significant bits, nearest with ties to even, as a double
 * would hold it; *exp2 grows by the bits dropped. */
static void round_to_double(u128 *value, int32_t *exp2) {
  u128 v = *value;
  uint32_t len = bit_length(v);
  if (len <= 53) return;
  uint32_t sh = len - 53;
  u128 kept = pk_shr128(v, sh);
  u128 rest = v - pk_shl128(kept, sh);
  u128 half = pk_shl128(1, sh - 1);
  if (rest > half || (rest == half && (kept & 1))) kept += 1;
  *exp2 += (int32_t)sh;
  *value = kept;
}

bool pk_rent_minimum_balance(uint64_t lamports_per_byte_year, uint64_t threshold_bits, uint64_t data_len,
                             uint64_t *out) {
  uint64_t bytes = 128 + data_len;
  if (bytes < data_len) return false;
  u128 p;
  pk_mul_64(bytes, lamports_per_byte_year, &p);
  if (p >> 64) return false; /* the runtime multiplies in u64 */

  uint64_t biased = (threshold_bits >> 52) & 0x7ff;
  uint64_t frac = threshold_bits & ((1ULL << 52) - 1);
  if (threshold_bits >> 63 || biased == 0x7ff) return false;
  uint64_t m = biased ? frac | (1ULL << 52) : frac;
  int32_t exp2 = biased ? (int32_t)biased - 1075 : -1074;

  /* u64 -> f64, then the product of two doubles, each rounded once. */
  int32_t pexp = 0;
  round_to_double(&p, &pexp);
  u128 x;
  pk_mul_64((uint64_t)p, m, &x);
  exp2 += pexp;
  round_to_double(&x, &exp2);

  /* f64 -> u64: truncate toward zero, saturate. */
  if (exp2 >= 0) {
    if ((uint32_t)exp2 + bit_length(x) > 64) {
      *out = x ? ~0ULL : 0;
      return true;
    }
    x = pk_shl128(x, (uint32_t)exp2);
  } else {
    x = pk_shr128(x, (uint32_t)-exp2);
  }
  *out = (uint64_t)x;
  return true;
}
