/* cli_util.c - error reporting and option parsing shared by the subcommands. */
#include "cli.h"

#include "base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int bmfm_cli_fail(const char *cmd, bmfm_status s) {
    const char *msg = bmfm_error_message();
    fprintf(stderr, "bmfm %s: error: %s\n", cmd, msg && *msg ? msg : bmfm_status_name(s));
    return s == BMFM_E_INTERNAL ? BMFM_EXIT_INTERNAL : BMFM_EXIT_INPUT;
}

int bmfm_cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "bmfm %s: error: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\ntry 'bmfm %s --help'\n", cmd);
    return BMFM_EXIT_INPUT;
}

int bmfm_cli_parse_int(const char *cmd, const char *opt, const char *value, long min, long max, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || !end || *end || end == value || v < min || v > max) {
        bmfm_cli_usage_error(cmd, "%s expects an integer in [%ld, %ld], got '%s'", opt, min, max, value);
        return -1;
    }
    *out = v;
    return 0;
}

int bmfm_cli_parse_double(const char *cmd, const char *opt, const char *value, double *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || !end || *end || end == value) {
        bmfm_cli_usage_error(cmd, "%s expects a number, got '%s'", opt, value);
        return -1;
    }
    *out = v;
    return 0;
}

void bmfm_cli_set_verbosity(int quiet, int verbose) {
    if (quiet) bmfm_log_set_level(BMFM_LOG_QUIET);
    else if (verbose > 1) bmfm_log_set_level(BMFM_LOG_DEBUG);
    else if (verbose == 1) bmfm_log_set_level(BMFM_LOG_INFO);
}

const char *bmfm_cli_default_model(void) {
    static char path[4096];
    const char *env = getenv("BMFM_MODEL");
    if (env && *env) return env;
    /* the bundled model ships beside the binary (source checkout: ./models/default) */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    const char *candidates[] = {"%s/models/default", "%s/../share/bmfm/models/default"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        struct stat st;
        snprintf(path, sizeof path, candidates[i], exe);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return path;
    }
    return NULL;
}
