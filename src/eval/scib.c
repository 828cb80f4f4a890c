/* scib.c - bmfm_scib_compute: input cleaning, the shared kNN graph, then
 * every metric of scib.h in turn. One kNN search with max(k, 50, 90)
 * columns serves the 15-NN connectivities (Leiden, GC), the 50-NN
 * connectivities (kBET components) and the 90-NN LISI, as scib-metrics does.
 */
#include "eval/scib.h"

#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "eval/connectivity.h"
#include "eval/graph_metrics.h"
#include "eval/kbet.h"
#include "eval/knn.h"
#include "eval/leiden.h"
#include "eval/lisi.h"
#include "eval/pcr.h"
#include "eval/silhouette.h"

#define LISI_K 90
#define KBET_K 50
#define KBET_ALPHA 0.05

void bmfm_scib_options_default(bmfm_scib_options *o) {
    memset(o, 0, sizeof *o);
    o->k = 15;
    o->res_min = 0.2;
    o->res_max = 2.0;
    o->res_step = 0.2;
    o->seed = 0;
    o->lisi = o->kbet = o->pcr = o->isolated = 1;
    o->leiden_iterations = -1;
}

static void note_add(bmfm_scib_result *r, const char *fmt, ...) {
    size_t len = strlen(r->note);
    if (len + 3 >= sizeof r->note) return;
    if (len) {
        strcpy(r->note + len, "; ");
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->note + len, sizeof r->note - len, fmt, ap);
    va_end(ap);
}

static void step(const bmfm_scib_options *o, const char *s) {
    if (o->progress) o->progress(s, o->progress_ctx);
}

static int row_finite(const float *x, int64_t d) {
    for (int64_t c = 0; c < d; c++)
        if (!isfinite(x[c])) return 0;
    return 1;
}

/* Codes -> 0..m-1 in order of first code value; returns m. */
static int64_t compact_codes(const int32_t *in, int64_t n, int64_t n_codes, int32_t *out) {
    int64_t m = 0;
    int32_t *map = malloc((size_t)(n_codes > 0 ? n_codes : 1) * sizeof *map);
    uint8_t *seen = calloc((size_t)(n_codes > 0 ? n_codes : 1), 1);
    if (!map || !seen) {
        free(map);
        free(seen);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) seen[in[i]] = 1;
    for (int64_t c = 0; c < n_codes; c++) map[c] = seen[c] ? (int32_t)m++ : -1;
    for (int64_t i = 0; i < n; i++) out[i] = map[in[i]];
    free(map);
    free(seen);
    return m;
}

typedef struct scib_ctx {
    const bmfm_scib_options *opt;
    bmfm_scib_result *out;
    const float *x;
    int64_t m, d;
    const int32_t *lab;
    int64_t L;
    const int32_t *bat;
    int64_t B;
    const bmfm_knn *knn;
    bmfm_knn *k15;
    bmfm_wgraph *w15;
    int w15_state;             /* atomic: 0 not started, 1 being built, 2 ready, 3 failed */
    bmfm_error_saved w15_err;  /* the build's failure, for the thread that waited */
    int32_t *memb;
    double *sil;
    const float *xp;
    int64_t d_pre;
    int bio_ok, batch_ok;
    bmfm_leiden_scan_job *leiden; /* started by scib_w15 */
} scib_ctx;

/* The 15-NN connectivities (Leiden, graph connectivity) and the Leiden job
 * on them. Built after the threads split, so that the other thread starts
 * on the silhouettes at once: the first of the two threads to need them
 * builds them, the other waits (in any order, also on one thread). */
