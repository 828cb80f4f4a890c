/* test_eval_metrics.c - the scib metric engine against tests/ref/metrics_oracle.py
 * (sklearn NMI/ARI/silhouette, numpy re-implementations of the UMAP
 * connectivities, LISI, kBET and PCR, leidenalg for the Leiden scan) on a
 * generated blob fixture (with NaN rows, a missing label, a singleton label,
 * an isolated label), overlapping blobs (a non-trivial Leiden optimum) and on the real harmony cell-line embedding.
 * Deterministic metrics within 1e-6, clustering scores within 0.02.
 */
#include "test_util.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval/cluster_metrics.h"
#include "eval/connectivity.h"
#include "eval/graph_metrics.h"
#include "eval/kbet.h"
#include "eval/knn.h"
#include "eval/leiden.h"
#include "eval/lisi.h"
#include "eval/pcr.h"
#include "eval/scib.h"
#include "eval/silhouette.h"
#include "nn/nn.h"

static char g_dir[1024];
static int g_have_harmony;

static void *load(const char *fx, const char *suffix, size_t elem, int64_t *count) {
    char path[1400];
    snprintf(path, sizeof path, "%s/%s_%s", g_dir, fx, suffix);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc((size_t)sz + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    if (count) *count = sz / (int64_t)elem;
    return p;
}

static double ref(const char *fx, const char *key) {
    char path[1400], k[128];
    double v;
    snprintf(path, sizeof path, "%s/%s_ref.txt", g_dir, fx);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fscanf(f, "%127s %lf", k, &v) == 2)
        if (!strcmp(k, key)) {
            fclose(f);
            return v;
        }
    fclose(f);
    fail_msg("%s: no key %s", path, key);
    return NAN;
}

static void near(double got, double want, double tol, const char *what) {
    if (isnan(want) && isnan(got)) return;
    if (!(fabs(got - want) <= tol)) fail_msg("%s: got %.10g, oracle %.10g (tol %g)", what, got, want, tol);
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "%s", tu_scratch("oracle"));
    const char *h = tu_data("embeddings/harmony_cell_lines_scaled_pcs_2370.csv.gz");
    FILE *f = fopen(h, "rb");
    g_have_harmony = f != NULL;
    if (f) fclose(f);
    int rc = g_have_harmony ? tu_python("metrics_oracle.py %s --harmony %s", g_dir, h)
                            : tu_python("metrics_oracle.py %s", g_dir);
    if (!g_have_harmony) fprintf(stderr, "note: %s missing, real-data checks skipped\n", h);
    return rc == 0 ? 0 : -1;
}

typedef struct clean {
    float *X;
    int32_t *lab, *bat;
    int64_t n, d;
} clean;

static void load_clean(const char *fx, clean *c) {
    int64_t nx;
    c->lab = load(fx, "clean_lab.i32", 4, &c->n);
    c->bat = load(fx, "clean_bat.i32", 4, NULL);
    c->X = load(fx, "clean_X.f32", 4, &nx);
    assert_non_null(c->X);
    c->d = nx / c->n;
}

static void free_clean(clean *c) {
    free(c->X);
    free(c->lab);
    free(c->bat);
}

static int32_t max_code(const int32_t *a, int64_t n) {
    int32_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (a[i] > m) m = a[i];
    return m;
}

static void check_knn_and_connectivities(const char *fx) {
    clean c;
    load_clean(fx, &c);
    int32_t *ridx = load(fx, "knn_idx.i32", 4, NULL);
    float *rdist = load(fx, "knn_dist.f32", 4, NULL);
    bmfm_knn g;
    assert_int_equal(bmfm_knn_build(c.X, c.n, c.d, 15, &g), BMFM_OK);
    int64_t bad = 0;
    for (int64_t i = 0; i < c.n * 15; i++) {
        if (g.idx[i] != ridx[i]) bad++;
        near(g.dist[i], rdist[i], 1e-6 * (fabs(rdist[i]) + 1e-30) + 1e-12, "knn distance");
    }
    if (bad) fail_msg("%s: %lld kNN indices differ from numpy brute force", fx, (long long)bad);

    /* connectivities from the same kNN */
    bmfm_wgraph w;
    assert_int_equal(bmfm_connectivity_umap(&g, &w), BMFM_OK);
    int64_t nnz;
    int64_t *rp = load(fx, "conn_indptr.i64", 8, NULL);
    int32_t *ri = load(fx, "conn_indices.i32", 4, &nnz);
    double *rv = load(fx, "conn_data.f64", 8, NULL);
    assert_int_equal(w.nnz, nnz);
    for (int64_t i = 0; i <= c.n; i++) assert_int_equal(w.indptr[i], rp[i]);
    double maxerr = 0;
    for (int64_t t = 0; t < nnz; t++) {
        assert_int_equal(w.indices[t], ri[t]);
        double e = fabs(w.data[t] - rv[t]);
        if (e > maxerr) maxerr = e;
    }
    if (maxerr > 1e-6) fail_msg("%s: connectivities differ by %g", fx, maxerr);

    /* the result must not depend on the thread count */
    omp_set_num_threads(1);
    bmfm_knn g1;
    assert_int_equal(bmfm_knn_build(c.X, c.n, c.d, 15, &g1), BMFM_OK);
    omp_set_num_threads(omp_get_num_procs());
    assert_memory_equal(g.idx, g1.idx, (size_t)c.n * 15 * 4);
    assert_memory_equal(g.dist, g1.dist, (size_t)c.n * 15 * 4);
    bmfm_knn_free(&g1);
    bmfm_knn_free(&g);
    bmfm_wgraph_free(&w);
    free(ridx), free(rdist), free(rp), free(ri), free(rv);
    free_clean(&c);
}

