/* Host driver of the program's pure C code, built with AddressSanitizer and
 * UndefinedBehaviorSanitizer (make -C program native).  pytest sends one
 * command per line on stdin and checks each answer line against the Python
 * model (tests/test_native.py); a sanitizer report aborts the process and
 * fails the test.  Integers are decimal; 128-bit ones too.
 *
 * math:  mul A B | div128 N D | muldiv A B D | muldivc A B D | imul A B | ifloor N D | iceil N D
 *        mdf A B D | mdc A B D | clz X | rent LPBY BITS LEN | fmt V | zero HEX | deser CAP HEX
 * risk:  oracle P CONF PUB NOW STALE CONFBPS AHEAD | ewma E T P NOW WIN | fund OIL OIS P DT RATE IL IS
 *        params K RATE STALE WIN IM MM FEE REWARD BAND CONF CAP MIN AHEAD OIL OIS
 *        fill I S0 S1 K BUY | band I S0 S1 K EWMA BAND | notional S P | fee N BPS | req S P BPS
 *        key SIDE S C E F0 | thr SIDE P IDX MM | lp SIDE S C E F0 IDX MM | owed S IDX F0 | pnl SIDE S E P
 * batch: beq SIDE C S SE SF P IDX | payout EQ C POOL INS BPS | bexit I S0 LONGS SHORTS K
 * book:  bnew CAP | bopen SIDE S C E F0 | bclose SLOT | blive SLOT | blist SIDE | bsums SIDE | bcheck
 *        bcut SIDE KEY SLOT ABOVE | bgc MAX | bfree | bextreme SIDE
 * Errors print as "err CODE".
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "book.h"
#include "math.h"
#include "pyth.h"
#include "risk.h"
#include "sol/entrypoint.h"
#include "sol/log.h"
#include "sol/mem.h"

static i128 num(const char *s) {
  bool neg = *s == '-';
  if (neg) s++;
  u128 v = 0;
  for (; *s >= '0' && *s <= '9'; s++) v = v * 10 + (u128)(*s - '0');
  return neg ? (i128)((u128)0 - v) : (i128)v;
}
static u128 unum(const char *s) { return (u128)num(s); }

static void put(i128 v) {
  char buf[48];
  int n = 0;
  u128 m = pk_abs_i128(v);
  do {
    buf[n++] = (char)('0' + (int)(m % 10));
    m /= 10;
  } while (m);
  if (v < 0) putchar('-');
  while (n) putchar(buf[--n]);
}
static void putu(u128 v) {
  char buf[48];
  int n = 0;
  do {
    buf[n++] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v);
  while (n) putchar(buf[--n]);
}
static void result(PerpsResult err, i128 v) {
  if (err) {
    printf("err %llu", (unsigned long long)err);
  } else {
    put(v);
  }
}

static uint8_t *unhex(const char *hex, size_t *len) {
  size_t n = strlen(hex) / 2;
  uint8_t *buf = aligned_alloc(8, n ? (n + 7) / 8 * 8 : 8);
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    sscanf(hex + 2 * i, "%2x", &v);
    buf[i] = (uint8_t)v;
  }
  *len = n;
  return buf;
}

static void deser(uint64_t capacity, const char *hex) {
  size_t len;
  uint8_t *buf = unhex(hex, &len);
  SolAccountInfo *accounts = calloc(capacity ? capacity : 1, sizeof(SolAccountInfo));
  SolParameters params = {.accounts = accounts};
  SolDeserializeResult r = sol_deserialize(buf, &params, capacity);
  if (r != SOL_DESERIALIZE_OK) {
    printf("error %d", (int)r);
  } else {
    printf("ok %llu", (unsigned long long)params.num_accounts);
    for (uint64_t i = 0; i < params.num_accounts; i++) {
      const SolAccountInfo *a = &accounts[i];
      printf(" [%ld %ld %ld %llu %ld %llu %d %d %d]", (long)((uint8_t *)a->key - buf),
             (long)((uint8_t *)a->owner - buf), (long)((uint8_t *)a->lamports - buf),
             (unsigned long long)a->data_len, (long)(a->data - buf), (unsigned long long)a->rent_epoch,
             a->is_signer, a->is_writable, a->executable);
    }
    printf(" %llu %ld %ld", (unsigned long long)params.data_len, (long)(params.data - buf),
           (long)((const uint8_t *)params.program_id - buf));
  }
  free(accounts);
  free(buf);
}

/* ---- book -------------------------------------------------------------------------- */

