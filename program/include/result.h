/* The program's one error-propagation convention: every fallible function
 * returns 0 or a PERPS_ERR_* code (perps_idl.h), and TRY passes a failure up. */
#ifndef PERPS_RESULT_H
#define PERPS_RESULT_H

#include <stdint.h>

typedef uint64_t PerpsResult;

#define TRY(expr)                  \
  do {                             \
    PerpsResult try_err_ = (expr); \
    if (try_err_) return try_err_; \
  } while (0)

#endif
