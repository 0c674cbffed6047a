/* Pyth PriceUpdateV2: see pyth.h. Fields after the verification level are
 * unaligned (the level is 1 or 2 bytes), so every field is read byte by
 * byte, little-endian. */
#include "pyth.h"

#include "math.h"

static uint64_t le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Offsets from the start of the feed id: feed_id[32], price i64, conf u64, exponent i32, publish_time i64. */
#define MSG_PRICE 32
#define MSG_CONF 40
#define MSG_EXPONENT 48
#define MSG_PUBLISH_TIME 52
#define LEVEL_AT 40 /* after the discriminator and write_authority */

PerpsResult pyth_read(const uint8_t *data, uint64_t len, const uint8_t feed_id[32], PythPrice *out) {
  if (len < PYTH_PRICE_UPDATE_V2_LEN) return PERPS_ERR_INVALID_ACCOUNT_DATA; /* what the receiver allocates */
  if (le64(data) != PYTH_PRICE_UPDATE_V2_DISCRIMINATOR) return PERPS_ERR_INVALID_DISCRIMINATOR;
  uint8_t level = data[LEVEL_AT];
  if (level == PYTH_VERIFICATION_PARTIAL) return PERPS_ERR_ORACLE_NOT_FULLY_VERIFIED;
  if (level != PYTH_VERIFICATION_FULL) return PERPS_ERR_INVALID_ACCOUNT_DATA;
  const uint64_t msg = LEVEL_AT + 1; /* Full is the tag alone; Partial would add num_signatures */
  const uint8_t *m = data + msg;
  for (int i = 0; i < 32; i++)
    if (m[i] != feed_id[i]) return PERPS_ERR_ORACLE_FEED_MISMATCH;
  out->price = (int64_t)le64(m + MSG_PRICE);
  out->conf = le64(m + MSG_CONF);
  out->exponent = (int32_t)le32(m + MSG_EXPONENT);
  out->publish_time = (int64_t)le64(m + MSG_PUBLISH_TIME);
  return 0;
}

#define MAX_SHIFT 18 /* 10^18 < 2^63 */

PerpsResult pyth_rescale(int64_t price, uint64_t conf, int32_t exponent, int64_t *price6, uint64_t *conf6) {
  if (exponent < -24 || exponent > 12) return PERPS_ERR_ORACLE_EXPONENT_UNSUPPORTED;
  int32_t k = exponent + 6; /* after the range check: no overflow at i32's ends */
  uint64_t scale = 1;
  for (int32_t i = 0; i < (k < 0 ? -k : k); i++) scale *= 10;
  /* magnitude arithmetic: the BPF target has no signed division */
  uint64_t magnitude = price < 0 ? (uint64_t)0 - (uint64_t)price : (uint64_t)price;
  uint64_t scaled;
  if (k >= 0) {
    u128 p, c; /* the BPF target has no 128-bit multiply libcall: pk_mul_64 */
    pk_mul_64(magnitude, scale, &p);
    pk_mul_64(conf, scale, &c);
    if (p > (u128)INT64_MAX) return PERPS_ERR_ORACLE_PRICE_OUT_OF_RANGE;
    scaled = (uint64_t)p;
    *conf6 = c >> 64 ? UINT64_MAX : (uint64_t)c;
  } else {
    scaled = magnitude / scale; /* toward zero */
    *conf6 = conf / scale + (conf % scale != 0);
  }
  *price6 = price < 0 ? -(int64_t)scaled : (int64_t)scaled;
  return 0;
}

PerpsResult pyth_oracle_price(const uint8_t *data, uint64_t len, const uint8_t feed_id[32], PerpsOracle *out) {
  PythPrice p;
  PerpsResult r = pyth_read(data, len, feed_id, &p);
  if (r) return r;
  if (p.price <= 0) return PERPS_ERR_ORACLE_PRICE_NOT_POSITIVE; /* refused as such before any rescaling */
  r = pyth_rescale(p.price, p.conf, p.exponent, &out->price, &out->conf);
  if (r) return r;
  out->publish_time = p.publish_time;
  out->expo = -6;
  return 0;
}

static const SolPubkey KNOWN_RECEIVERS[] = {
    {{12, 183, 250, 187, 82, 247, 166, 72, 187, 91, 49, 125, 154, 1, 139, 144,
      87, 203, 2, 71, 116, 250, 254, 1, 230, 196, 223, 152, 204, 56, 88, 129}},
    {{12, 183, 250, 122, 93, 166, 40, 251, 172, 169, 154, 234, 153, 247, 191, 59,
      220, 54, 137, 104, 96, 42, 191, 65, 77, 78, 139, 165, 103, 187, 176, 191}},
};

bool pyth_known_receiver(const SolPubkey *receiver) {
  for (uint64_t i = 0; i < sizeof KNOWN_RECEIVERS / sizeof KNOWN_RECEIVERS[0]; i++) {
    bool same = true;
    for (int j = 0; j < 32; j++) same = same && receiver->x[j] == KNOWN_RECEIVERS[i].x[j];
    if (same) return true;
  }
  return false;
}
