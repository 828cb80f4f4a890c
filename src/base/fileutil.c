/* fileutil.c - atomic output and file helpers (see fileutil.h). */
#include "base/fileutil.h"

#include "base/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

bmfm_status bmfm_atomic_tmp_path(const char *final_path, char *tmp, size_t n) {
    int w = snprintf(tmp, n, "%s.tmp-%ld", final_path, (long)getpid());
    if (w < 0 || (size_t)w >= n) return bmfm_error_set(BMFM_E_INPUT, "%s: path too long", final_path);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", final_path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        if (slash == dir) slash[1] = '\0';
        else *slash = '\0';
    } else {
        snprintf(dir, sizeof dir, ".");
    }
    if (access(dir, W_OK) != 0)
        return bmfm_error_set(BMFM_E_IO, "%s: cannot write to directory %s: %s", final_path, dir,
                              strerror(errno));
    struct stat st;
    if (stat(final_path, &st) == 0 && S_ISDIR(st.st_mode))
        return bmfm_error_set(BMFM_E_INPUT, "%s: output path is a directory", final_path);
    return BMFM_OK;
}

bmfm_status bmfm_atomic_commit(const char *tmp, const char *final_path) {
    int fd = open(tmp, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    if (rename(tmp, final_path) != 0) {
        int e = errno;
        unlink(tmp);
        return bmfm_error_set(BMFM_E_IO, "%s: cannot rename %s into place: %s", final_path, tmp,
                              strerror(e));
    }
    return BMFM_OK;
}

void bmfm_atomic_abort(const char *tmp) { unlink(tmp); }

bmfm_status bmfm_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    if (len) *len = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) return bmfm_error_set(BMFM_E_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = bmfm_malloc(cap);
    if (!buf) {
        gzclose(gz);
        return BMFM_E_NOMEM;
    }
    for (;;) {
        if (cap - n < 65536 + 1) {
            char *nb = bmfm_realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                gzclose(gz);
                return BMFM_E_NOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        int got = gzread(gz, buf + n, 65536);
        if (got < 0) {
            int errnum;
            const char *msg = gzerror(gz, &errnum);
            bmfm_status s = bmfm_error_set(BMFM_E_INPUT, "%s: read failed: %s", path, msg);
            free(buf);
            gzclose(gz);
            return s;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    gzclose(gz);
    buf[n] = '\0';
    *data = buf;
    if (len) *len = n;
    return BMFM_OK;
}

bmfm_status bmfm_write_text_atomic(const char *path, const char *text) {
    char tmp[4096];
    BMFM_TRY(bmfm_atomic_tmp_path(path, tmp, sizeof tmp));
    FILE *f = fopen(tmp, "w");
    if (!f) return bmfm_error_set(BMFM_E_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    int ok = fputs(text, f) >= 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        bmfm_atomic_abort(tmp);
        return bmfm_error_set(BMFM_E_IO, "%s: write failed", path);
    }
    return bmfm_atomic_commit(tmp, path);
}

bmfm_status bmfm_copy_file(const char *src, const char *dst) {
    char tmp[4096];
    BMFM_TRY(bmfm_atomic_tmp_path(dst, tmp, sizeof tmp));
    FILE *in = fopen(src, "rb");
    if (!in) return bmfm_error_set(BMFM_E_IO, "%s: cannot open: %s", src, strerror(errno));
    FILE *out = fopen(tmp, "wb");
    if (!out) {
        fclose(in);
        return bmfm_error_set(BMFM_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    char buf[1 << 16];
    size_t got;
    bmfm_status s = BMFM_OK;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0) {
        if (fwrite(buf, 1, got, out) != got) {
            s = bmfm_error_set(BMFM_E_IO, "%s: write failed: %s", tmp, strerror(errno));
            break;
        }
    }
    if (s == BMFM_OK && ferror(in)) s = bmfm_error_set(BMFM_E_IO, "%s: read failed", src);
    fclose(in);
    if (fclose(out) != 0 && s == BMFM_OK)
        s = bmfm_error_set(BMFM_E_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (s != BMFM_OK) {
        bmfm_atomic_abort(tmp);
        return s;
    }
    return bmfm_atomic_commit(tmp, dst);
}

int bmfm_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int bmfm_is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void bmfm_path_join(char *out, size_t n, const char *dir, const char *name) {
    size_t dl = strlen(dir);
    if (dl > 0 && dir[dl - 1] == '/') snprintf(out, n, "%s%s", dir, name);
    else snprintf(out, n, "%s/%s", dir, name);
}
