/* pca.c - normalize_total + log1p + HVG + scale + exact PCA (see pca.h).
 *
 * Numerics follow scanpy so that HVG selection matches at the cut-off: the
 * normalised value is float32(x / (total / median_total)), log1p and expm1 in
 * float32 (numpy's float32 ufuncs call the same libm functions), gene means
 * and variances accumulated in double as scanpy's _get_mean_var
 * (var = (E[x^2] - E[x]^2) * n / (n - 1)).
 */
#include "eval/pca.h"

#include "base/alloc.h"
#include "base/log.h"
#include "base/progress.h"
#include "base/rng.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK from OpenBLAS (no lapacke.h on the system); gfortran hidden string lengths. */
extern void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a,
                    const int *lda, const double *vl, const double *vu, const int *il, const int *iu,
                    const double *abstol, int *m, double *w, double *z, const int *ldz, int *isuppz,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t,
                    size_t, size_t);
extern void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau, double *work,
                    const int *lwork, int *info);
extern void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda, const double *tau,
                    double *work, const int *lwork, int *info);

void bmfm_baseline_options_default(bmfm_baseline_options *o) {
    memset(o, 0, sizeof *o);
    o->n_hvg = 3000;
    o->flavor = BMFM_HVG_SEURAT;
    o->n_comps = 50;
    o->max_value = 10;
    o->input = BMFM_BASELINE_INPUT_AUTO;
    o->chunk_rows = 2048;
}

void bmfm_pca_result_free(bmfm_pca_result *r) {
    free(r->X_pca);
    free(r->variance);
    free(r->variance_ratio);
    free(r->components);
    free(r->genes);
    memset(r, 0, sizeof *r);
}

static void step(const bmfm_baseline_options *o, const char *s) {
    if (o && o->progress) o->progress(s, o->progress_ctx);
}

/* Top-k eigenpairs of the symmetric N x N matrix A (row-major, upper part
 * filled; destroyed). w: k values, descending; z: k x N row-major vectors. */
static bmfm_status top_eigen(double *A, int N, int k, double *w, double *z) {
    int il = N - k + 1, iu = N, m = 0, info = 0, lwork = -1, liwork = -1, iwq = 0;
    double vl = 0, vu = 0, abstol = 0, wq = 0;
    bmfm_status st = BMFM_OK;
    double *wall = bmfm_malloc((size_t)N * sizeof *wall), *zc = bmfm_malloc((size_t)N * k * sizeof *zc);
    int *isuppz = bmfm_malloc((size_t)2 * k * sizeof *isuppz);
    double *work = NULL;
    int *iwork = NULL;
    if (!wall || !zc || !isuppz) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    /* row-major upper == column-major lower */
    dsyevr_("V", "I", "L", &N, A, &N, &vl, &vu, &il, &iu, &abstol, &m, wall, zc, &N, isuppz, &wq, &lwork,
            &iwq, &liwork, &info, 1, 1, 1);
    lwork = (int)wq;
    liwork = iwq;
    work = bmfm_malloc((size_t)lwork * sizeof *work);
    iwork = bmfm_malloc((size_t)liwork * sizeof *iwork);
    if (!work || !iwork) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    dsyevr_("V", "I", "L", &N, A, &N, &vl, &vu, &il, &iu, &abstol, &m, wall, zc, &N, isuppz, work, &lwork,
            iwork, &liwork, &info, 1, 1, 1);
    if (info != 0 || m != k) {
        st = bmfm_error_set(BMFM_E_INTERNAL, "pca: LAPACK dsyevr failed (info %d, %d of %d eigenpairs)", info, m, k);
        goto done;
    }
    for (int i = 0; i < k; i++) { /* ascending -> descending */
        w[i] = wall[k - 1 - i];
        memcpy(z + (size_t)i * N, zc + (size_t)(k - 1 - i) * N, (size_t)N * sizeof *z);
    }
done:
    free(wall);
    free(zc);
    free(isuppz);
    free(work);
    free(iwork);
    return st;
}

