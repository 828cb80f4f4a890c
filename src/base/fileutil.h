/* fileutil.h - atomic output files and small file helpers.
 *
 * Every file bmfm writes goes to "<final>.tmp-<pid>" in the same directory and
 * is renamed over the final name only when complete, so a crash or an error
 * never leaves a half-written file behind the real name.
 */
#ifndef BMFM_BASE_FILEUTIL_H
#define BMFM_BASE_FILEUTIL_H

#include "base/error.h"

#include <stddef.h>

/* Fill `tmp` (size `n`) with the temporary name for `final_path`. Checks that
 * the directory of final_path is writable, so errors come before the work. */
bmfm_status bmfm_atomic_tmp_path(const char *final_path, char *tmp, size_t n);
/* fsync + rename tmp over final; on failure the tmp file is removed. */
bmfm_status bmfm_atomic_commit(const char *tmp, const char *final_path);
/* Remove the temporary file (after an error). */
void bmfm_atomic_abort(const char *tmp);

/* Read a whole file (transparently gunzipped when it ends in .gz) into a
 * NUL-terminated buffer. */
bmfm_status bmfm_read_file(const char *path, char **data, size_t *len);
/* Write a string as the whole content of path, atomically. */
bmfm_status bmfm_write_text_atomic(const char *path, const char *text);
/* Copy a file byte for byte (dst is written atomically). */
bmfm_status bmfm_copy_file(const char *src, const char *dst);
int bmfm_file_exists(const char *path);
int bmfm_is_directory(const char *path);
/* Join a directory and a name into out (size n). */
void bmfm_path_join(char *out, size_t n, const char *dir, const char *name);

#endif
