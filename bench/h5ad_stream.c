/* h5ad_stream.c - streaming throughput and memory of the h5ad reader.
 *
 * usage: build/bench/h5ad_stream FILE [MATRIX] [CHUNK_ROWS]
 *
 * Reads all rows of the matrix (default X) in chunks of CHUNK_ROWS (default
 * 1024) through bmfm_dataset_read_rows and prints one line: shape, encoding,
 * stored values, the size of the whole matrix as CSR in memory (what a
 * load-it-all reader would hold), wall time, CPU time (user + system, the
 * steadier figure on a shared machine), nonzeros/s and cells/s (by wall
 * time), and the process's peak RSS (getrusage ru_maxrss). Run one file per process: peak
 * RSS is a process-wide high-water mark.
 */
#include "io/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [MATRIX] [CHUNK_ROWS]\n", argv[0]);
        return 2;
    }
    const char *matrix = argc > 2 ? argv[2] : "X";
    int64_t chunk = argc > 3 ? atoll(argv[3]) : 1024;
    bmfm_dataset *ds;
    if (chunk < 1 || bmfm_dataset_open(argv[1], matrix, &ds) != BMFM_OK) {
        fprintf(stderr, "error: %s\n", chunk < 1 ? "CHUNK_ROWS must be >= 1" : bmfm_error_message());
        return 2;
    }
    const bmfm_matrix_info *info = bmfm_dataset_info(ds);
    static const char *const enc[] = {"csr", "csc", "dense", "mtx"};
    bmfm_csr m = {0};
    int64_t nnz = 0;
    double checksum = 0, t0 = now();
    for (int64_t b = 0; b < info->n_obs; b += chunk) {
        int64_t e = b + chunk < info->n_obs ? b + chunk : info->n_obs;
        if (bmfm_dataset_read_rows(ds, b, e, &m) != BMFM_OK) {
            fprintf(stderr, "error: %s\n", bmfm_error_message());
            return 2;
        }
        nnz += m.indptr[m.nrows];
        for (int64_t k = 0; k < m.indptr[m.nrows]; k++) checksum += m.data[k];
    }
    double secs = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
                 1e-6 * (double)ru.ru_stime.tv_usec;
    double csr_mb = ((double)nnz * 8.0 + (double)(info->n_obs + 1) * 8.0) / 1048576.0;
    double rss_mb = (double)ru.ru_maxrss / 1024.0;
    printf("%s %s: %lld x %lld %s %s, nnz %lld, CSR size %.1f MB, chunk %lld rows: %.3f s (cpu %.3f s), %.1f M nnz/s, "
           "%.0f cells/s, peak RSS %.1f MB (%.1f%% of CSR size), checksum %.6g\n",
           argv[1], info->location, (long long)info->n_obs, (long long)info->n_vars, enc[info->encoding],
           info->dtype, (long long)nnz, csr_mb, (long long)chunk, secs, cpu, (double)nnz / secs / 1e6,
           (double)info->n_obs / secs, rss_mb, 100.0 * rss_mb / csr_mb, checksum);
    bmfm_csr_free(&m);
    bmfm_dataset_close(ds);
    return 0;
}