static uint8_t *book_data;
static Book book;

static void book_new(uint32_t capacity) {
  free(book_data);
  book_data = aligned_alloc(16, (book_size(capacity) + 15) / 16 * 16);
  memset(book_data, 0, book_size(capacity));
  book_view(book_data + 8, capacity, &book);
  SolPubkey market = {{1}};
  book_init(&book, &market, capacity);
}

static void terms_of(uint32_t slot, PositionTerms *t) {
  const PerpsPositionSlot *p = &book.slots[slot];
  t->side = p->side;
  t->size = p->size;
  t->collateral = p->collateral;
  t->entry_price = p->entry_price;
  t->funding_at_open = pk_load_i128(&p->funding_at_open);
}

static u128 composite_key(uint32_t slot) { return book_ordered(pk_load_i128(&book.slots[slot].key)); }

static bool less(uint32_t a, uint32_t b) {
  u128 ka = composite_key(a), kb = composite_key(b);
  return ka < kb || (ka == kb && a < b);
}

/* Verify the subtree; fill its sums, smallest and largest leaf. */
static const char *check_tree(uint32_t ref, uint32_t side, int depth, BookSums *sums, uint32_t *lo, uint32_t *hi) {
  if (depth > (int)BOOK_KEY_BITS + 1) return "too deep";
  if (book_is_leaf(ref)) {
    uint32_t slot = book_leaf_slot(ref);
    if (slot >= book.header->slots_used) return "leaf beyond slots_used";
    const PerpsPositionSlot *p = &book.slots[slot];
    if (p->status != PERPS_SLOT_OPEN || p->side != side) return "leaf not open or on the wrong side";
    PositionTerms t;
    i128 key;
    terms_of(slot, &t);
    if (risk_key(&t, &key) || key != pk_load_i128(&p->key)) return "stored key differs from risk_key";
    book_sums(&book, ref, sums);
    *lo = *hi = slot;
    return NULL;
  }
  if (ref == 0 || ref > book.header->nodes_used) return "bad node reference";
  const PerpsTreeNode *n = book_node(&book, ref);
  BookSums a, b;
  uint32_t alo, ahi, blo, bhi;
  const char *err = check_tree(n->children[0], side, depth + 1, &a, &alo, &ahi);
  if (!err) err = check_tree(n->children[1], side, depth + 1, &b, &blo, &bhi);
  if (err) return err;
  if (!less(ahi, blo)) return "left subtree not below right subtree";
  u128 klo = composite_key(alo), khi = composite_key(bhi);
  if (book_crit_bit(&klo, alo, &khi, bhi) != n->crit) return "crit bit wrong";
  if (book_bit(composite_key(alo), alo, n->crit) != 0 || book_bit(composite_key(bhi), bhi, n->crit) != 1)
    return "children on the wrong side of the crit bit";
  sums->count = a.count + b.count;
  sums->collateral = a.collateral + b.collateral;
  sums->size = a.size + b.size;
  sums->size_entry = a.size_entry + b.size_entry;
  sums->size_funding = a.size_funding + b.size_funding;
  BookSums stored;
  book_sums(&book, ref, &stored);
  if (memcmp(&stored, sums, sizeof stored) != 0 && (stored.count != sums->count || stored.collateral != sums->collateral ||
                                                    stored.size != sums->size || stored.size_entry != sums->size_entry ||
                                                    stored.size_funding != sums->size_funding))
    return "stored sums differ from the leaves";
  *lo = alo;
  *hi = bhi;
  return NULL;
}