/* Orthonormalise the columns of the column-major N x m matrix Y (QR). */
static bmfm_status orthonormalise(double *Y, int N, int m) {
    int info = 0, lwork = -1;
    double q = 0;
    double *tau = bmfm_malloc((size_t)m * sizeof *tau);
    if (!tau) return BMFM_E_NOMEM;
    dgeqrf_(&N, &m, Y, &N, tau, &q, &lwork, &info);
    lwork = (int)q > m * 64 ? (int)q : m * 64;
    double *work = bmfm_malloc((size_t)lwork * sizeof *work);
    if (!work) {
        free(tau);
        return BMFM_E_NOMEM;
    }
    dgeqrf_(&N, &m, Y, &N, tau, work, &lwork, &info);
    if (!info) dorgqr_(&N, &m, &m, Y, &N, tau, work, &lwork, &info);
    free(work);
    free(tau);
    return info ? bmfm_error_set(BMFM_E_INTERNAL, "pca: LAPACK QR failed (info %d)", info) : BMFM_OK;
}

/* Top-k eigenpairs of the N x N PSD matrix A (row-major upper = column-major
 * lower; kept) by block Krylov iteration (Musco & Musco 2015): seeded Gaussian
 * start of l columns, `depth` blocks A G, A^2 G, ... each orthonormalised, one
 * QR of the whole basis, Rayleigh-Ritz. All BLAS3: on 3000 genes about 2.5x
 * faster than tridiagonalising A with dsyevr. *ok = 1 only when every Ritz
 * pair has ||A v - w v|| <= tol * w_1 (then scores match dsyevr's to ~1e-7);
 * otherwise the caller falls back to dsyevr. Skipped (ok = 0) unless the
 * basis (l * depth) is at most half of N. */
static bmfm_status top_eigen_krylov(const double *A, int N, int k, int l, int depth, double tol, double *w,
                                    double *z, int *ok) {
    int m = l * depth;
    *ok = 0;
    if (m > N / 2) return BMFM_OK;
    bmfm_status st = BMFM_OK;
    double *K = bmfm_malloc((size_t)N * m * sizeof *K), *AK = bmfm_malloc((size_t)N * m * sizeof *AK);
    double *T = bmfm_malloc((size_t)m * m * sizeof *T), *zt = bmfm_malloc((size_t)k * m * sizeof *zt);
    if (!K || !AK || !T || !zt) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    bmfm_rng r;
    bmfm_rng_seed(&r, 0x9ca, 0);
    for (size_t i = 0; i < (size_t)N * l; i++) AK[i] = bmfm_rng_normal(&r);
    for (int j = 0; j < depth; j++) {
        const double *prev = j ? K + (size_t)(j - 1) * N * l : AK;
        cblas_dsymm(CblasColMajor, CblasLeft, CblasLower, N, l, 1.0, A, N, prev, N, 0.0, K + (size_t)j * N * l, N);
        if ((st = orthonormalise(K + (size_t)j * N * l, N, l))) goto done;
    }
    if ((st = orthonormalise(K, N, m))) goto done;
    cblas_dsymm(CblasColMajor, CblasLeft, CblasLower, N, m, 1.0, A, N, K, N, 0.0, AK, N);
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, m, m, N, 1.0, K, N, AK, N, 0.0, T, m);
    if ((st = top_eigen(T, m, k, w, zt))) goto done;
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, N, k, m, 1.0, K, N, zt, m, 0.0, z, N);
    cblas_dsymm(CblasColMajor, CblasLeft, CblasLower, N, k, 1.0, A, N, z, N, 0.0, AK, N);
    double worst = 0;
    for (int i = 0; i < k; i++) {
        double rr = 0;
        for (int j = 0; j < N; j++) {
            double d = AK[(size_t)i * N + j] - w[i] * z[(size_t)i * N + j];
            rr += d * d;
        }
        worst = fmax(worst, sqrt(rr));
    }
    *ok = worst <= tol * fabs(w[0]);
    bmfm_log_debug("pca: block Krylov N %d k %d l %d depth %d: worst residual %.3g of w1 %.3g (%s)", N, k, l, depth,
                   worst, w[0], *ok ? "accepted" : "falling back");
done:
    free(K);
    free(AK);
    free(T);
    free(zt);
    return st;
}

/* Upper triangle of X^T X - n mu mu^T for mostly-zero X (log1p counts
 * without scaling): outer products of each cell's nonzeros only, about
 * (nnz per cell)^2 / 2 updates instead of d^2 / 2. Rows of A are cut into
 * stripes (a few MB, cache resident) handed to threads; each entry is summed
 * over cells in cell order by one thread, so the result does not depend on
 * the thread count. All in double (products of two floats are exact). */
