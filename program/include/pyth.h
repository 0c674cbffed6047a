/* Pyth pull-oracle PriceUpdateV2 accounts (SPEC 3b; docs/oracles.md):
 * the bytes after the owner check, read into a price at 6 decimals.
 *
 * Pure: no syscalls, no account access. */
#ifndef PERPS_PYTH_H
#define PERPS_PYTH_H

#include "perps_idl.h"
#include "result.h"

/* Anchor's account discriminator, sha256("account:PriceUpdateV2")[..8], little-endian. */
#define PYTH_PRICE_UPDATE_V2_DISCRIMINATOR 0xcdf47e9d6323f122ULL
/* The receiver allocates 134 bytes: the Partial layout fills them; Full leaves the last unused. */
#define PYTH_PRICE_UPDATE_V2_LEN 134u
#define PYTH_VERIFICATION_PARTIAL 0u
#define PYTH_VERIFICATION_FULL 1u

/* A price update's message, as published (not yet rescaled). */
typedef struct {
  int64_t price;
  uint64_t conf;
  int32_t exponent;
  int64_t publish_time;
} PythPrice;

/* Parse `data` (the account's bytes), in this order: at least 134 bytes
 * (InvalidAccountData), the discriminator (InvalidDiscriminator), the
 * verification tag (Partial: OracleNotFullyVerified; not Full either:
 * InvalidAccountData), the feed id (OracleFeedMismatch).
 * perpkit.pyth.read_price is the model. */
PerpsResult pyth_read(const uint8_t *data, uint64_t len, const uint8_t feed_id[32], PythPrice *out);

/* SPEC 3: `price * 10^exponent` and `conf * 10^exponent` at 6 decimals:
 * price toward zero, conf rounded up (saturating at u64::MAX, which then
 * fails the confidence check). Exponents outside -24..12 are
 * OracleExponentUnsupported; a price that does not fit in i64 at 6 decimals
 * is OraclePriceOutOfRange. */
PerpsResult pyth_rescale(int64_t price, uint64_t conf, int32_t exponent, int64_t *price6, uint64_t *conf6);

/* The whole read: pyth_read, a price <= 0 refused (OraclePriceNotPositive),
 * pyth_rescale; `out` gets price, conf and publish time as a test oracle
 * holds them, for the same checks (risk_check_oracle). */
PerpsResult pyth_oracle_price(const uint8_t *data, uint64_t len, const uint8_t feed_id[32], PerpsOracle *out);

/* The receivers Pyth runs: rec5EKMGg6MxZYaMdyBfgwp4d5rB9T1VQH5pJv5LtFJ and,
 * since its 2026 upgrade, rec2HHDDnjLfj4kE7VyEtFA1HPGQLK33259532cRyHp
 * (perpkit.pyth.KNOWN_RECEIVERS). A market may be re-pointed from one to the
 * other; any other receiver change is refused. */
bool pyth_known_receiver(const SolPubkey *receiver);

#endif
