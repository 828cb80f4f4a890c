/* test_util.h - helpers shared by the cmocka test programs.
 *
 * Paths: shared data (BMFM_SHARED_DATA, default ../shared/data from the repo
 * root), a scratch directory per test program under build/, and running the
 * Python oracles under tests/ref/ with Debian's /usr/bin/python3.
 */
#ifndef BMFM_TEST_UTIL_H
#define BMFM_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* "<shared data dir>/<rel>" in a static buffer ring shared with tu_scratch:
 * a returned path stays valid for the next 63 calls of either. Copy it into
 * your own buffer when you keep it longer: a test once wrote its output over a
 * shared input through a reused slot (run_tests.sh now catches that). */
const char *tu_data(const char *rel);
/* A scratch directory for this test program, created on first use:
 * "<build>/tests/scratch/<name>/". Returns "<dir>/<file>". */
const char *tu_scratch(const char *file);
/* Path to the bmfm CLI binary (BMFM_BIN, default ./bmfm). */
const char *tu_bmfm_bin(void);
/* Run a shell command; returns its exit status (or -1). Output goes to the
 * test log. */
int tu_system(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Run a shell command and capture stdout+stderr into a malloc'd string. */
int tu_capture(char **output, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Run tests/ref/<script> with /usr/bin/python3 and arguments; exit status. */
int tu_python(const char *script_and_args_fmt, ...) __attribute__((format(printf, 1, 2)));
/* Relative error |a-b| / max(|b|, floor). */
double tu_relerr(double a, double b, double floor);
/* Max over i of |a[i]-b[i]| / (max_j |b[j]| + tiny): error relative to the tensor scale. */
double tu_max_scaled_err_f32(const float *a, const float *b, size_t n);

#endif