static void test_knn_connectivities_blobs(void **s) {
    (void)s;
    check_knn_and_connectivities("blobs");
}

static void test_knn_connectivities_harmony(void **s) {
    (void)s;
    if (!g_have_harmony) skip();
    check_knn_and_connectivities("harmony");
}

static void check_nmi_ari_silhouette(const char *fx) {
    clean c;
    load_clean(fx, &c);
    int32_t *ca = load(fx, "ca.i32", 4, NULL), *cb = load(fx, "cb.i32", 4, NULL);
    double v;
    assert_int_equal(bmfm_nmi(ca, cb, c.n, &v), BMFM_OK);
    near(v, ref(fx, "nmi_ab"), 1e-9, "nmi(ca, cb)");
    assert_int_equal(bmfm_ari(ca, cb, c.n, &v), BMFM_OK);
    near(v, ref(fx, "ari_ab"), 1e-9, "ari(ca, cb)");
    assert_int_equal(bmfm_nmi(c.lab, cb, c.n, &v), BMFM_OK);
    near(v, ref(fx, "nmi_lb"), 1e-9, "nmi(lab, cb)");
    assert_int_equal(bmfm_ari(cb, c.lab, c.n, &v), BMFM_OK); /* symmetric */
    near(v, ref(fx, "ari_lb"), 1e-9, "ari(cb, lab)");

    double *rs = load(fx, "sil.f64", 8, NULL);
    double *sil = malloc((size_t)c.n * sizeof *sil);
    assert_int_equal(bmfm_silhouette_samples(c.X, c.n, c.d, c.lab, max_code(c.lab, c.n) + 1, sil), BMFM_OK);
    for (int64_t i = 0; i < c.n; i++) near(sil[i], rs[i], 1e-6, "silhouette_samples");
    near(bmfm_asw_label_from_samples(sil, c.n), ref(fx, "asw_label"), 1e-6, "asw_label");
    double *sil1 = malloc((size_t)c.n * sizeof *sil1);
    omp_set_num_threads(1);
    assert_int_equal(bmfm_silhouette_samples(c.X, c.n, c.d, c.lab, max_code(c.lab, c.n) + 1, sil1), BMFM_OK);
    omp_set_num_threads(omp_get_num_procs());
    assert_memory_equal(sil, sil1, (size_t)c.n * sizeof *sil); /* thread count does not matter */
    free(sil1);
    free(sil), free(rs), free(ca), free(cb);
    free_clean(&c);
}

static void test_nmi_ari_silhouette_blobs(void **s) {
    (void)s;
    check_nmi_ari_silhouette("blobs");
}

static void test_nmi_ari_silhouette_harmony(void **s) {
    (void)s;
    if (!g_have_harmony) skip();
    check_nmi_ari_silhouette("harmony");
}

/* Many classes on both sides (contingency table larger than 4 n: the
 * sorted-keys path of cont_build) against NMI and ARI from a dense table
 * computed here. */
static void test_nmi_ari_many_classes(void **s) {
    (void)s;
    enum { N = 2000, CA = 300, CB = 250 };
    int32_t *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    int64_t *tab = calloc((size_t)CA * CB, sizeof *tab), ra[CA] = {0}, rb[CB] = {0};
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        a[i] = (int32_t)(x % CA);
        b[i] = (int32_t)((a[i] * 7 + (x >> 20) % 3) % CB);
        tab[(int64_t)a[i] * CB + b[i]]++, ra[a[i]]++, rb[b[i]]++;
    }
    double mi = 0, ha = 0, hb = 0, sumsq = 0, sa = 0, sb = 0;
    for (int i = 0; i < CA; i++)
        for (int j = 0; j < CB; j++) {
            double c = (double)tab[(int64_t)i * CB + j];
            if (c > 0) mi += c / N * log(c * N / ((double)ra[i] * rb[j]));
            sumsq += c * (c - 1) / 2;
        }
    for (int i = 0; i < CA; i++)
        if (ra[i]) ha -= (double)ra[i] / N * log((double)ra[i] / N), sa += ra[i] * (ra[i] - 1.0) / 2;
    for (int j = 0; j < CB; j++)
        if (rb[j]) hb -= (double)rb[j] / N * log((double)rb[j] / N), sb += rb[j] * (rb[j] - 1.0) / 2;
    double pairs = N * (N - 1.0) / 2, expct = sa * sb / pairs;
    double v;
    assert_int_equal(bmfm_nmi(a, b, N, &v), BMFM_OK);
    near(v, mi / ((ha + hb) / 2), 1e-10, "nmi, many classes");
    assert_int_equal(bmfm_ari(a, b, N, &v), BMFM_OK);
    near(v, (sumsq - expct) / ((sa + sb) / 2 - expct), 1e-10, "ari, many classes");
    free(a), free(b), free(tab);
}

