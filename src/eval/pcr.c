/* pcr.c - PCA by covariance eigen-decomposition and the PCR batch score.
 *
 * OpenBLAS ships LAPACK but Debian installs no lapacke.h for it, so dsyevr is
 * declared here with the gfortran calling convention (hidden string lengths).
 */
#include "eval/pcr.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/blas_threads.h"
#include "eval/knn.h"

extern void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a, const int *lda,
                    const double *vl, const double *vu, const int *il, const int *iu, const double *abstol, int *m,
                    double *w, double *z, const int *ldz, int *isuppz, double *work, const int *lwork, int *iwork,
                    const int *liwork, int *info, size_t, size_t, size_t);

bmfm_status bmfm_pca_eig(const float *X, int64_t n, int64_t d, int n_comps, double *var, double *axes) {
    bmfm_status st = BMFM_OK;
    double *xc = NULL, *cov = NULL, *w = NULL, *z = NULL, *work = NULL;
    int *isuppz = NULL, *iwork = NULL;
    if (n < 2 || d < 1 || n_comps < 1 || n_comps > d || d > 100000)
        return bmfm_error_set(BMFM_E_INPUT, "pca: need n >= 2 and 1 <= n_comps (%d) <= d (%lld)", n_comps,
                              (long long)d);
    xc = bmfm_malloc((size_t)n * d * sizeof *xc);
    cov = bmfm_calloc((size_t)d * d, sizeof *cov);
    w = bmfm_malloc((size_t)d * sizeof *w);
    z = bmfm_malloc((size_t)d * n_comps * sizeof *z);
    isuppz = bmfm_malloc((size_t)2 * n_comps * sizeof *isuppz);
    if (!xc || !cov || !w || !z || !isuppz) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    bmfm_center_f64(X, n, d, xc);
    /* OpenBLAS blocks dsyrk by its thread count, which moved PCR in the last
     * bit between OPENBLAS_NUM_THREADS=1 and 2: single-threaded BLAS here
     * (d is an embedding width, the work is small) */
    bmfm_blas_threads_begin();
    /* upper triangle of Xc^T Xc in row-major = lower in column-major ("L" for LAPACK) */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)n, 1.0 / (double)(n - 1), xc, (int)d, 0.0, cov,
                (int)d);
    int N = (int)d, il = (int)d - n_comps + 1, iu = (int)d, m = 0, info = 0, lwork = -1, liwork = -1, iwq = 0;
    double vl = 0, vu = 0, abstol = 0, wq = 0;
    dsyevr_("V", "I", "L", &N, cov, &N, &vl, &vu, &il, &iu, &abstol, &m, w, z, &N, isuppz, &wq, &lwork, &iwq,
            &liwork, &info, 1, 1, 1);
    lwork = (int)wq;
    liwork = iwq;
    work = bmfm_malloc((size_t)(lwork > 1 ? lwork : 1) * sizeof *work);
    iwork = bmfm_malloc((size_t)(liwork > 1 ? liwork : 1) * sizeof *iwork);
    if (!work || !iwork) {
        bmfm_blas_threads_end();
        st = BMFM_E_NOMEM;
        goto done;
    }
    dsyevr_("V", "I", "L", &N, cov, &N, &vl, &vu, &il, &iu, &abstol, &m, w, z, &N, isuppz, work, &lwork, iwork,
            &liwork, &info, 1, 1, 1);
    bmfm_blas_threads_end();
    if (info != 0 || m != n_comps) {
        st = bmfm_error_set(BMFM_E_INTERNAL, "pca: dsyevr failed (info=%d, %d of %d eigenpairs)", info, m, n_comps);
        goto done;
    }
    /* ascending -> descending; z is column-major d x m */
    for (int c = 0; c < n_comps; c++) {
        int src = n_comps - 1 - c;
        var[c] = w[src] > 0 ? w[src] : 0.0;
        if (axes)
            for (int64_t q = 0; q < d; q++) axes[c * d + q] = z[(int64_t)src * d + q];
    }
done:
    free(xc);
    free(cov);
    free(w);
    free(z);
    free(work);
    free(isuppz);
    free(iwork);
    return st;
}

bmfm_status bmfm_pcr(const float *X, int64_t n, int64_t d, const int32_t *batches, int64_t n_batches, int n_comps,
                     double *pcr) {
    bmfm_status st = BMFM_OK;
    *pcr = NAN;
    int64_t mn = n < d ? n : d;
    if (n_comps <= 0 || n_comps > mn) n_comps = (int)mn;
    double *var = bmfm_malloc((size_t)n_comps * sizeof *var);
    double *axes = bmfm_malloc((size_t)n_comps * d * sizeof *axes);
    double *bmean = bmfm_calloc((size_t)n_batches * d, sizeof *bmean);
    double *mu = bmfm_calloc((size_t)d, sizeof *mu);
    int64_t *bcnt = bmfm_calloc((size_t)n_batches + 1, sizeof *bcnt);
    if (!var || !axes || !bmean || !mu || !bcnt) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    if ((st = bmfm_pca_eig(X, n, d, n_comps, var, axes))) goto done;
    for (int64_t i = 0; i < n; i++) {
        bcnt[batches[i]]++;
        for (int64_t c = 0; c < d; c++) {
            bmean[(int64_t)batches[i] * d + c] += X[i * d + c];
            mu[c] += X[i * d + c];
        }
    }
    for (int64_t c = 0; c < d; c++) mu[c] /= (double)n;
    for (int64_t b = 0; b < n_batches; b++)
        for (int64_t c = 0; c < d; c++)
            if (bcnt[b]) bmean[b * d + c] = bmean[b * d + c] / (double)bcnt[b] - mu[c];
    double num = 0, den = 0;
    for (int p = 0; p < n_comps; p++) {
        double ssb = 0, sst = var[p] * (double)(n - 1);
        for (int64_t b = 0; b < n_batches; b++) {
            if (!bcnt[b]) continue;
            double proj = 0;
            for (int64_t c = 0; c < d; c++) proj += bmean[b * d + c] * axes[p * d + c];
            ssb += (double)bcnt[b] * proj * proj;
        }
        double r2 = sst > 0 ? ssb / sst : 0.0;
        if (r2 < 0) r2 = 0;
        if (r2 > 1) r2 = 1;
        num += r2 * var[p];
        den += var[p];
    }
    *pcr = den > 0 ? num / den : NAN;
done:
    free(var);
    free(axes);
    free(bmean);
    free(mu);
    free(bcnt);
    return st;
}

double bmfm_pcr_comparison(double pcr_pre, double pcr_post) {
    if (!(pcr_pre > 0) || isnan(pcr_post)) return NAN;
    double s = (pcr_pre - pcr_post) / pcr_pre;
    return s < 0 ? 0 : s;
}
