/* Logging helpers over sol_log_. */
#ifndef SOL_LOG_H
#define SOL_LOG_H

#include "sol/types.h"

/* Length of a NUL-terminated string. */
uint64_t sol_strlen(const char *s);
/* Write the decimal digits of v at out (at least 20 bytes); return the count. */
uint64_t sol_format_u64(uint64_t v, char *out);

/* A bounded message buffer for log lines assembled from parts. */
typedef struct {
  char buf[256];
  uint64_t len;
} SolLogLine;

void sol_line_str(SolLogLine *line, const char *s);
void sol_line_bytes(SolLogLine *line, const char *s, uint64_t len);
void sol_line_u64(SolLogLine *line, uint64_t v);

#ifdef __bpf__
#include "sol/syscalls.h"
static inline void sol_log(const char *s) { sol_log_(s, sol_strlen(s)); }
static inline void sol_line_emit(const SolLogLine *line) { sol_log_(line->buf, line->len); }
#endif

#endif