static void test_nmi_ari_edge_cases(void **s) {
    (void)s;
    int32_t a[6] = {0, 0, 1, 1, 2, 2}, b[6] = {5, 5, 3, 3, 9, 9}, one[6] = {0}, u[6] = {0, 1, 2, 3, 4, 5};
    double v;
    bmfm_nmi(a, b, 6, &v);
    near(v, 1.0, 1e-12, "nmi relabelled");
    bmfm_ari(a, b, 6, &v);
    near(v, 1.0, 1e-12, "ari relabelled");
    bmfm_nmi(one, one, 6, &v);
    near(v, 1.0, 0, "nmi one class each (sklearn: 1)");
    bmfm_nmi(one, a, 6, &v);
    near(v, 0.0, 0, "nmi one class vs three (sklearn: 0)");
    bmfm_ari(one, one, 6, &v);
    near(v, 1.0, 0, "ari one class each");
    bmfm_ari(one, u, 6, &v);
    near(v, 0.0, 1e-12, "ari one class vs singletons");
    int32_t neg[2] = {0, -1};
    assert_int_equal(bmfm_nmi(neg, neg, 2, &v), BMFM_E_INPUT);
    /* all points equal: every distance is 0, every silhouette 0 (sklearn:
     * 0/0 -> 0), batch ASW 1; no fixed-point scale blows up */
    float same[9 * 2];
    for (int i = 0; i < 18; i++) same[i] = 0.25f;
    int32_t lab9[9] = {0, 0, 0, 1, 1, 1, 2, 2, 2}, bat9[9] = {0, 0, 1, 0, 1, 1, 0, 1, 0};
    double sil9[9];
    assert_int_equal(bmfm_silhouette_label_batch(same, 9, 2, lab9, 3, bat9, 2, sil9, &v), BMFM_OK);
    for (int i = 0; i < 9; i++) near(sil9[i], 0.0, 0, "silhouette of equal points");
    near(v, 1.0, 0, "batch ASW of equal points");
}

/* Equal distances are ordered by index; duplicated points do not displace self. */
static void test_knn_ties_and_duplicates(void **s) {
    (void)s;
    /* 1-D points: 0, 1, -1, 2, -2, 0 (a duplicate of cell 0) */
    float X[6] = {0, 1, -1, 2, -2, 0};
    bmfm_knn g;
    assert_int_equal(bmfm_knn_build(X, 6, 1, 6, &g), BMFM_OK);
    int32_t want0[6] = {0, 5, 1, 2, 3, 4}, want5[6] = {5, 0, 1, 2, 3, 4};
    assert_memory_equal(g.idx, want0, sizeof want0);
    assert_memory_equal(g.idx + 5 * 6, want5, sizeof want5);
    float wantd[6] = {0, 0, 1, 1, 2, 2};
    assert_memory_equal(g.dist, wantd, sizeof wantd);
    /* cell 1 (x=1): 0 and 5 at distance 1 (index order), then 3 (x=2) at 1, then 2 (x=-1) at 2 */
    int32_t want1[6] = {1, 0, 3, 5, 2, 4};
    assert_memory_equal(g.idx + 6, want1, sizeof want1);
    bmfm_knn_free(&g);
    /* k larger than n is clamped */
    assert_int_equal(bmfm_knn_build(X, 6, 1, 50, &g), BMFM_OK);
    assert_int_equal(g.k, 6);
    bmfm_knn_free(&g);
}

/* The kNN screening has AVX-512, AVX2 and scalar variants: the same graph
 * from each (rows with many near-ties: integer-valued coordinates, and with
 * more candidates than the screening buffer holds at once). */
static void test_knn_isa_paths(void **s) {
    (void)s;
    enum { N = 1500, D = 6, K = 40 };
    if (bmfm_cpu_isa() == BMFM_ISA_SCALAR) skip(); /* no vector path here (or BMFM_ISA=scalar) */
    float *X = malloc(sizeof(float) * N * D);
    uint64_t rng = 99;
    for (int i = 0; i < N * D; i++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        X[i] = (float)((rng >> 33) % 5) + (i % 3 == 0 ? 0.25f * (float)(i % 7) : 0.0f);
    }
    bmfm_isa was = bmfm_cpu_isa();
    bmfm_knn ref = {0};
    bmfm_set_isa(BMFM_ISA_SCALAR);
    assert_int_equal(bmfm_knn_build(X, N, D, K, &ref), BMFM_OK);
    for (int isa = BMFM_ISA_AVX2; isa <= (int)was; isa++) {
        bmfm_knn g = {0};
        bmfm_set_isa((bmfm_isa)isa);
        assert_int_equal(bmfm_knn_build(X, N, D, K, &g), BMFM_OK);
        assert_memory_equal(g.idx, ref.idx, sizeof(int32_t) * N * K);
        assert_memory_equal(g.dist, ref.dist, sizeof(float) * N * K);
        bmfm_knn_free(&g);
    }
    bmfm_knn_free(&ref); /* the teardown restores the ISA */
    free(X);
}