#define PCA_STRIPE 64
#define PCA_SPARSE_FRACTION 0.3 /* below it the sparse covariance wins (dense dsyrk at ~25 GFLOP/s) */
static bmfm_status sparse_cov(const float *X, int64_t n, int64_t d, const double *mu, double *A) {
    int64_t nnz = 0;
    for (int64_t i = 0; i < n * d; i++) nnz += X[i] != 0;
    int64_t *ptr = bmfm_malloc((size_t)(n + 1) * sizeof *ptr);
    int32_t *idx = bmfm_malloc((size_t)(nnz ? nnz : 1) * sizeof *idx);
    double *val = bmfm_malloc((size_t)(nnz ? nnz : 1) * sizeof *val);
    if (!ptr || !idx || !val) {
        free(ptr);
        free(idx);
        free(val);
        return BMFM_E_NOMEM;
    }
    ptr[0] = 0;
    for (int64_t i = 0, p = 0; i < n; i++) {
        for (int64_t j = 0; j < d; j++)
            if (X[i * d + j] != 0) idx[p] = (int32_t)j, val[p++] = X[i * d + j];
        ptr[i + 1] = p;
    }
    int64_t nstripe = (d + PCA_STRIPE - 1) / PCA_STRIPE;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t s = 0; s < nstripe; s++) {
        int32_t s0 = (int32_t)(s * PCA_STRIPE), s1 = (int32_t)(s0 + PCA_STRIPE < d ? s0 + PCA_STRIPE : d);
        for (int64_t i = 0; i < n; i++) {
            int64_t lo = ptr[i], hi = ptr[i + 1], end = hi;
            while (lo < hi) { /* first nonzero with index >= s0 */
                int64_t mid = lo + (hi - lo) / 2;
                if (idx[mid] < s0) lo = mid + 1;
                else hi = mid;
            }
            for (int64_t p = lo; p < end && idx[p] < s1; p++) {
                double va = val[p];
                double *row = A + (int64_t)idx[p] * d;
#pragma omp simd
                for (int64_t q = p; q < end; q++) row[idx[q]] += va * val[q];
            }
        }
        for (int64_t a = s0; a < s1; a++)
            for (int64_t b = a; b < d; b++) A[a * d + b] -= (double)n * mu[a] * mu[b];
    }
    free(ptr);
    free(idx);
    free(val);
    return BMFM_OK;
}

