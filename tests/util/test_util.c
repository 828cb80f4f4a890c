/* test_util.c - helpers for the test programs (see test_util.h). */
#include "test_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char ring[64][4096];
static int ring_next;

static char *ring_buf(void) {
    char *b = ring[ring_next];
    ring_next = (ring_next + 1) % 64;
    return b;
}

const char *tu_data(const char *rel) {
    const char *root = getenv("BMFM_SHARED_DATA");
    char *b = ring_buf();
    snprintf(b, 4096, "%s/%s", root && *root ? root : "../shared/data", rel);
    return b;
}

static void mkdir_p(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    mkdir(tmp, 0755);
}

const char *tu_scratch(const char *file) {
    static char dir[2048];
    if (!dir[0]) {
        const char *build = getenv("BMFM_BUILD");
        char exe[1024] = "test";
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) exe[n] = '\0';
        const char *base = strrchr(exe, '/');
        snprintf(dir, sizeof dir, "%s/tests/scratch/%s", build && *build ? build : "build",
                 base ? base + 1 : exe);
        mkdir_p(dir);
    }
    char *b = ring_buf();
    snprintf(b, 4096, "%s/%s", dir, file);
    return b;
}

const char *tu_bmfm_bin(void) {
    const char *b = getenv("BMFM_BIN");
    return b && *b ? b : "./bmfm";
}

static int vsystem(const char *fmt, va_list ap) {
    char cmd[16384];
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    fflush(stdout);
    fflush(stderr);
    int rc = system(cmd);
    if (rc == -1) return -1;
    if (WIFEXITED(rc)) return WEXITSTATUS(rc);
    return 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0);
}

int tu_system(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vsystem(fmt, ap);
    va_end(ap);
    return rc;
}

int tu_capture(char **output, const char *fmt, ...) {
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[16500];
    snprintf(full, sizeof full, "(%s) 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    int rc = pclose(p);
    *output = buf;
    if (rc == -1) return -1;
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

int tu_python(const char *fmt, ...) {
    char args[12000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return tu_system("/usr/bin/python3 tests/ref/%s", args);
}

double tu_relerr(double a, double b, double floor) {
    double d = fabs(b);
    if (d < floor) d = floor;
    return fabs(a - b) / d;
}

double tu_max_scaled_err_f32(const float *a, const float *b, size_t n) {
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    scale += 1e-30;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]) / scale;
        if (!(e <= worst)) worst = e; /* NaN propagates as worst */
    }
    return worst;
}