/* the ISA as the process started, for tests that force another one */
static bmfm_isa g_isa_at_start;

static int restore_isa(void **s) {
    (void)s;
    bmfm_set_isa(g_isa_at_start); /* also when an assert left the test early */
    return 0;
}

static void test_chi2_tail(void **s) {
    (void)s;
    near(bmfm_chi2_sf(3.841458820694124, 1), 0.05, 1e-12, "chi2 dof 1");
    near(bmfm_chi2_sf(5.991464547107979, 2), 0.05, 1e-12, "chi2 dof 2");
    near(bmfm_chi2_sf(2.0, 2), exp(-1.0), 1e-13, "chi2 dof 2 closed form");
    near(bmfm_chi2_sf(30.0, 9), 0.00043872177097947936, 1e-12, "chi2 dof 9 (scipy)");
    near(bmfm_chi2_sf(0.0, 3), 1.0, 0, "chi2 at 0");
}

/* 6 cliques of 8 nodes in a ring, joined by single weak edges: Leiden must
 * return the cliques at resolution 1 whatever the seed. */
static void test_leiden_ring_of_cliques(void **s) {
    (void)s;
    enum { NC = 6, CS = 8, N = NC * CS };
    double dense[N][N];
    memset(dense, 0, sizeof dense);
    for (int c = 0; c < NC; c++) {
        for (int i = 0; i < CS; i++)
            for (int j = 0; j < CS; j++)
                if (i != j) dense[c * CS + i][c * CS + j] = 1.0;
        int a = c * CS, b = ((c + 1) % NC) * CS + 1;
        dense[a][b] = dense[b][a] = 0.1;
    }
    bmfm_wgraph w = {.n = N};
    w.indptr = calloc(N + 1, sizeof *w.indptr);
    w.indices = malloc(N * N * sizeof *w.indices);
    w.data = malloc(N * N * sizeof *w.data);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < N; j++)
            if (dense[i][j] != 0) {
                w.indices[w.nnz] = j;
                w.data[w.nnz++] = dense[i][j];
            }
        w.indptr[i + 1] = w.nnz;
    }
    int32_t memb[N], truth[N];
    for (int i = 0; i < N; i++) truth[i] = i / CS;
    for (uint64_t seed = 0; seed < 3; seed++) {
        int ncl = 0;
        assert_int_equal(bmfm_leiden(&w, 1.0, seed, -1, memb, &ncl), BMFM_OK);
        assert_int_equal(ncl, NC);
        double ari;
        bmfm_ari(memb, truth, N, &ari);
        near(ari, 1.0, 0, "leiden ring of cliques");
    }
    /* the same seed gives the same partition */
    int32_t m2[N];
    int n1, n2;
    bmfm_leiden(&w, 0.5, 7, 2, memb, &n1);
    bmfm_leiden(&w, 0.5, 7, 2, m2, &n2);
    assert_memory_equal(memb, m2, sizeof memb);
    bmfm_leiden_scan_result r;
    assert_int_equal(bmfm_leiden_scan(&w, truth, 0.2, 2.0, 0.2, 0, -1, NULL, &r), BMFM_OK);
    assert_int_equal(r.n_resolutions, 10);
    near(r.nmi, 1.0, 1e-12, "scan nmi");
    bmfm_wgraph_free(&w);
}

typedef struct help_arg {
    bmfm_leiden_scan_job *job;
    int asked, scan_done;
} help_arg;

/* asks for helpers once the scan runs, then waits (no malloc, no exit)
 * until it is over: the scanning thread forks while this one is idle */
static void *help_scan(void *p) {
    help_arg *a = p;
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    a->asked = bmfm_leiden_scan_help(a->job, 2);
    while (!__atomic_load_n(&a->scan_done, __ATOMIC_ACQUIRE)) nanosleep(&ts, NULL);
    return NULL;
}

/* The resolution scan helped by forked processes gives exactly what one
 * process gives: overlapping blobs of different spreads, so the partitions
 * (and NMI) change with the resolution and a wrong merge would show. */