bmfm_status bmfm_pca_dense(float *X, int64_t n, int64_t d, int n_comps, bmfm_pca_result *out) {
    memset(out, 0, sizeof *out);
    int64_t mind = n < d ? n : d;
    if (mind < 2) return bmfm_error_set(BMFM_E_INPUT, "pca: need >= 2 cells and >= 2 genes (have %lld x %lld)",
                                        (long long)n, (long long)d);
    int k = n_comps;
    if (k > mind - 1) { /* scanpy/arpack: n_comps < min(n, d) */
        k = (int)(mind - 1);
        snprintf(out->note, sizeof out->note, "n_comps lowered from %d to %d (min(cells, genes) - 1)", n_comps, k);
    }
    if (k < 1) return bmfm_error_set(BMFM_E_INPUT, "pca: n_comps must be >= 1");
    bmfm_status st = BMFM_OK;
    enum { B = 2048 }; /* rows per dsyrk update: fewer passes over the d x d result */
    double t_start = bmfm_now_seconds();
    int gram = n < d, sparse = 0;
    int64_t N = gram ? n : d;
    double *mu = bmfm_calloc((size_t)d, sizeof *mu);
    double *A = bmfm_calloc((size_t)N * N, sizeof *A);
    double *buf = bmfm_malloc((size_t)(gram ? n : B) * d * sizeof *buf);
    double *w = bmfm_malloc((size_t)k * sizeof *w), *z = bmfm_malloc((size_t)k * N * sizeof *z);
    double *scores = bmfm_malloc((size_t)B * k * sizeof *scores);
    out->X_pca = bmfm_malloc((size_t)n * k * sizeof *out->X_pca);
    out->variance = bmfm_malloc((size_t)k * sizeof(double));
    out->variance_ratio = bmfm_malloc((size_t)k * sizeof(double));
    out->components = bmfm_malloc((size_t)k * d * sizeof(double));
    if (!mu || !A || !buf || !w || !z || !scores || !out->X_pca || !out->variance || !out->variance_ratio ||
        !out->components) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) mu[j] += X[i * d + j];
    for (int64_t j = 0; j < d; j++) mu[j] /= (double)n;
    double total_ss = 0;
    if (gram) {
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < d; j++) buf[i * d + j] = X[i * d + j] - mu[j];
        total_ss = cblas_ddot((int)(n * d), buf, 1, buf, 1);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)d, 1.0, buf, (int)d, 0.0, A, (int)n);
    } else {
        int64_t nz = 0;
        for (int64_t i = 0; i < n * d; i++) nz += X[i] != 0;
        sparse = nz < PCA_SPARSE_FRACTION * (double)n * d;
        for (int64_t r0 = 0; r0 < n; r0 += B) {
            int64_t br = n - r0 < B ? n - r0 : B;
            for (int64_t i = 0; i < br; i++)
                for (int64_t j = 0; j < d; j++) buf[i * d + j] = X[(r0 + i) * d + j] - mu[j];
            total_ss += cblas_ddot((int)(br * d), buf, 1, buf, 1);
            if (!sparse)
                cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)br, 1.0, buf, (int)d, 1.0, A, (int)d);
        }
        if (sparse && (st = sparse_cov(X, n, d, mu, A))) goto done;
    }
    /* block Krylov first (exact to the residual bound, checked), dsyevr when
     * it does not converge (flat spectra, e.g. scaled data) or N is small */
    double t_cov = bmfm_now_seconds();
    int ok = 0;
    if ((st = top_eigen_krylov(A, (int)N, k, 2 * k, 10, 1e-8, w, z, &ok))) goto done;
    if (!ok && (st = top_eigen(A, (int)N, k, w, z))) goto done;
    double t_eig = bmfm_now_seconds();
    for (int c = 0; c < k; c++) {
        double lam = w[c] > 0 ? w[c] : 0;
        out->variance[c] = lam / (double)(n - 1);
        out->variance_ratio[c] = total_ss > 0 ? lam / total_ss : 0;
    }
    if (gram) {
        /* scores = U sqrt(lam); components = Xc^T U / sqrt(lam) */
        for (int64_t i = 0; i < n; i++)
            for (int c = 0; c < k; c++) out->X_pca[i * k + c] = (float)(z[(size_t)c * n + i] * sqrt(fmax(w[c], 0)));
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, (int)d, (int)n, 1.0, z, (int)n, buf, (int)d, 0.0,
                    out->components, (int)d);
        for (int c = 0; c < k; c++) {
            double s = w[c] > 0 ? 1.0 / sqrt(w[c]) : 0;
            cblas_dscal((int)d, s, out->components + (size_t)c * d, 1);
        }
    } else {
        memcpy(out->components, z, (size_t)k * d * sizeof *z);
        for (int64_t r0 = 0; r0 < n; r0 += B) {
            int64_t br = n - r0 < B ? n - r0 : B;
            for (int64_t i = 0; i < br; i++)
                for (int64_t j = 0; j < d; j++) buf[i * d + j] = X[(r0 + i) * d + j] - mu[j];
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)br, k, (int)d, 1.0, buf, (int)d, z, (int)d, 0.0,
                        scores, k);
            for (int64_t i = 0; i < br * k; i++) out->X_pca[r0 * k + i] = (float)scores[i];
        }
    }
    bmfm_log_debug("pca: %s%s %lld x %lld: covariance %.2fs, eigen %.2fs (%s), scores %.2fs", sparse ? "sparse " : "",
                   gram ? "gram" : "covariance",
                   (long long)n, (long long)d, t_cov - t_start, t_eig - t_cov, ok ? "block Krylov" : "dsyevr",
                   bmfm_now_seconds() - t_eig);
    /* svd_flip (u-based): the largest |score| of each component is positive */
    for (int c = 0; c < k; c++) {
        int64_t arg = 0;
        float best = -1;
        for (int64_t i = 0; i < n; i++) {
            float a = fabsf(out->X_pca[i * k + c]);
            if (a > best) best = a, arg = i;
        }
        if (out->X_pca[arg * k + c] < 0) {
            for (int64_t i = 0; i < n; i++) out->X_pca[i * k + c] = -out->X_pca[i * k + c];
            for (int64_t j = 0; j < d; j++) out->components[(size_t)c * d + j] *= -1;
        }
    }
    out->n_obs = n;
    out->n_comps = k;
    out->n_genes = d;
