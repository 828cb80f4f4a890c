/* error.c - thread-local error message storage (see error.h). */
#include "base/error.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char error_message[BMFM_ERROR_MAX];
static _Thread_local bmfm_status error_code;

bmfm_status bmfm_error_setv(bmfm_status code, const char *fmt, va_list ap) {
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    error_code = code;
    return code;
}

bmfm_status bmfm_error_set(bmfm_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bmfm_error_setv(code, fmt, ap);
    va_end(ap);
    return code;
}

bmfm_status bmfm_error_prefix(bmfm_status code, const char *fmt, ...) {
    char prefix[BMFM_ERROR_MAX];
    char old[BMFM_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_message, sizeof old);
    /* "prefix: old", cut at the buffer's end (no snprintf: gcc warns that it may cut) */
    size_t n = strlen(prefix), cap = sizeof error_message - 1;
    if (n > cap) n = cap;
    memcpy(error_message, prefix, n);
    for (const char *p = ": "; *p && n < cap; p++) error_message[n++] = *p;
    size_t m = strlen(old);
    if (m > cap - n) m = cap - n;
    memcpy(error_message + n, old, m);
    error_message[n + m] = '\0';
    error_code = code;
    return code;
}

const char *bmfm_error_message(void) { return error_message; }
bmfm_status bmfm_error_code(void) { return error_code; }

void bmfm_error_save(bmfm_status code, bmfm_error_saved *out) {
    out->code = code;
    if (code) memcpy(out->message, error_message, sizeof out->message);
    else out->message[0] = '\0';
}

bmfm_status bmfm_error_restore(const bmfm_error_saved *saved) {
    if (!saved->code) return BMFM_OK;
    if (saved->message[0]) return bmfm_error_set(saved->code, "%s", saved->message);
    return bmfm_error_set(saved->code, "%s", bmfm_status_name(saved->code));
}

void bmfm_error_clear(void) {
    error_message[0] = '\0';
    error_code = BMFM_OK;
}

const char *bmfm_status_name(bmfm_status s) {
    switch (s) {
    case BMFM_OK: return "ok";
    case BMFM_E_INPUT: return "bad input";
    case BMFM_E_IO: return "i/o error";
    case BMFM_E_NOMEM: return "out of memory";
    case BMFM_E_UNSUPPORTED: return "unsupported";
    case BMFM_E_INTERNAL: return "internal error";
    }
    return "unknown status";
}