static void test_leiden_scan_helpers(void **s) {
    (void)s;
    enum { N = 900, D = 8, K = 15 };
    float *X = malloc(sizeof(float) * N * D);
    int32_t lab[N];
    uint64_t rng = 12345;
    for (int i = 0; i < N; i++) {
        lab[i] = i % 6;
        for (int j = 0; j < D; j++) {
            double u = 0;
            for (int t = 0; t < 4; t++) { /* roughly normal */
                rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
                u += (double)(rng >> 11) / 9007199254740992.0 - 0.5;
            }
            X[i * D + j] = (float)((j == lab[i] % D ? 2.0 : 0.0) + (lab[i] >= 4 ? 2.2 : 1.2) * u);
        }
    }
    bmfm_knn g = {0};
    bmfm_wgraph w = {0};
    assert_int_equal(bmfm_knn_build(X, N, D, K, &g), BMFM_OK);
    assert_int_equal(bmfm_connectivity_umap(&g, &w), BMFM_OK);
    bmfm_leiden_scan_result r1, rp;
    int32_t m1[N], mp[N];
    assert_int_equal(bmfm_leiden_scan(&w, lab, 0.2, 2.0, 0.2, 3, -1, m1, &r1), BMFM_OK);
    fprintf(stderr, "leiden scan: best res %.1f, %d clusters, nmi %.4f ari %.4f\n", r1.best_resolution,
            r1.n_clusters, r1.nmi, r1.ari);
    assert_true(r1.nmi > 0.3 && r1.nmi < 1.0 && r1.best_resolution > 0.3);
    bmfm_leiden_scan_job *job;
    /* helpers asked for before the scan: forked at its first resolution, as
     * many as leave one of the 10 resolutions for each and one for the scan */
    for (int helpers = 1; helpers <= 12; helpers += 11) {
        assert_int_equal(bmfm_leiden_scan_start(&w, 0.2, 2.0, 0.2, 3, -1, &job), BMFM_OK);
        assert_int_equal(bmfm_leiden_scan_help(job, helpers), 1);
        assert_int_equal(bmfm_leiden_scan_finish(job, lab, mp, &rp), BMFM_OK);
        assert_int_equal(rp.n_helpers, helpers < 9 ? helpers : 9);
        assert_int_equal(bmfm_leiden_scan_help(job, 1), 0); /* finished: no more */
        bmfm_leiden_scan_free(job);
        rp.n_helpers = 0;
        assert_memory_equal(&r1, &rp, sizeof r1);
        assert_memory_equal(m1, mp, sizeof m1);
    }
    /* asked for from another thread while the scan runs */
    assert_int_equal(bmfm_leiden_scan_start(&w, 0.2, 2.0, 0.2, 3, -1, &job), BMFM_OK);
    help_arg ha = {job, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, help_scan, &ha), 0);
    assert_int_equal(bmfm_leiden_scan_finish(job, lab, mp, &rp), BMFM_OK);
    __atomic_store_n(&ha.scan_done, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    bmfm_leiden_scan_free(job);
    fprintf(stderr, "leiden scan: help asked %d, %d helper(s) forked during the scan\n", ha.asked, rp.n_helpers);
    assert_true(rp.n_helpers <= 2);
    rp.n_helpers = 0;
    assert_memory_equal(&r1, &rp, sizeof r1);
    assert_memory_equal(m1, mp, sizeof m1);
    /* freed unfinished: nothing leaks (ASan) */
    assert_int_equal(bmfm_leiden_scan_start(&w, 0.2, 2.0, 0.2, 3, -1, &job), BMFM_OK);
    assert_int_equal(bmfm_leiden_scan_help(job, 3), 1);
    bmfm_leiden_scan_free(job);
    assert_int_equal(bmfm_leiden_scan_start(&w, 0.5, 0.2, 0.2, 3, -1, &job), BMFM_E_INPUT);
    bmfm_wgraph_free(&w);
    bmfm_knn_free(&g);
    free(X);
}

