/* Host driver of the program's pure C code, built with AddressSanitizer and
 * UndefinedBehaviorSanitizer (make -C program native).  pytest sends one
 * command per line on stdin and checks each answer line against a Python
 * model (tests/test_native.py); any sanitizer report aborts the process and
 * fails the test.
 *
 *   mul A B            -> HI LO             full product
 *   div HI LO D        -> Q R | fail        128/64 division
 *   mdf A B D          -> V | fail          floor(A*B/D)
 *   mdc A B D          -> V | fail          ceil(A*B/D)
 *   add AH AL BH BL    -> HI LO | fail      128-bit add
 *   sub AH AL BH BL    -> HI LO | fail      128-bit subtract
 *   cmp AH AL BH BL    -> -1 | 0 | 1
 *   shl HI LO S, shr HI LO S -> HI LO
 *   clz X              -> N
 *   rent LPBY BITS LEN -> V | fail          Rent::minimum_balance
 *   fmt V              -> decimal digits
 *   zero HEX           -> 1 | 0             sol_is_zero
 *   deser CAP HEX      -> parse of an input region (see below)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "math.h"
#include "sol/entrypoint.h"
#include "sol/log.h"
#include "sol/mem.h"

static uint64_t u(const char *s) { return strtoull(s, NULL, 10); }

static uint8_t *unhex(const char *hex, size_t *len) {
  size_t n = strlen(hex) / 2;
  /* 8-byte aligned, like the runtime's input region */
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
    printf("error %d\n", (int)r);
  } else {
    /* offsets relative to the start of the region */
    printf("ok %llu", (unsigned long long)params.num_accounts);
    for (uint64_t i = 0; i < params.num_accounts; i++) {
      const SolAccountInfo *a = &accounts[i];
      printf(" [%ld %ld %ld %llu %ld %llu %d %d %d]", (long)((uint8_t *)a->key - buf),
             (long)((uint8_t *)a->owner - buf), (long)((uint8_t *)a->lamports - buf),
             (unsigned long long)a->data_len, (long)(a->data - buf), (unsigned long long)a->rent_epoch,
             a->is_signer, a->is_writable, a->executable);
    }
    printf(" %llu %ld %ld\n", (unsigned long long)params.data_len, (long)(params.data - buf),
           (long)((const uint8_t *)params.program_id - buf));
  }
  free(accounts);
  free(buf);
}

static void print_u128(const PkU128 *v) { printf("%llu %llu\n", (unsigned long long)v->hi, (unsigned long long)v->lo); }

int main(void) {
  char *line = NULL;
  size_t cap = 0;
  char *argv[8];
  while (getline(&line, &cap, stdin) > 0) {
    int argc = 0;
    for (char *tok = strtok(line, " \n"); tok && argc < 8; tok = strtok(NULL, " \n")) argv[argc++] = tok;
    if (argc == 0) continue;
    const char *cmd = argv[0];
    if (!strcmp(cmd, "mul") && argc == 3) {
      PkU128 p;
      pk_mul_u64(u(argv[1]), u(argv[2]), &p);
      print_u128(&p);
    } else if (!strcmp(cmd, "div") && argc == 4) {
      PkU128 n = {u(argv[2]), u(argv[1])};
      uint64_t q, r;
      if (pk_div_u128_u64(&n, u(argv[3]), &q, &r))
        printf("%llu %llu\n", (unsigned long long)q, (unsigned long long)r);
      else
        printf("fail\n");
    } else if ((!strcmp(cmd, "mdf") || !strcmp(cmd, "mdc")) && argc == 4) {
      uint64_t v;
      bool ok = cmd[2] == 'f' ? pk_mul_div_floor(u(argv[1]), u(argv[2]), u(argv[3]), &v)
                              : pk_mul_div_ceil(u(argv[1]), u(argv[2]), u(argv[3]), &v);
      if (ok)
        printf("%llu\n", (unsigned long long)v);
      else
        printf("fail\n");
    } else if ((!strcmp(cmd, "add") || !strcmp(cmd, "sub") || !strcmp(cmd, "cmp")) && argc == 5) {
      PkU128 a = {u(argv[2]), u(argv[1])}, b = {u(argv[4]), u(argv[3])};
      if (cmd[0] == 'c') {
        printf("%d\n", pk_u128_cmp(&a, &b));
      } else {
        bool ok = cmd[0] == 'a' ? pk_u128_add(&a, &b) : pk_u128_sub(&a, &b);
        if (ok)
          print_u128(&a);
        else
          printf("fail\n");
      }
    } else if ((!strcmp(cmd, "shl") || !strcmp(cmd, "shr")) && argc == 4) {
      PkU128 v = {u(argv[2]), u(argv[1])}, out;
      if (cmd[2] == 'l')
        pk_u128_shl(&v, (uint32_t)u(argv[3]), &out);
      else
        pk_u128_shr(&v, (uint32_t)u(argv[3]), &out);
      print_u128(&out);
    } else if (!strcmp(cmd, "clz") && argc == 2) {
      printf("%u\n", pk_clz64(u(argv[1])));
    } else if (!strcmp(cmd, "rent") && argc == 4) {
      uint64_t v;
      if (pk_rent_minimum_balance(u(argv[1]), u(argv[2]), u(argv[3]), &v))
        printf("%llu\n", (unsigned long long)v);
      else
        printf("fail\n");
    } else if (!strcmp(cmd, "fmt") && argc == 2) {
      char out[20];
      uint64_t n = sol_format_u64(u(argv[1]), out);
      printf("%.*s\n", (int)n, out);
    } else if (!strcmp(cmd, "zero") && argc == 2) {
      size_t len;
      uint8_t *buf = unhex(argv[1], &len);
      printf("%d\n", sol_is_zero(buf, len));
      free(buf);
    } else if (!strcmp(cmd, "deser") && argc == 3) {
      deser(u(argv[1]), argv[2]);
    } else {
      printf("unknown command\n");
    }
    fflush(stdout);
  }
  free(line);
  return 0;
}
