/* Syscalls of the Solana runtime used by this program.  On SBPFv0 a call to
 * an undefined function is resolved by the loader through the murmur3 hash of
 * its name; the relinker (tools/sbflink.py) refuses names it does not know. */
#ifndef SOL_SYSCALLS_H
#define SOL_SYSCALLS_H

#include "sol/types.h"

/* Clock sysvar, as written by sol_get_clock_sysvar. */
typedef struct {
  uint64_t slot;
  int64_t epoch_start_timestamp;
  uint64_t epoch;
  uint64_t leader_schedule_epoch;
  int64_t unix_timestamp;
} SolClock;

/* Rent sysvar, as written by sol_get_rent_sysvar.  exemption_threshold is an
 * IEEE-754 double; upstream BPF has no float support, so it is kept as bits
 * and converted with integer arithmetic (math.h: rent_minimum_balance). */
typedef struct {
  uint64_t lamports_per_byte_year;
  uint64_t exemption_threshold_bits;
  uint8_t burn_percent;
  uint8_t padding[7];
} SolRent;

#ifdef __bpf__
void sol_log_(const char *message, uint64_t len);
void sol_log_64_(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e);
void sol_log_pubkey(const SolPubkey *key);
void sol_log_compute_units_(void);
void sol_log_data(const SolBytes *fields, uint64_t count);
uint64_t sol_create_program_address(const SolBytes *seeds, uint64_t count, const SolPubkey *program_id,
                                    SolPubkey *address);
uint64_t sol_try_find_program_address(const SolBytes *seeds, uint64_t count, const SolPubkey *program_id,
                                      SolPubkey *address, uint8_t *bump);
uint64_t sol_get_clock_sysvar(SolClock *clock);
uint64_t sol_get_rent_sysvar(SolRent *rent);
void sol_set_return_data(const uint8_t *data, uint64_t len);
void sol_panic_(const char *file, uint64_t file_len, uint64_t line, uint64_t column);
#endif

#endif
