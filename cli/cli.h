/* cli.h - what the subcommand files share: the entry-point signature, exit
 * codes and error reporting. Only cli/ prints to stdout or decides exit codes.
 */
#ifndef BMFM_CLI_H
#define BMFM_CLI_H

#include "base/error.h"

enum {
    BMFM_EXIT_OK = 0,
    BMFM_EXIT_FAILURE = 1, /* the work ran but a check failed (e.g. a test threshold) */
    BMFM_EXIT_INPUT = 2,   /* bad input, bad option, unreadable or unwritable file */
    BMFM_EXIT_INTERNAL = 70
};

/* One subcommand: argv[0] is the subcommand name. Returns the exit code. */
typedef int (*bmfm_cmd_fn)(int argc, char **argv);

/* Print "bmfm <cmd>: error: <current error message>" on stderr and return the
 * exit code for status `s` (2 for input/io/unsupported, 70 for internal). */
int bmfm_cli_fail(const char *cmd, bmfm_status s);
/* Print "bmfm <cmd>: error: <formatted>" and "try 'bmfm <cmd> --help'", return 2. */
int bmfm_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse helpers: return 0 on success, print a usage error and return -1 otherwise. */
int bmfm_cli_parse_int(const char *cmd, const char *opt, const char *value, long min, long max, long *out);
int bmfm_cli_parse_double(const char *cmd, const char *opt, const char *value, double *out);
/* The bundled default model directory: $BMFM_MODEL, else models/default
 * beside the bmfm binary (or ../share/bmfm/models/default); NULL if none. */
const char *bmfm_cli_default_model(void);
/* Apply the common -q/--quiet, -v/--verbose flags. */
void bmfm_cli_set_verbosity(int quiet, int verbose);

#endif
