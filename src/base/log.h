/* log.h - diagnostics on stderr with a global verbosity level.
 *
 * The library never writes to stdout; warnings and info lines go to stderr so
 * that `bmfm ... --json > out.json` stays clean.
 */
#ifndef BMFM_BASE_LOG_H
#define BMFM_BASE_LOG_H

typedef enum { BMFM_LOG_QUIET = 0, BMFM_LOG_WARN = 1, BMFM_LOG_INFO = 2, BMFM_LOG_DEBUG = 3 } bmfm_log_level;

void bmfm_log_set_level(bmfm_log_level level);
bmfm_log_level bmfm_log_get_level(void);
void bmfm_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bmfm_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bmfm_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
