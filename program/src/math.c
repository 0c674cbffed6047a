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

void pk_mul_u64(uint64_t a, uint64_t b, PkU128 *out) {
  uint64_t a0 = LO32(a), a1 = a >> 32, b0 = LO32(b), b1 = b >> 32;
  uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  /* middle column: at most 3 * (2^32 - 1), no overflow */
  uint64_t mid = (p00 >> 32) + LO32(p01) + LO32(p10);
  out->lo = (mid << 32) | LO32(p00);
  out->hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

bool pk_u128_add(PkU128 *acc, const PkU128 *x) {
  uint64_t lo = acc->lo + x->lo;
  uint64_t carry = lo < x->lo;
  uint64_t hi = acc->hi + x->hi;
  if (hi < x->hi) return false;
  if (hi + carry < hi) return false;
  acc->lo = lo;
  acc->hi = hi + carry;
  return true;
}

bool pk_u128_sub(PkU128 *acc, const PkU128 *x) {
  if (pk_u128_cmp(acc, x) < 0) return false;
  uint64_t borrow = acc->lo < x->lo;
  acc->lo -= x->lo;
  acc->hi = acc->hi - x->hi - borrow;
  return true;
}

int pk_u128_cmp(const PkU128 *a, const PkU128 *b) {
  if (a->hi != b->hi) return a->hi < b->hi ? -1 : 1;
  if (a->lo != b->lo) return a->lo < b->lo ? -1 : 1;
  return 0;
}

void pk_u128_shl(const PkU128 *v, uint32_t s, PkU128 *out) {
  if (s >= 128) {
    out->lo = out->hi = 0;
  } else if (s >= 64) {
    out->hi = v->lo << (s - 64);
    out->lo = 0;
  } else if (s == 0) {
    *out = *v;
  } else {
    out->hi = (v->hi << s) | (v->lo >> (64 - s));
    out->lo = v->lo << s;
  }
}

void pk_u128_shr(const PkU128 *v, uint32_t s, PkU128 *out) {
  if (s >= 128) {
    out->lo = out->hi = 0;
  } else if (s >= 64) {
    out->lo = v->hi >> (s - 64);
    out->hi = 0;
  } else if (s == 0) {
    *out = *v;
  } else {
    out->lo = (v->lo >> s) | (v->hi << (64 - s));
    out->hi = v->hi >> s;
  }
}

/* Long division of a 128-bit dividend by a 64-bit divisor with a 64-bit
 * quotient, by normalising the divisor and producing the quotient in two
 * 32-bit digits, each estimated with one native 64-bit division and
 * corrected at most twice (Knuth, TAOCP vol. 2, 4.3.1, algorithm D). */
bool pk_div_u128_u64(const PkU128 *n, uint64_t d, uint64_t *q, uint64_t *r) {
  if (d == 0 || n->hi >= d) return false;
  if (n->hi == 0) {
    *q = n->lo / d;
    *r = n->lo % d;
    return true;
  }
  const uint64_t base = 1ULL << 32;
  uint32_t s = pk_clz64(d);
  d <<= s;
  uint64_t dn1 = d >> 32, dn0 = LO32(d);
  uint64_t un32 = s ? (n->hi << s) | (n->lo >> (64 - s)) : n->hi;
  uint64_t un10 = n->lo << s;
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
  return true;
}

bool pk_mul_div_floor(uint64_t a, uint64_t b, uint64_t d, uint64_t *out) {
  PkU128 p;
  uint64_t rem;
  pk_mul_u64(a, b, &p);
  return pk_div_u128_u64(&p, d, out, &rem);
}

bool pk_mul_div_ceil(uint64_t a, uint64_t b, uint64_t d, uint64_t *out) {
  PkU128 p;
  uint64_t q, rem;
  pk_mul_u64(a, b, &p);
  if (!pk_div_u128_u64(&p, d, &q, &rem)) return false;
  if (rem) {
    if (q == ~0ULL) return false;
    q++;
  }
  *out = q;
  return true;
}

static uint32_t bit_length(const PkU128 *v) {
  return v->hi ? 128 - pk_clz64(v->hi) : 64 - pk_clz64(v->lo);
}

/* Round v to 53 significant bits, nearest with ties to even, as a double
 * would hold it; v becomes the significand and *exp2 grows by the bits
 * dropped. */
static void round_to_double(PkU128 *v, int32_t *exp2) {
  uint32_t len = bit_length(v);
  if (len <= 53) return;
  uint32_t sh = len - 53;
  PkU128 kept, back, rest;
  pk_u128_shr(v, sh, &kept);
  pk_u128_shl(&kept, sh, &back);
  rest = *v;
  pk_u128_sub(&rest, &back); /* the dropped bits */
  PkU128 half = {0, 0}, one = {1, 0};
  pk_u128_shl(&one, sh - 1, &half);
  int c = pk_u128_cmp(&rest, &half);
  if (c > 0 || (c == 0 && (kept.lo & 1))) pk_u128_add(&kept, &one);
  *v = kept;
  *exp2 += (int32_t)sh;
}

bool pk_rent_minimum_balance(uint64_t lamports_per_byte_year, uint64_t threshold_bits, uint64_t data_len,
                             uint64_t *out) {
  uint64_t bytes = 128 + data_len;
  if (bytes < data_len) return false;
  PkU128 p;
  pk_mul_u64(bytes, lamports_per_byte_year, &p);
  if (p.hi) return false; /* the runtime multiplies in u64 */

  uint64_t biased = (threshold_bits >> 52) & 0x7ff;
  uint64_t frac = threshold_bits & ((1ULL << 52) - 1);
  if (threshold_bits >> 63 || biased == 0x7ff) return false;
  uint64_t m = biased ? frac | (1ULL << 52) : frac;
  int32_t exp2 = biased ? (int32_t)biased - 1075 : -1074;

  /* u64 -> f64, then the product of two doubles, each rounded once. */
  int32_t pexp = 0;
  round_to_double(&p, &pexp);
  PkU128 x;
  pk_mul_u64(p.lo, m, &x);
  exp2 += pexp;
  round_to_double(&x, &exp2);

  /* f64 -> u64: truncate toward zero, saturate. */
  if (exp2 >= 0) {
    if ((uint32_t)exp2 + bit_length(&x) > 64) {
      *out = x.lo || x.hi ? ~0ULL : 0;
      return true;
    }
    pk_u128_shl(&x, (uint32_t)exp2, &x);
  } else {
    pk_u128_shr(&x, (uint32_t)(-exp2), &x);
  }
  *out = x.lo;
  return true;
}