static void check_scib(const char *fx) {
    int64_t n, nx;
    int32_t *lab = load(fx, "lab.i32", 4, &n), *bat = load(fx, "bat.i32", 4, NULL);
    float *X = load(fx, "X.f32", 4, &nx), *pre = load(fx, "pre.f32", 4, NULL);
    int64_t d = nx / n;
    bmfm_scib_options o;
    bmfm_scib_options_default(&o);
    bmfm_scib_result r;
    assert_int_equal(bmfm_scib_compute(X, n, d, lab, max_code(lab, n) + 1, bat, max_code(bat, n) + 1, pre, d, &o, &r),
                     BMFM_OK);
    fprintf(stderr, "%s: nmi %.4f ari %.4f (leidenalg %.4f %.4f, res %.1f vs %.1f) asw %.4f basw %.4f gc %.4f "
                    "ilisi %.4f clisi %.4f kbet %.4f pcr %.4f iso %.4f bio %.4f batch %.4f overall %.4f\n  note: %s\n",
            fx, r.nmi, r.ari, ref(fx, "leidenalg_nmi"), ref(fx, "leidenalg_ari"), r.best_resolution,
            ref(fx, "leidenalg_res"), r.asw_label, r.asw_batch, r.graph_conn, r.ilisi, r.clisi, r.kbet, r.pcr,
            r.isolated_asw, r.avg_bio, r.avg_batch, r.overall, r.note);
    assert_int_equal(r.n_cells_used, (int64_t)ref(fx, "n_used"));
    assert_int_equal(r.n_cells_used + r.n_dropped_nan + r.n_dropped_missing, n);
    near(r.asw_label, ref(fx, "asw_label"), 1e-6, "asw_label");
    near(r.asw_batch, ref(fx, "asw_batch"), 1e-6, "asw_batch");
    near(r.isolated_asw, ref(fx, "isolated_asw"), 1e-6, "isolated_asw");
    near(r.graph_conn, ref(fx, "graph_conn"), 1e-6, "graph_conn");
    near(r.ilisi, ref(fx, "ilisi"), 1e-6, "ilisi");
    near(r.clisi, ref(fx, "clisi"), 1e-6, "clisi");
    near(r.kbet, ref(fx, "kbet"), 1e-6, "kbet");
    near(r.pcr, ref(fx, "pcr"), 1e-6, "pcr");
    if (pre) {
        near(r.pcr_pre, ref(fx, "pcr_pre"), 1e-6, "pcr_pre");
        near(r.pcr_comparison, ref(fx, "pcr_comparison"), 1e-6, "pcr_comparison");
    } else {
        assert_true(isnan(r.pcr_comparison));
    }
    near(r.nmi, ref(fx, "leidenalg_nmi"), 0.02, "leiden-scan NMI vs leidenalg");
    near(r.ari, ref(fx, "leidenalg_ari"), 0.02, "leiden-scan ARI vs leidenalg");
    near(r.avg_bio, (r.nmi + r.ari + r.asw_label) / 3, 1e-12, "avg_bio");
    near(r.overall, 0.6 * r.avg_bio + 0.4 * (r.asw_batch + r.graph_conn) / 2, 1e-12, "overall");
    free(lab), free(bat), free(X), free(pre);
}

static void test_scib_blobs(void **s) {
    (void)s;
    check_scib("blobs");
}

static void test_scib_overlap(void **s) {
    (void)s;
    check_scib("overlap");
    /* two Leiden iterations (scanpy's igraph flavor, scib-metrics) against python-igraph */
    clean c;
    load_clean("overlap", &c);
    bmfm_scib_options o;
    bmfm_scib_options_default(&o);
    o.leiden_iterations = 2;
    o.lisi = o.kbet = o.pcr = o.isolated = 0;
    bmfm_scib_result r;
    assert_int_equal(bmfm_scib_compute(c.X, c.n, c.d, c.lab, max_code(c.lab, c.n) + 1, c.bat, 2, NULL, 0, &o, &r),
                     BMFM_OK);
    fprintf(stderr, "overlap, 2 iterations: nmi %.4f ari %.4f (python-igraph median %.4f %.4f)\n  protocol: %s\n",
            r.nmi, r.ari, ref("overlap", "igraph_nmi"), ref("overlap", "igraph_ari"), r.protocol);
    near(r.nmi, ref("overlap", "igraph_nmi"), 0.02, "2-iteration NMI vs python-igraph");
    near(r.ari, ref("overlap", "igraph_ari"), 0.02, "2-iteration ARI vs python-igraph");
    assert_non_null(strstr(r.protocol, "2 iterations"));
    assert_true(isnan(r.kbet) && isnan(r.ilisi) && isnan(r.pcr)); /* switched off */
    free_clean(&c);
}

/* beside_leiden jobs: each runs exactly once, on either thread, and the
 * metrics are the same as without them; a failing job ends the computation
 * (no job is started after it) and its error reaches the caller. */
typedef struct beside_log {
    int runs[16];
    int fail_job;
} beside_log;

static bmfm_status beside_job(void *ctx, int job) {
    beside_log *l = ctx;
#pragma omp atomic
    l->runs[job]++;
    if (job == l->fail_job) return bmfm_error_set(BMFM_E_INPUT, "beside job %d failed", job);
    return BMFM_OK;
}

static void test_scib_beside_jobs(void **s) {
    (void)s;
    clean c;
    load_clean("blobs", &c);
    int L = max_code(c.lab, c.n) + 1, B = max_code(c.bat, c.n) + 1;
    bmfm_scib_options o;
    bmfm_scib_options_default(&o);
    bmfm_scib_result plain, with;
    assert_int_equal(bmfm_scib_compute(c.X, c.n, c.d, c.lab, L, c.bat, B, NULL, 0, &o, &plain), BMFM_OK);
    int threads_before = omp_get_max_threads();
    for (int nth = 1; nth <= 2; nth++) {
        omp_set_num_threads(nth);
        beside_log l = {.fail_job = -1};
        o.beside_jobs = 16;
        o.beside_leiden = beside_job;
        o.beside_leiden_ctx = &l;
        assert_int_equal(bmfm_scib_compute(c.X, c.n, c.d, c.lab, L, c.bat, B, NULL, 0, &o, &with), BMFM_OK);
        for (int j = 0; j < 16; j++) assert_int_equal(l.runs[j], 1);
        assert_true(with.nmi == plain.nmi && with.ari == plain.ari && with.asw_label == plain.asw_label &&
                    with.kbet == plain.kbet && with.ilisi == plain.ilisi);
        /* job 3 fails: its error reaches the caller; with one thread the
         * jobs run in order, so none after it starts (with two, the other
         * thread may claim jobs while job 3 runs: no fixed count) */
        beside_log f = {.fail_job = 3};
        o.beside_leiden_ctx = &f;
        assert_int_equal(bmfm_scib_compute(c.X, c.n, c.d, c.lab, L, c.bat, B, NULL, 0, &o, &with), BMFM_E_INPUT);
        assert_non_null(strstr(bmfm_error_message(), "beside job 3 failed"));
        int started = 0;
        for (int j = 0; j < 16; j++) {
            assert_true(f.runs[j] <= 1);
            started += f.runs[j];
        }
        assert_int_equal(f.runs[3], 1);
        if (nth == 1) assert_int_equal(started, 4);
    }
    omp_set_num_threads(threads_before);
    free_clean(&c);
}

