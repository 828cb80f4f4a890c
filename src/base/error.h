/* error.h - status codes and the thread-local error message.
 *
 * Every library function that can fail returns bmfm_status (0 = ok) and, on
 * failure, leaves a one-line message naming the file, the field and the cause
 * ("cells.h5ad: /X/indptr has 9 entries, expected 11"). Nothing below cli/
 * prints errors or exits; the CLI maps the status to an exit code.
 */
#ifndef BMFM_BASE_ERROR_H
#define BMFM_BASE_ERROR_H

#include <stdarg.h>

typedef enum bmfm_status {
    BMFM_OK = 0,
    BMFM_E_INPUT = 1,    /* bad external input: corrupt file, wrong type, bad option */
    BMFM_E_IO = 2,       /* the operating system refused: open, write, rename */
    BMFM_E_NOMEM = 3,    /* allocation failed */
    BMFM_E_UNSUPPORTED = 4, /* valid input we do not handle */
    BMFM_E_INTERNAL = 5  /* a bug: an invariant did not hold */
} bmfm_status;

/* Set the message (printf-style) and return `code`, so call sites read
 * `return bmfm_error_set(BMFM_E_INPUT, "%s: /X missing", path);` */
bmfm_status bmfm_error_set(bmfm_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
bmfm_status bmfm_error_setv(bmfm_status code, const char *fmt, va_list ap);

/* Prefix the current message with more context: "ctx: <old message>". */
bmfm_status bmfm_error_prefix(bmfm_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char *bmfm_error_message(void);

/* The message is per thread, so a failure inside an OpenMP worker must be
 * carried to the thread that returns it: the worker clears its message
 * before the work, saves the outcome, and the caller restores the first
 * failure (bmfm_error_restore returns its code; a failure that set no
 * message gets the status name). */
#define BMFM_ERROR_MAX 1024
typedef struct bmfm_error_saved {
    bmfm_status code;
    char message[BMFM_ERROR_MAX];
} bmfm_error_saved;
void bmfm_error_save(bmfm_status code, bmfm_error_saved *out);
bmfm_status bmfm_error_restore(const bmfm_error_saved *saved);
bmfm_status bmfm_error_code(void);
void bmfm_error_clear(void);
const char *bmfm_status_name(bmfm_status s);

/* Propagate a failing status from an expression. */
#define BMFM_TRY(expr)                                                         \
    do {                                                                       \
        bmfm_status bmfm_try_s_ = (expr);                                      \
        if (bmfm_try_s_ != BMFM_OK) return bmfm_try_s_;                       \
    } while (0)

#endif
