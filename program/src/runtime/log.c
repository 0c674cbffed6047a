/* Log-line assembly: pure string and number formatting. */
#include "sol/log.h"

uint64_t sol_strlen(const char *s) {
  uint64_t n = 0;
  while (s[n]) n++;
  return n;
}

uint64_t sol_format_u64(uint64_t v, char *out) {
  char tmp[20];
  uint64_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (uint64_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}

void sol_line_bytes(SolLogLine *line, const char *s, uint64_t len) {
  uint64_t room = sizeof(line->buf) - line->len;
  if (len > room) len = room;
  for (uint64_t i = 0; i < len; i++) line->buf[line->len + i] = s[i];
  line->len += len;
}

void sol_line_str(SolLogLine *line, const char *s) { sol_line_bytes(line, s, sol_strlen(s)); }

void sol_line_u64(SolLogLine *line, uint64_t v) {
  char digits[20];
  sol_line_bytes(line, digits, sol_format_u64(v, digits));
}