/* kBET from the all-cell kNN graph (rows that hold the k0 nearest kept
 * cells), from brute force (few cells missing) or from a per-label graph
 * (many missing: a 15-NN graph): the same score as without a graph. */
static void check_kbet_graph_paths(const char *fx) {
    clean c;
    load_clean(fx, &c);
    int32_t L = max_code(c.lab, c.n) + 1, B = max_code(c.bat, c.n) + 1;
    bmfm_knn g50, g;
    bmfm_wgraph w50;
    assert_int_equal(bmfm_knn_build(c.X, c.n, c.d, 50, &g50), BMFM_OK);
    assert_int_equal(bmfm_connectivity_umap(&g50, &w50), BMFM_OK);
    double plain, with;
    int np, nw;
    assert_int_equal(bmfm_kbet(c.X, c.n, c.d, &w50, NULL, c.lab, L, c.bat, B, 0.05, &plain, &np), BMFM_OK);
    assert_false(isnan(plain));
    const int ks[] = {15, 40, 90, 200};
    for (int t = 0; t < 4; t++) {
        assert_int_equal(bmfm_knn_build(c.X, c.n, c.d, ks[t], &g), BMFM_OK);
        assert_int_equal(bmfm_kbet(c.X, c.n, c.d, &w50, &g, c.lab, L, c.bat, B, 0.05, &with, &nw), BMFM_OK);
        if (with != plain || nw != np) fail_msg("%s: kBET %.17g with a %d-NN graph, %.17g without", fx, with, ks[t], plain);
        if (ks[t] == 90) {
            /* the directed pattern of the first 50 columns of the 90-NN
             * graph (what bmfm eval passes): the components of w50 for
             * every label and for all cells, and the same kBET */
            bmfm_wgraph pat;
            assert_int_equal(bmfm_connectivity_pattern(&g, 50, &pat), BMFM_OK);
            assert_null(pat.data);
            int32_t *ca = malloc((size_t)c.n * sizeof *ca), *cb = malloc((size_t)c.n * sizeof *cb);
            uint8_t *mask = malloc((size_t)c.n);
            for (int32_t l = -1; l < L; l++) {
                for (int64_t i = 0; i < c.n; i++) mask[i] = l < 0 || c.lab[i] == l;
                int64_t na, nb;
                assert_int_equal(bmfm_graph_components(&w50, mask, ca, &na), BMFM_OK);
                assert_int_equal(bmfm_graph_components(&pat, mask, cb, &nb), BMFM_OK);
                assert_int_equal(na, nb);
                assert_memory_equal(ca, cb, (size_t)c.n * sizeof *ca);
            }
            assert_int_equal(bmfm_kbet(c.X, c.n, c.d, &pat, &g, c.lab, L, c.bat, B, 0.05, &with, &nw), BMFM_OK);
            if (with != plain || nw != np) fail_msg("%s: kBET %.17g with the 50-NN pattern, %.17g", fx, with, plain);
            free(ca), free(cb), free(mask);
            bmfm_wgraph_free(&pat);
        }
        bmfm_knn_free(&g);
    }
    bmfm_knn_free(&g50);
    bmfm_wgraph_free(&w50);
    free_clean(&c);
}

/* The 50-NN pattern (kBET's components) holds exactly the entries whose
 * UMAP membership weight is non-zero: rows whose bisection stops early (all
 * exponents provably above -700) and rows with far outliers, whose weights
 * underflow to 0 (the exact test), against umap's sigma and rho and exp()
 * computed here; also a missing entry (-1) and self. */