done:
    free(mu);
    free(A);
    free(buf);
    free(w);
    free(z);
    free(scores);
    if (st) bmfm_pca_result_free(out);
    return st;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One streamed pass over the rows, on log values (log1p of x / total[i] when
 * total is given, else x as is): with gsum/gsq accumulate per-gene sums of
 * expm1(value) and its square; with col/X scatter the selected genes
 * (col[g] >= 0) into the dense n x nh matrix X. */
static bmfm_status stream_pass(bmfm_rows_fn read, void *ctx, int64_t n_obs, int64_t chunk, const double *total,
                               double *gsum, double *gsq, const int32_t *col, float *X, int64_t nh) {
    const bmfm_csr *b;
    for (int64_t r0 = 0; r0 < n_obs; r0 += chunk) {
        int64_t r1 = r0 + chunk < n_obs ? r0 + chunk : n_obs;
        BMFM_TRY(read(ctx, r0, r1, &b));
        for (int64_t i = 0; i < r1 - r0; i++) {
            double f = total ? total[r0 + i] : 1;
            for (int64_t p = b->indptr[i]; p < b->indptr[i + 1]; p++) {
                int32_t g = b->indices[p];
                float v = total ? log1pf((float)(b->data[p] / f)) : b->data[p];
                if (gsum) {
                    double e = expm1f(v);
                    gsum[g] += e;
                    gsq[g] += e * e;
                } else if (col[g] >= 0) {
                    X[(r0 + i) * nh + col[g]] = v;
                }
            }
        }
    }
    return BMFM_OK;
}

