/* eval_steps.c - single-threaded time of each metric and probe function of
 * `bmfm eval --probe`, called one after the other on an embedding fixture
 * (F_clean_X.f32 / F_clean_lab.i32 / F_clean_bat.i32, as bench/eval_metrics;
 * bench/eval_bench.sh writes one for pbmc8k), best of REPS runs per step.
 * The value each step computes is printed beside its time, so a change that
 * moves a figure shows here too.
 *
 * usage: OMP_NUM_THREADS=1 build/bench/eval_steps DIR/FIXTURE [REPS]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/progress.h"
#include "eval/connectivity.h"
#include "eval/kbet.h"
#include "eval/knn.h"
#include "eval/leiden.h"
#include "eval/lisi.h"
#include "eval/probe.h"
#include "eval/silhouette.h"
#include "eval_fixture.h"

static void check(bmfm_status st, const char *what) {
    if (st) {
        fprintf(stderr, "%s failed: %s\n", what, bmfm_error_message());
        exit(1);
    }
}

static double dist_sum(const bmfm_knn *g) {
    double s = 0;
    for (int64_t i = 0; i < g->n * g->k; i++) s += g->dist[i];
    return s;
}

/* Runs body REPS times and prints the best wall time. */
#define STEP(name, reps, value_fmt, value, body)                                                                  \
    do {                                                                                                          \
        double best_ = INFINITY;                                                                                  \
        for (int r_ = 0; r_ < (reps); r_++) {                                                                     \
            double t_ = bmfm_now_seconds();                                                                       \
            body;                                                                                                 \
            t_ = bmfm_now_seconds() - t_;                                                                         \
            if (t_ < best_) best_ = t_;                                                                           \
        }                                                                                                         \
        printf("%-28s %8.4f s   " value_fmt "\n", name, best_, value);                                           \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR/FIXTURE [REPS]\n", argv[0]);
        return 2;
    }
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    bench_fixture fx;
    bench_fixture_load(argv[1], &fx);
    float *X = fx.X;
    int32_t *lab = fx.lab, *bat = fx.bat;
    int64_t n = fx.n, d = fx.d;
    int32_t L = 0, B = 0;
    for (int64_t i = 0; i < n; i++) {
        if (lab[i] + 1 > L) L = lab[i] + 1;
        if (bat[i] + 1 > B) B = bat[i] + 1;
    }
    printf("%lld cells x %lld dims, %d labels, %d batches, best of %d\n", (long long)n, (long long)d, L, B, reps);
    bmfm_knn g = {0}, k15 = {0}, k50 = {0};
    bmfm_wgraph w15 = {0}, w50 = {0};
    double *sil = malloc((size_t)n * sizeof *sil), v1 = 0, v2 = 0;
    int ns = 0;
    STEP("knn (k=90)", reps, "dist sum %.6f", dist_sum(&g), {
        bmfm_knn_free(&g);
        check(bmfm_knn_build(X, n, d, 90, &g), "knn");
    });
    check(bmfm_knn_subset(&g, 15, &k15), "knn subset");
    check(bmfm_knn_subset(&g, 50, &k50), "knn subset");
    STEP("connectivities (k=15)", reps, "nnz %lld", (long long)w15.nnz, {
        bmfm_wgraph_free(&w15);
        check(bmfm_connectivity_umap(&k15, &w15), "connectivities");
    });
    STEP("leiden scan (until stable)", 1, "nmi %.6f", v1, {
        bmfm_leiden_scan_result lr;
        check(bmfm_leiden_scan(&w15, lab, 0.2, 2.0, 0.2, 0, -1, NULL, &lr), "leiden");
        v1 = lr.nmi;
    });
    STEP("label + batch silhouette", reps, "asw_batch %.9f", v1, {
        check(bmfm_silhouette_label_batch(X, n, d, lab, L, bat, B, sil, &v1), "silhouette");
    });
    STEP("label silhouette only", reps, "mean s %.12f", bmfm_asw_label_from_samples(sil, n), {
        check(bmfm_silhouette_samples(X, n, d, lab, L, sil), "silhouette");
    });
    STEP("clisi + ilisi", reps, "clisi %.9f", v1, { check(bmfm_lisi_scores(&g, lab, L, bat, B, &v1, &v2), "lisi"); });
    STEP("connectivities (k=50)", reps, "nnz %lld", (long long)w50.nnz, {
        bmfm_wgraph_free(&w50);
        check(bmfm_connectivity_umap(&k50, &w50), "connectivities");
    });
    STEP("kbet, own kNN per label", reps, "kbet %.9f", v1, {
        check(bmfm_kbet(X, n, d, &w50, NULL, lab, L, bat, B, 0.05, &v1, &ns), "kbet");
    });
    STEP("kbet, rows of the 90-NN", reps, "kbet %.9f", v1, {
        check(bmfm_kbet(X, n, d, &w50, &g, lab, L, bat, B, 0.05, &v1, &ns), "kbet");
    });
    bmfm_probe_options po;
    bmfm_probe_options_default(&po);
    bmfm_probe_result pr;
    STEP("probe: 5-fold CV, LR + kNN", reps, "LR F1 %.9f", pr.lr_f1_macro, {
        check(bmfm_probe_cv(X, n, d, lab, L, &po, &pr), "probe");
    });
    printf("%-28s %8s     kNN F1 %.9f\n", "", "", pr.knn_f1_macro);
    po.knn_k = 0;
    STEP("probe: 5-fold CV, LR only", reps, "LR F1 %.9f", pr.lr_f1_macro, {
        check(bmfm_probe_cv(X, n, d, lab, L, &po, &pr), "probe");
    });
    po.knn_k = 5;
    STEP("probe: leave-one-batch-out", reps, "LR F1 %.9f", pr.lr_f1_macro, {
        check(bmfm_probe_heldout_batch(X, n, d, lab, L, bat, B, -1, &po, &pr), "probe");
    });
    bmfm_knn_free(&g);
    bmfm_knn_free(&k15);
    bmfm_knn_free(&k50);
    bmfm_wgraph_free(&w15);
    bmfm_wgraph_free(&w50);
    free(sil);
    bench_fixture_free(&fx);
    return 0;
}