static bmfm_status scib_w15(scib_ctx *c) {
    int expected = 0;
    if (__atomic_compare_exchange_n(&c->w15_state, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        const bmfm_scib_options *opt = c->opt;
        step(opt, "connectivities");
        bmfm_status st = bmfm_knn_subset(c->knn, opt->k, c->k15);
        if (!st) st = bmfm_connectivity_umap(c->k15, c->w15);
        if (!st && c->bio_ok)
            st = bmfm_leiden_scan_start(c->w15, opt->res_min, opt->res_max, opt->res_step, opt->seed,
                                        opt->leiden_iterations, &c->leiden);
        bmfm_error_save(st, &c->w15_err);
        __atomic_store_n(&c->w15_state, st ? 3 : 2, __ATOMIC_RELEASE);
        return st;
    }
    int state;
    while ((state = __atomic_load_n(&c->w15_state, __ATOMIC_ACQUIRE)) == 1) sched_yield();
    return state == 2 ? BMFM_OK : bmfm_error_restore(&c->w15_err);
}

/* NMI/ARI from the Leiden resolution scan (writes only its own fields). */
static bmfm_status scib_leiden(scib_ctx *c) {
    const bmfm_scib_options *opt = c->opt;
    bmfm_leiden_scan_result lr;
    bmfm_status st = scib_w15(c);
    if (st) return st;
    step(opt, "leiden");
    st = bmfm_leiden_scan_finish(c->leiden, c->lab, c->memb, &lr);
    if (st) return st;
    c->out->nmi = lr.nmi;
    c->out->ari = lr.ari;
    c->out->best_resolution = lr.best_resolution;
    c->out->n_clusters = lr.n_clusters;
    return BMFM_OK;
}

/* After an error nothing more is started: the other thread claims no job. */
static void stop_beside_jobs(const bmfm_scib_options *o, int *next_job) {
#pragma omp atomic write
    *next_job = o->beside_jobs;
}

/* The caller's beside_leiden jobs not yet claimed by the other thread. */
static bmfm_status run_beside_jobs(const bmfm_scib_options *o, int *next_job) {
    for (;;) {
        int job;
#pragma omp atomic capture
        job = (*next_job)++;
        if (job >= o->beside_jobs || !o->beside_leiden) return BMFM_OK;
        bmfm_status st = o->beside_leiden(o->beside_leiden_ctx, job);
        if (st) {
            stop_beside_jobs(o, next_job);
            return st;
        }
    }
}

/* Every other metric (none of them uses igraph). */
static bmfm_status scib_rest(scib_ctx *c) {
    const bmfm_scib_options *opt = c->opt;
    bmfm_scib_result *out = c->out;
    const float *x = c->x;
    int64_t m = c->m, d = c->d, L = c->L, B = c->B;
    const int32_t *lab = c->lab, *bat = c->bat;
    bmfm_wgraph w50 = {0};
    bmfm_status st = BMFM_OK;
    if (c->bio_ok) {
        /* with batches, the batch ASW comes from the same pass over the pairs */
        step(opt, c->batch_ok ? "label + batch silhouette" : "silhouette");
        if ((st = bmfm_silhouette_label_batch(x, m, d, lab, L, c->batch_ok ? bat : NULL, B, c->sil,
                                              c->batch_ok ? &out->asw_batch : NULL)))
            goto done;
        out->asw_label = bmfm_asw_label_from_samples(c->sil, m);
        int64_t singles = 0;
        {
            int64_t *cnt = bmfm_calloc((size_t)L, sizeof *cnt);
            if (!cnt) {
                st = BMFM_E_NOMEM;
                goto done;
            }
            for (int64_t i = 0; i < m; i++) cnt[lab[i]]++;
            for (int64_t l = 0; l < L; l++) singles += cnt[l] == 1;
            free(cnt);
        }
        if (singles) note_add(out, "%lld labels with a single cell (silhouette 0 for them, as sklearn)", (long long)singles);
        if (opt->lisi) { /* with batches: iLISI too, from the same calibration */
            step(opt, c->batch_ok ? "clisi + ilisi" : "clisi");
            if ((st = bmfm_lisi_scores(c->knn, lab, L, c->batch_ok ? bat : NULL, B, &out->clisi,
                                       c->batch_ok ? &out->ilisi : NULL)))
                goto done;
        }
        if (c->batch_ok && opt->isolated) {
            if ((st = bmfm_isolated_asw(c->sil, m, lab, L, bat, B, &out->isolated_asw, &out->n_isolated_labels)))
                goto done;
            if (isnan(out->isolated_asw)) note_add(out, "no isolated label (every label in the same number of batches)");
        }
    }
    if (c->batch_ok) {
        if (!c->bio_ok) { /* else computed with the label silhouettes */
            step(opt, "batch silhouette");
            if ((st = bmfm_asw_batch(x, m, d, lab, L, bat, B, &out->asw_batch))) goto done;
        }
        if (isnan(out->asw_batch)) note_add(out, "batch ASW: no label has cells from >= 2 batches");
        step(opt, "graph connectivity");
        if ((st = scib_w15(c))) goto done;
        if ((st = bmfm_graph_connectivity(c->w15, lab, L, &out->graph_conn))) goto done;
        if (opt->lisi && !c->bio_ok) {
            step(opt, "ilisi");
            if ((st = bmfm_lisi_score(c->knn, bat, B, 1, &out->ilisi))) goto done;
        }
        if (opt->kbet) {
            step(opt, "kbet");
            /* only the components of the 50-NN connectivities count */
            if ((st = bmfm_connectivity_pattern(c->knn, KBET_K < c->knn->k ? KBET_K : c->knn->k, &w50))) goto done;
            if ((st = bmfm_kbet(x, m, d, &w50, c->knn, lab, L, bat, B, KBET_ALPHA, &out->kbet, &out->n_kbet_labels)))
                goto done;
            if (isnan(out->kbet)) note_add(out, "kBET: no label with >= 10 cells in >= 2 batches");
        }
        if (opt->pcr) {
            step(opt, "pcr");
            if ((st = bmfm_pcr(x, m, d, bat, B, BMFM_PCR_N_COMPS, &out->pcr))) goto done;
            if (c->xp) {
                if ((st = bmfm_pcr(c->xp, m, c->d_pre, bat, B, BMFM_PCR_N_COMPS, &out->pcr_pre))) goto done;
                out->pcr_comparison = bmfm_pcr_comparison(out->pcr_pre, out->pcr);
            } else {
                note_add(out, "PCR comparison needs the unintegrated embedding");
            }
        }
    }
done:
    bmfm_wgraph_free(&w50);
    return st;
}

bmfm_status bmfm_scib_compute(const float *emb, int64_t n, int64_t d, const int32_t *labels, int64_t n_labels,
                              const int32_t *batches, int64_t n_batches, const float *pre, int64_t d_pre,
                              const bmfm_scib_options *opt_in, bmfm_scib_result *out) {
    bmfm_status st = BMFM_OK;
    bmfm_scib_options opt;
    float *x = NULL, *xp = NULL;
    int32_t *lab = NULL, *bat = NULL, *tmp = NULL, *memb = NULL;
    double *sil = NULL;
    bmfm_knn knn = {0}, k15 = {0};
    bmfm_wgraph w15 = {0};

    if (opt_in) opt = *opt_in;
    else bmfm_scib_options_default(&opt);
    memset(out, 0, sizeof *out);
    double nanv = NAN;
    out->nmi = out->ari = out->asw_label = out->asw_batch = out->graph_conn = out->ilisi = out->clisi = nanv;
    out->kbet = out->pcr = out->isolated_asw = out->avg_bio = out->avg_batch = out->overall = nanv;
    out->best_resolution = out->pcr_pre = out->pcr_comparison = nanv;

    if (!emb || !labels || n < 1 || d < 1 || n_labels < 1)
        return bmfm_error_set(BMFM_E_INPUT, "scib: need an embedding (n=%lld, d=%lld) and labels (%lld codes)",
                              (long long)n, (long long)d, (long long)n_labels);
    if (batches && n_batches < 1) return bmfm_error_set(BMFM_E_INPUT, "scib: batches given with n_batches=%lld", (long long)n_batches);
    if (pre && d_pre < 1) return bmfm_error_set(BMFM_E_INPUT, "scib: pre embedding given with d_pre=%lld", (long long)d_pre);
    if (opt.k < 2) return bmfm_error_set(BMFM_E_INPUT, "scib: k=%d must be >= 2 (self included)", opt.k);
    if (opt.leiden_iterations == 0)
        return bmfm_error_set(BMFM_E_INPUT, "scib: leiden_iterations must be -1 (until stable) or >= 1");
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < -1 || labels[i] >= n_labels)
            return bmfm_error_set(BMFM_E_INPUT, "scib: label code %d at cell %lld outside -1..%lld", labels[i],
                                  (long long)i, (long long)n_labels - 1);
        if (batches && (batches[i] < -1 || batches[i] >= n_batches))
            return bmfm_error_set(BMFM_E_INPUT, "scib: batch code %d at cell %lld outside -1..%lld", batches[i],
                                  (long long)i, (long long)n_batches - 1);
    }

    /* Keep rows with finite values and known label (and batch). */
    x = bmfm_malloc((size_t)n * d * sizeof *x);
    xp = pre ? bmfm_malloc((size_t)n * d_pre * sizeof *xp) : NULL;
    lab = bmfm_malloc((size_t)n * sizeof *lab);
    bat = bmfm_malloc((size_t)n * sizeof *bat);
    tmp = bmfm_malloc((size_t)n * sizeof *tmp);
    if (!x || (pre && !xp) || !lab || !bat || !tmp) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!row_finite(emb + i * d, d) || (pre && !row_finite(pre + i * d_pre, d_pre))) {
            out->n_dropped_nan++;
            continue;
        }
        if (labels[i] < 0 || (batches && batches[i] < 0)) {
            out->n_dropped_missing++;
            continue;
        }
        memcpy(x + m * d, emb + i * d, (size_t)d * sizeof *x);
        if (pre) memcpy(xp + m * d_pre, pre + i * d_pre, (size_t)d_pre * sizeof *xp);
        tmp[m] = labels[i];
        bat[m] = batches ? batches[i] : 0;
        m++;
    }
    out->n_cells_used = m;
    if (out->n_dropped_nan) note_add(out, "%lld cells with NaN values dropped", (long long)out->n_dropped_nan);
    if (out->n_dropped_missing)
        note_add(out, "%lld cells with missing label/batch dropped", (long long)out->n_dropped_missing);
    if (m < 3) {
        st = bmfm_error_set(BMFM_E_INPUT, "scib: only %lld usable cells (need >= 3)", (long long)m);
        goto done;
    }
    int64_t L = compact_codes(tmp, m, n_labels, lab);
    int64_t B = compact_codes(bat, m, batches ? n_batches : 1, tmp);
    if (L < 0 || B < 0) {
        st = bmfm_error_set(BMFM_E_NOMEM, "scib: out of memory");
        goto done;
    }
    memcpy(bat, tmp, (size_t)m * sizeof *bat);
    out->n_labels_used = L;
    out->n_batches_used = B;
    char iters[32];
    if (opt.leiden_iterations < 0) snprintf(iters, sizeof iters, "until stable");
    else snprintf(iters, sizeof iters, "%d iterations", opt.leiden_iterations);
    snprintf(out->protocol, sizeof out->protocol,
             "exact %d-NN (self incl.), UMAP connectivities, Leiden igraph modularity res %.2g..%.2g step %.2g "
             "seed %llu, %s, best NMI; averages without min-max scaling",
             opt.k, opt.res_min, opt.res_max, opt.res_step, (unsigned long long)opt.seed, iters);
    int bio_ok = L >= 2, batch_ok = B >= 2;
    if (!bio_ok) note_add(out, "one label: NMI, ARI, label ASW, cLISI, isolated ASW undefined");
    if (!batch_ok) note_add(out, "one batch: batch metrics undefined");

    int kmax = opt.k;
    if (batch_ok && opt.kbet && kmax < KBET_K) kmax = KBET_K;
    if (opt.lisi && kmax < LISI_K) kmax = LISI_K;
    step(&opt, "knn");
    if ((st = bmfm_knn_build(x, m, d, kmax, &knn))) goto done;

    if (bio_ok) {
        memb = bmfm_malloc((size_t)m * sizeof *memb);
        sil = bmfm_malloc((size_t)m * sizeof *sil);
        if (!memb || !sil) {
            st = BMFM_E_NOMEM;
            goto done;
        }
    }
    {
        /* The 15-NN connectivities and the Leiden scan (igraph:
         * single-threaded and not thread-safe) run on one thread while the
         * other metrics use the rest (graph connectivity waits for the
         * connectivities: scib_w15); then both
         * take the caller's beside_leiden jobs, and if the other thread is
         * out of work while the scan goes on, it forks processes that take
         * some of the scan's resolutions; each metric is
         * the same code whatever its team size (thread-count independent),
         * so the numbers do not change. */
        scib_ctx c = {.opt = &opt, .out = out, .x = x, .m = m, .d = d, .lab = lab, .L = L, .bat = bat, .B = B,
                      .knn = &knn, .k15 = &k15, .w15 = &w15, .memb = memb, .sil = sil, .xp = xp,
                      .d_pre = d_pre, .bio_ok = bio_ok, .batch_ok = batch_ok};
        int nth = omp_get_max_threads(), levels = omp_get_max_active_levels();
        int overlap = nth > 1 && bio_ok;
        bmfm_status st_l = BMFM_OK, st_r = BMFM_OK;
        int next_job = 0;
        bmfm_error_saved err[2]; /* each section's failure (error.h) */
        if (overlap && levels < 2) omp_set_max_active_levels(2);
#pragma omp parallel sections num_threads(overlap ? 2 : 1)
        {
#pragma omp section
            {
                if (overlap) omp_set_num_threads(1);
                bmfm_error_clear();
                if ((st_l = bio_ok ? scib_leiden(&c) : scib_w15(&c))) stop_beside_jobs(&opt, &next_job);
                if (!st_l) st_l = run_beside_jobs(&opt, &next_job);
                bmfm_error_save(st_l, &err[0]);
            }
#pragma omp section
            {
                if (overlap) omp_set_num_threads(nth - 1);
                bmfm_error_clear();
                if ((st_r = scib_rest(&c))) stop_beside_jobs(&opt, &next_job);
                else st_r = run_beside_jobs(&opt, &next_job);
                /* nothing left for this thread: if the scan still has
                 * resolutions to do, the scanning thread forks processes
                 * that take some, while this one waits at the end of the
                 * sections (no thread in malloc or BLAS then: leiden.h) */
                if (!st_r && overlap && scib_w15(&c) == BMFM_OK) bmfm_leiden_scan_help(c.leiden, nth - 1);
                bmfm_error_save(st_r, &err[1]);
            }
        }
        if (overlap && levels < 2) omp_set_max_active_levels(levels);
        bmfm_leiden_scan_free(c.leiden);
        if ((st = bmfm_error_restore(&err[st_l ? 0 : 1]))) goto done;
    }
    out->avg_bio = (out->nmi + out->ari + out->asw_label) / 3.0;
    out->avg_batch = (out->asw_batch + out->graph_conn) / 2.0;
    out->overall = 0.6 * out->avg_bio + 0.4 * out->avg_batch;
done:
    free(x);
    free(xp);
    free(lab);
    free(bat);
    free(tmp);
    free(memb);
    free(sil);
    bmfm_knn_free(&knn);
    bmfm_knn_free(&k15);
    bmfm_wgraph_free(&w15);
    return st;
}