static void book_check(void) {
  for (uint32_t side = 0; side < 2; side++) {
    uint32_t root = book.header->roots[side];
    uint32_t count = 0;
    if (root) {
      BookSums s;
      uint32_t lo, hi;
      const char *err = check_tree(root, side, 0, &s, &lo, &hi);
      if (err) {
        printf("bad side %u: %s", side, err);
        return;
      }
      count = s.count;
    }
    if (count != book.header->counts[side]) {
      printf("bad side %u: count %u, header says %u", side, count, book.header->counts[side]);
      return;
    }
  }
  printf("ok");
}

static void list_tree(uint32_t ref) {
  if (!ref) return;
  if (book_is_leaf(ref)) {
    printf(" %u", book_leaf_slot(ref));
    return;
  }
  list_tree(book_node(&book, ref)->children[0]);
  list_tree(book_node(&book, ref)->children[1]);
}

static void book_open(char **argv) {
  uint32_t slot;
  PerpsResult err = book_alloc_slot(&book, &slot);
  if (err) {
    result(err, 0);
    return;
  }
  PerpsPositionSlot *p = &book.slots[slot];
  PositionTerms t = {.side = (uint8_t)num(argv[1]),
                     .size = (uint64_t)num(argv[2]),
                     .collateral = (uint64_t)num(argv[3]),
                     .entry_price = (uint64_t)num(argv[4]),
                     .funding_at_open = num(argv[5])};
  i128 key;
  err = risk_key(&t, &key);
  if (err) {
    book_free_slot(&book, slot);
    result(err, 0);
    return;
  }
  p->side = t.side;
  p->size = t.size;
  p->collateral = t.collateral;
  p->entry_price = t.entry_price;
  pk_store_i128(&p->funding_at_open, t.funding_at_open);
  pk_store_i128(&p->key, key);
  p->status = PERPS_SLOT_OPEN;
  err = book_insert(&book, slot);
  if (err) {
    result(err, 0);
    return;
  }
  printf("%u ", slot);
  put(key);
}


/* ---- commands ---------------------------------------------------------------------- */