static void test_connectivity_pattern_exact(void **s) {
    (void)s;
    const int64_t n = 60;
    const int k = 12;
    bmfm_knn g = {n, k, malloc(sizeof(int32_t) * n * k), malloc(sizeof(float) * n * k)};
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < k; j++) {
            g.idx[i * k + j] = j == 0 ? (int32_t)i : (int32_t)((i + 7 * j) % n);
            /* every third row: a far tail (its last entries underflow) */
            float d = j == 0 ? 0.0f : 1.0f + 0.01f * (float)(j + i % 5);
            if (i % 3 == 0 && j >= k - 3) d = 1e4f * (float)(j - k + 4);
            g.dist[i * k + j] = d;
        }
    g.idx[5 * k + 4] = -1; /* a missing entry */
    double *sigma = malloc(sizeof(double) * n), *rho = malloc(sizeof(double) * n);
    bmfm_connectivity_sigmas(&g, sigma, rho);
    bmfm_wgraph pat;
    assert_int_equal(bmfm_connectivity_pattern(&g, k, &pat), BMFM_OK);
    int64_t dropped = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t p = pat.indptr[i];
        for (int j = 0; j < k; j++) {
            int32_t c = g.idx[i * k + j];
            if (c < 0 || c == i) continue;
            float dd = g.dist[i * k + j] - (float)rho[i];
            double x = (dd <= 0 || sigma[i] == 0) ? 0.0 : -((double)dd / sigma[i]);
            if (exp(x) == 0) {
                dropped++;
                continue;
            }
            assert_true(p < pat.indptr[i + 1]);
            assert_int_equal(pat.indices[p++], c);
        }
        assert_int_equal(p, pat.indptr[i + 1]);
    }
    assert_true(dropped >= 20); /* the outlier rows took the exact path */
    bmfm_wgraph_free(&pat);
    free(sigma), free(rho), free(g.idx), free(g.dist);
}

static void test_kbet_graph_paths(void **s) {
    (void)s;
    check_kbet_graph_paths("blobs");
    if (g_have_harmony) check_kbet_graph_paths("harmony");
}

static void test_scib_harmony(void **s) {
    (void)s;
    if (!g_have_harmony) skip();
    check_scib("harmony");
}

static void test_scib_undefined_metrics(void **s) {
    (void)s;
    clean c;
    load_clean("blobs", &c);
    bmfm_scib_result r;
    bmfm_scib_options o;
    bmfm_scib_options_default(&o);
    /* one batch: batch metrics NaN, bio metrics defined */
    assert_int_equal(bmfm_scib_compute(c.X, c.n, c.d, c.lab, max_code(c.lab, c.n) + 1, NULL, 0, NULL, 0, &o, &r),
                     BMFM_OK);
    assert_true(isnan(r.asw_batch) && isnan(r.graph_conn) && isnan(r.ilisi) && isnan(r.kbet) && isnan(r.pcr));
    assert_true(isnan(r.avg_batch) && isnan(r.overall));
    assert_false(isnan(r.nmi) || isnan(r.asw_label) || isnan(r.avg_bio));
    assert_non_null(strstr(r.note, "one batch"));
    /* one label: bio metrics NaN */
    int32_t *zero = calloc((size_t)c.n, sizeof *zero);
    assert_int_equal(bmfm_scib_compute(c.X, c.n, c.d, zero, 1, c.bat, max_code(c.bat, c.n) + 1, NULL, 0, &o, &r),
                     BMFM_OK);
    assert_true(isnan(r.nmi) && isnan(r.ari) && isnan(r.asw_label) && isnan(r.clisi) && isnan(r.avg_bio));
    assert_false(isnan(r.asw_batch) || isnan(r.graph_conn));
    assert_non_null(strstr(r.note, "one label"));
    /* bad codes and too few cells are input errors */
    zero[0] = 5;
    assert_int_equal(bmfm_scib_compute(c.X, c.n, c.d, zero, 1, NULL, 0, NULL, 0, &o, &r), BMFM_E_INPUT);
    assert_int_equal(bmfm_scib_compute(c.X, 2, c.d, c.lab, 10, NULL, 0, NULL, 0, &o, &r), BMFM_E_INPUT);
    free(zero);
    free_clean(&c);
}

int main(void) {
    g_isa_at_start = bmfm_cpu_isa();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nmi_ari_edge_cases),
        cmocka_unit_test(test_nmi_ari_many_classes),
        cmocka_unit_test(test_chi2_tail),
        cmocka_unit_test(test_knn_ties_and_duplicates),
        cmocka_unit_test_teardown(test_knn_isa_paths, restore_isa),
        cmocka_unit_test(test_leiden_ring_of_cliques),
        cmocka_unit_test(test_leiden_scan_helpers),
        cmocka_unit_test(test_knn_connectivities_blobs),
        cmocka_unit_test(test_knn_connectivities_harmony),
        cmocka_unit_test(test_nmi_ari_silhouette_blobs),
        cmocka_unit_test(test_nmi_ari_silhouette_harmony),
        cmocka_unit_test(test_scib_blobs),
        cmocka_unit_test(test_scib_overlap),
        cmocka_unit_test(test_scib_beside_jobs),
        cmocka_unit_test(test_kbet_graph_paths),
        cmocka_unit_test(test_connectivity_pattern_exact),
        cmocka_unit_test(test_scib_harmony),
        cmocka_unit_test(test_scib_undefined_metrics),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