bmfm_status bmfm_baseline_pca(int64_t n_obs, int64_t n_vars, bmfm_rows_fn read, void *ctx,
                              const bmfm_baseline_options *o, bmfm_pca_result *out) {
    memset(out, 0, sizeof *out);
    if (n_obs < 2 || n_vars < 2)
        return bmfm_error_set(BMFM_E_INPUT, "baseline: need >= 2 cells and >= 2 genes (have %lld x %lld)",
                              (long long)n_obs, (long long)n_vars);
    bmfm_status st = BMFM_OK;
    int64_t chunk = o->chunk_rows > 0 ? o->chunk_rows : 2048;
    double *total = bmfm_malloc((size_t)n_obs * sizeof *total), *tot_sorted = NULL;
    double *gsum = bmfm_calloc((size_t)n_vars, sizeof *gsum), *gsq = bmfm_calloc((size_t)n_vars, sizeof *gsq);
    uint8_t *sel = bmfm_calloc((size_t)n_vars, 1);
    int32_t *col = bmfm_malloc((size_t)n_vars * sizeof *col);
    float *X = NULL;
    char note[400] = "";
    int64_t nh = 0;
    if (!total || !gsum || !gsq || !sel || !col) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    const bmfm_csr *b;
    /* pass 1: library sizes, and whether the values are counts */
    int counts = o->input == BMFM_BASELINE_INPUT_COUNTS;
    if (o->input != BMFM_BASELINE_INPUT_LOG) {
        step(o, "library sizes");
        int integral = 1;
        for (int64_t r0 = 0; r0 < n_obs; r0 += chunk) {
            int64_t r1 = r0 + chunk < n_obs ? r0 + chunk : n_obs;
            if ((st = read(ctx, r0, r1, &b))) goto done;
            for (int64_t i = 0; i < r1 - r0; i++) {
                double s = 0;
                for (int64_t p = b->indptr[i]; p < b->indptr[i + 1]; p++) {
                    float v = b->data[p];
                    s += v;
                    if (v < 0 || v != floorf(v)) integral = 0;
                }
                total[r0 + i] = s;
            }
        }
        if (o->input == BMFM_BASELINE_INPUT_AUTO) {
            counts = integral;
            if (!counts)
                snprintf(note, sizeof note,
                         "input values are not non-negative integers: taken as already log-normalised, "
                         "normalize_total and log1p skipped");
        }
    }
    if (counts) {
        tot_sorted = bmfm_malloc((size_t)n_obs * sizeof *tot_sorted);
        if (!tot_sorted) {
            st = BMFM_E_NOMEM;
            goto done;
        }
        int64_t np = 0;
        for (int64_t i = 0; i < n_obs; i++)
            if (total[i] > 0) tot_sorted[np++] = total[i];
        if (!np) {
            st = bmfm_error_set(BMFM_E_INPUT, "baseline: every cell has zero counts");
            goto done;
        }
        qsort(tot_sorted, (size_t)np, sizeof *tot_sorted, cmp_double);
        out->target_sum = np % 2 ? tot_sorted[np / 2] : 0.5 * (tot_sorted[np / 2 - 1] + tot_sorted[np / 2]);
        out->normalized = 1;
        for (int64_t i = 0; i < n_obs; i++) /* scanpy: zero totals divide by 1 */
            total[i] = (total[i] == 0 ? 1.0 : total[i]) / out->target_sum;
    }
    /* pass 2: gene statistics of expm1(log data) */
    int64_t want = o->n_hvg;
    int all_genes = want <= 0;
    if (!all_genes) {
        step(o, "gene statistics");
        if ((st = stream_pass(read, ctx, n_obs, chunk, counts ? total : NULL, gsum, gsq, NULL, NULL, 0))) goto done;
        for (int64_t g = 0; g < n_vars; g++) {
            double m = gsum[g] / n_obs, msq = gsq[g] / n_obs;
            gsum[g] = m;
            gsq[g] = (msq - m * m) * ((double)n_obs / (double)(n_obs - 1));
        }
        step(o, "highly variable genes");
        if ((st = bmfm_hvg_select(gsum, gsq, n_vars, want, o->flavor, NULL, sel, &nh))) goto done;
    } else {
        memset(sel, 1, (size_t)n_vars);
        nh = n_vars;
    }
    out->genes = bmfm_malloc((size_t)nh * sizeof *out->genes);
    X = bmfm_calloc((size_t)n_obs * nh, sizeof *X);
    if (!out->genes || !X) {
        st = bmfm_error_set(BMFM_E_NOMEM, "baseline: no memory for %lld x %lld HVG matrix", (long long)n_obs,
                            (long long)nh);
        goto done;
    }
    int64_t c = 0;
    for (int64_t g = 0; g < n_vars; g++) {
        col[g] = sel[g] ? (int32_t)c : -1;
        if (sel[g]) out->genes[c++] = (int32_t)g;
    }
    /* pass 3: the selected genes, dense */
    step(o, "HVG matrix");
    if ((st = stream_pass(read, ctx, n_obs, chunk, counts ? total : NULL, NULL, NULL, col, X, nh))) goto done;
    if (o->scale) { /* sc.pp.scale: ddof 1, zero std -> 1, clip above max_value */
        step(o, "scale");
        for (int64_t j = 0; j < nh; j++) {
            double m = 0, ss = 0;
            for (int64_t i = 0; i < n_obs; i++) m += X[i * nh + j];
            m /= n_obs;
            for (int64_t i = 0; i < n_obs; i++) ss += (X[i * nh + j] - m) * (X[i * nh + j] - m);
            double sd = sqrt(ss / (n_obs - 1));
            if (sd == 0) sd = 1;
            for (int64_t i = 0; i < n_obs; i++) {
                float v = (float)((X[i * nh + j] - m) / sd);
                X[i * nh + j] = o->max_value > 0 && v > o->max_value ? (float)o->max_value : v;
            }
        }
    }
    step(o, "PCA");
    int32_t *genes = out->genes;
    double tsum = out->target_sum;
    int normalized = out->normalized;
    out->genes = NULL;
    st = bmfm_pca_dense(X, n_obs, nh, o->n_comps, out);
    out->genes = genes;
    out->target_sum = tsum;
    out->normalized = normalized;
    if (st) goto done;
    if (note[0]) {
        size_t l = strlen(out->note);
        snprintf(out->note + l, sizeof out->note - l, "%s%s", l ? "; " : "", note);
    }
done:
    free(total);
    free(tot_sorted);
    free(gsum);
    free(gsq);
    free(sel);
    free(col);
    free(X);
    if (st) bmfm_pca_result_free(out);
    return st;
}