int main(void) {
  char *line = NULL;
  size_t cap = 0;
  char *argv[20];
  while (getline(&line, &cap, stdin) > 0) {
    int argc = 0;
    for (char *tok = strtok(line, " \n"); tok && argc < 20; tok = strtok(NULL, " \n")) argv[argc++] = tok;
    if (argc == 0) continue;
    const char *c = argv[0];
#define IS(name, n) (!strcmp(c, name) && argc == (n) + 1)
    if (IS("mul", 2)) {
      u128 p;
      pk_mul_64((uint64_t)unum(argv[1]), (uint64_t)unum(argv[2]), &p);
      putu(p);
    } else if (IS("div128", 2)) {
      u128 q;
      uint64_t r;
      if (pk_div_128_64(unum(argv[1]), (uint64_t)unum(argv[2]), &q, &r)) {
        putu(q);
        printf(" %llu", (unsigned long long)r);
      } else {
        printf("fail");
      }
    } else if (IS("muldiv", 3) || IS("muldivc", 3)) {
      u128 v;
      bool ok = c[6] == 'c' ? pk_muldiv_128_ceil(unum(argv[1]), (uint64_t)unum(argv[2]), (uint64_t)unum(argv[3]), &v)
                            : pk_muldiv_128(unum(argv[1]), (uint64_t)unum(argv[2]), (uint64_t)unum(argv[3]), &v);
      if (ok) putu(v); else printf("fail");
    } else if (IS("imul", 2)) {
      i128 v;
      if (pk_mul_i128_64(num(argv[1]), (uint64_t)unum(argv[2]), &v)) put(v); else printf("fail");
    } else if (IS("ifloor", 2) || IS("iceil", 2)) {
      i128 v;
      bool ok = c[1] == 'f' ? pk_floordiv_i128(num(argv[1]), (uint64_t)unum(argv[2]), &v)
                            : pk_ceildiv_i128(num(argv[1]), (uint64_t)unum(argv[2]), &v);
      if (ok) put(v); else printf("fail");
    } else if (IS("mdf", 3) || IS("mdc", 3)) {
      uint64_t v;
      bool ok = c[2] == 'f' ? pk_mul_div_floor((uint64_t)unum(argv[1]), (uint64_t)unum(argv[2]), (uint64_t)unum(argv[3]), &v)
                            : pk_mul_div_ceil((uint64_t)unum(argv[1]), (uint64_t)unum(argv[2]), (uint64_t)unum(argv[3]), &v);
      if (ok) printf("%llu", (unsigned long long)v); else printf("fail");
    } else if (IS("clz", 1)) {
      printf("%u", pk_clz64((uint64_t)unum(argv[1])));
    } else if (IS("rent", 3)) {
      uint64_t v;
      if (pk_rent_minimum_balance((uint64_t)unum(argv[1]), (uint64_t)unum(argv[2]), (uint64_t)unum(argv[3]), &v))
        printf("%llu", (unsigned long long)v);
      else
        printf("fail");
    } else if (IS("fmt", 1)) {
      char out[20];
      uint64_t n = sol_format_u64((uint64_t)unum(argv[1]), out);
      printf("%.*s", (int)n, out);
    } else if (IS("zero", 1)) {
      size_t len;
      uint8_t *buf = unhex(argv[1], &len);
      printf("%d", sol_is_zero(buf, len));
      free(buf);
    } else if (IS("deser", 2)) {
      deser((uint64_t)unum(argv[1]), argv[2]);
    } else if (IS("oracle", 7)) {
      PerpsOracle o = {.price = (int64_t)num(argv[1]), .conf = (uint64_t)num(argv[2]), .publish_time = (int64_t)num(argv[3])};
      PerpsMarketParams p = {.max_staleness_s = (uint32_t)num(argv[5]), .max_conf_bps = (uint16_t)num(argv[6]),
                             .max_publish_ahead_s = (uint32_t)num(argv[7])};
      printf("%llu", (unsigned long long)risk_check_oracle(&o, (int64_t)num(argv[4]), &p));
    } else if (IS("pyth_rescale", 3)) {
      int64_t p6;
      uint64_t c6;
      PerpsResult r = pyth_rescale((int64_t)num(argv[1]), (uint64_t)unum(argv[2]), (int32_t)num(argv[3]), &p6, &c6);
      if (r) printf("err %llu", (unsigned long long)r);
      else printf("%lld %llu", (long long)p6, (unsigned long long)c6);
    } else if (IS("pyth_read", 2)) {
      size_t n, feed_len;
      uint8_t *data = unhex(argv[1], &n), *feed = unhex(argv[2], &feed_len);
      if (feed_len != 32) {
        printf("bad feed id");
      } else {
        PerpsOracle o;
        PerpsResult r = pyth_oracle_price(data, n, feed, &o);
        if (r) printf("err %llu", (unsigned long long)r);
        else printf("%lld %llu %lld", (long long)o.price, (unsigned long long)o.conf, (long long)o.publish_time);
      }
      free(data);
      free(feed);
    } else if (IS("pyth_known", 1)) {
      size_t n;
      uint8_t *key = unhex(argv[1], &n);
      SolPubkey k = {{0}};
      if (n == 32) __builtin_memcpy(k.x, key, 32);
      printf("%d", n == 32 && pyth_known_receiver(&k));
      free(key);
    } else if (IS("params", 15)) {
      PerpsMarketParams p = {.skew_scale = (uint64_t)unum(argv[1]),
                             .max_funding_rate_bps_per_day = (uint32_t)unum(argv[2]),
                             .max_staleness_s = (uint32_t)unum(argv[3]),
                             .ewma_window_s = (uint32_t)unum(argv[4]),
                             .initial_margin_bps = (uint16_t)unum(argv[5]),
                             .maintenance_margin_bps = (uint16_t)unum(argv[6]),
                             .taker_fee_bps = (uint16_t)unum(argv[7]),
                             .liquidation_reward_bps = (uint16_t)unum(argv[8]),
                             .price_band_bps = (uint16_t)unum(argv[9]),
                             .max_conf_bps = (uint16_t)unum(argv[10]),
                             .max_open_interest = (uint64_t)unum(argv[11]),
                             .min_position_notional = (uint64_t)unum(argv[12]),
                             .max_publish_ahead_s = (uint32_t)unum(argv[13])};
      printf("%llu", (unsigned long long)risk_check_params(&p, (uint64_t)unum(argv[14]), (uint64_t)unum(argv[15])));
    } else if (IS("bexit", 5)) {
      BatchExit in = {.index_price = (uint64_t)unum(argv[1]), .skew0 = num(argv[2]), .long_size = (uint64_t)unum(argv[3]),
                      .short_size = (uint64_t)unum(argv[4]), .skew_scale = (uint64_t)unum(argv[5])};
      uint64_t price;
      PerpsResult err = risk_batch_exit_price(&in, &price);
      if (err) result(err, 0); else printf("%llu", (unsigned long long)price);
    } else if (IS("ewma", 5)) {
      uint64_t e = (uint64_t)num(argv[1]);
      int64_t t = (int64_t)num(argv[2]);
      risk_update_ewma(&e, &t, (uint64_t)num(argv[3]), (int64_t)num(argv[4]), (uint32_t)num(argv[5]));
      printf("%llu %lld", (unsigned long long)e, (long long)t);
    } else if (IS("fund", 7)) {
      FundingAccrual in = {.oi = {(uint64_t)num(argv[1]), (uint64_t)num(argv[2])},
                           .price = (uint64_t)num(argv[3]),
                           .dt = (uint64_t)num(argv[4]),
                           .max_rate_bps_per_day = (uint32_t)num(argv[5])};
      i128 idx[2] = {num(argv[6]), num(argv[7])};
      PerpsResult err = risk_accrue_funding(&in, idx);
      if (err) {
        result(err, 0);
      } else {
        put(idx[0]);
        putchar(' ');
        put(idx[1]);
      }
    } else if (IS("fill", 5) || IS("band", 6)) {
      Fill f = {.index_price = (uint64_t)num(argv[1]), .skew0 = num(argv[2]), .skew1 = num(argv[3]),
                .skew_scale = (uint64_t)num(argv[4]), .buy = c[0] == 'f' && num(argv[5]) != 0};
      if (c[0] == 'f') {
        uint64_t price;
        PerpsResult err = risk_fill_price(&f, &price);
        result(err, price);
      } else {
        printf("%llu", (unsigned long long)risk_check_band(&f, (uint64_t)num(argv[5]), (uint16_t)num(argv[6])));
      }
    } else if (IS("notional", 2) || IS("fee", 2) || IS("req", 3)) {
      uint64_t v = 0;
      PerpsResult err = c[0] == 'n'   ? risk_notional((uint64_t)num(argv[1]), (uint64_t)num(argv[2]), &v)
                        : c[0] == 'f' ? risk_fee((uint64_t)num(argv[1]), (uint16_t)num(argv[2]), &v)
                                      : risk_requirement((uint64_t)num(argv[1]), (uint64_t)num(argv[2]),
                                                         (uint16_t)num(argv[3]), &v);
      result(err, v);
    } else if (IS("key", 5) || IS("lp", 7) || IS("pnl", 4)) {
      PositionTerms t = {.side = (uint8_t)num(argv[1]), .size = (uint64_t)num(argv[2])};
      i128 v = 0;
      PerpsResult err;
      if (c[0] == 'p') {
        t.entry_price = (uint64_t)num(argv[3]);
        err = risk_pnl(&t, (uint64_t)num(argv[4]), &v);
      } else {
        t.collateral = (uint64_t)num(argv[3]);
        t.entry_price = (uint64_t)num(argv[4]);
        t.funding_at_open = num(argv[5]);
        err = c[0] == 'k' ? risk_key(&t, &v) : risk_liquidation_price(&t, num(argv[6]), (uint16_t)num(argv[7]), &v);
      }
      result(err, v);
    } else if (IS("thr", 4)) {
      i128 v = 0, index = num(argv[3]);
      PerpsResult err = risk_threshold((uint8_t)num(argv[1]), (uint64_t)num(argv[2]), &index, (uint16_t)num(argv[4]), &v);
      result(err, v);
    } else if (IS("owed", 3)) {
      PositionTerms t = {.size = (uint64_t)num(argv[1]), .funding_at_open = num(argv[3])};
      i128 v = 0;
      PerpsResult err = risk_funding_owed(&t, num(argv[2]), &v);
      result(err, v);
    } else if (IS("beq", 7)) {
      RiskSums sums = {.collateral = (uint64_t)num(argv[2]), .size = (uint64_t)num(argv[3]),
                       .size_entry = unum(argv[4]), .size_funding = num(argv[5])};
      i128 index = num(argv[7]), equity = 0;
      PerpsResult err = risk_batch_equity((uint8_t)num(argv[1]), &sums, (uint64_t)num(argv[6]), &index, &equity);
      result(err, equity);
    } else if (IS("payout", 5)) {
      BatchInput in = {.equity = num(argv[1]), .collateral = (uint64_t)num(argv[2]), .pool = (uint64_t)num(argv[3]),
                       .insurance = (uint64_t)num(argv[4]), .reward_bps = (uint16_t)num(argv[5])};
      BatchPayout out;
      PerpsResult err = risk_batch_payout(&in, &out);
      if (err) {
        result(err, 0);
      } else {
        printf("%llu %llu %llu %llu ", (unsigned long long)out.reward, (unsigned long long)out.insurance_credit,
               (unsigned long long)out.insurance_paid, (unsigned long long)out.socialized_loss);
        put(out.pool_credit);
      }
    } else if (IS("bcut", 4)) {
      BookCut cut = {.key = book_ordered(num(argv[2])), .slot = (uint32_t)unum(argv[3]), .above = num(argv[4]) != 0};
      BookSums total;
      PerpsResult err = book_cut(&book, (uint8_t)num(argv[1]), &cut, &total);
      if (err) {
        result(err, 0);
      } else {
        printf("%u %llu %llu ", total.count, (unsigned long long)total.collateral, (unsigned long long)total.size);
        putu(total.size_entry);
        putchar(' ');
        put(total.size_funding);
      }
    } else if (IS("bgc", 1)) {
      uint32_t freed;
      book_collect_garbage(&book, (uint32_t)num(argv[1]), &freed);
      printf("%u %u", freed, book.header->garbage_count);
    } else if (IS("bfree", 0)) {
      /* lengths of the free lists, and the high-water marks */
      uint32_t slots = 0, nodes = 0;
      for (uint32_t s = book.header->free_slot; s; s = book.slots[s - 1].next) slots++;
      for (uint32_t n = book.header->free_node; n; n = book_node(&book, n)->children[0]) nodes++;
      printf("%u %u %u %u", slots, book.header->slots_used, nodes, book.header->nodes_used);
    } else if (IS("bnew", 1)) {
      book_new((uint32_t)num(argv[1]));
      printf("ok");
    } else if (IS("bopen", 5)) {
      book_open(argv);
    } else if (IS("bclose", 1)) {
      uint32_t slot = (uint32_t)num(argv[1]);
      PerpsResult err = book_remove(&book, slot);
      if (!err) book_free_slot(&book, slot);
      printf("%llu", (unsigned long long)err);
    } else if (IS("blive", 1)) {
      printf("%d", book_is_live(&book, (uint32_t)num(argv[1])));
    } else if (IS("bextreme", 1)) {
      uint32_t slot = book_extreme(&book, (uint8_t)num(argv[1]));
      if (slot == UINT32_MAX) printf("none"); else printf("%u", slot);
    } else if (IS("blist", 1)) {
      printf("list");
      list_tree(book.header->roots[num(argv[1])]);
    } else if (IS("bsums", 1)) {
      uint32_t root = book.header->roots[num(argv[1])];
      BookSums s = {0};
      if (root) book_sums(&book, root, &s);
      printf("%u %llu %llu ", s.count, (unsigned long long)s.collateral, (unsigned long long)s.size);
      putu(s.size_entry);
      putchar(' ');
      put(s.size_funding);
    } else if (IS("bcheck", 0)) {
      book_check();
    } else {
      printf("unknown command");
    }
    putchar('\n');
    fflush(stdout);
  }
  free(line);
  free(book_data);
  return 0;
}
