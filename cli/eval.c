/* eval.c - `bmfm eval`: scib metrics (src/eval/scib.h) and, on request, the
 * linear/kNN probe (src/eval/probe.h) of one or more obsm embeddings, as a
 * table on stdout and optionally JSON. Argument parsing, label encoding and
 * output only; the numbers come from the library.
 */
#include "cli.h"

#include "base/alloc.h"
#include "base/cpu_place.h"
#include "base/fileutil.h"
#include "base/log.h"
#include "base/progress.h"
#include "base/strmap.h"
#include "eval/probe.h"
#include "eval/scib.h"
#include "io/dataset.h"

#include <cJSON.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void openblas_set_num_threads(int);

static const char *CMD = "eval";

static void usage(FILE *f) {
    fprintf(f,
            "usage: bmfm eval IN.h5ad --embedding KEY[,KEY2...] --label COL [options]\n"
            "\n"
            "Scores cell embeddings stored in obsm the way the field does (docs/eval.md):\n"
            "NMI/ARI of the best Leiden clustering over resolutions 0.2..2.0 (first best NMI),\n"
            "label ASW, and with --batch: batch ASW, graph connectivity, iLISI/cLISI, kBET,\n"
            "PCR, isolated-label ASW; AvgBio = mean(NMI, ARI, ASW_label), AvgBatch =\n"
            "mean(ASW_batch, GC), Overall = 0.6 AvgBio + 0.4 AvgBatch (no min-max scaling).\n"
            "Rows with NaN in an embedding and cells with a missing label are dropped and\n"
            "counted. Undefined metrics print as n/a with the reason below the table.\n"
            "\n"
            "options:\n"
            "  --embedding KEYS  comma-separated obsm keys (one table row each)\n"
            "  --label COL       obs column with the cell-type labels\n"
            "  --batch COL       obs column with the batch; without it batch metrics are n/a\n"
            "  --pre KEY         obsm key of the unintegrated embedding for the PCR comparison\n"
            "  --probe           also run the linear (logistic regression) and kNN probes:\n"
            "                    5-fold stratified CV, mean macro F1 and accuracy; with --batch\n"
            "                    also leave-one-batch-out (train on the other batches)\n"
            "  --heldout NAME    with --probe and --batch: hold out only batch NAME (train on\n"
            "                    the others) instead of every batch in turn\n"
            "  --probe-k N       neighbours of the kNN probe (default 5)\n"
            "  --json OUT        write every number to OUT (JSON, null = undefined)\n"
            "  --k N             neighbours for the graph metrics, incl. self (default 15)\n"
            "  --seed N          Leiden and fold seed (default 0)\n"
            "  --leiden-iterations N  Leiden iterations per resolution (default: until\n"
            "                    stable, as scanpy's leidenalg flavor; 2 = scanpy's igraph\n"
            "                    flavor / scib-metrics, faster, NMI/ARI may differ slightly)\n"
            "  --no-lisi, --no-kbet  skip these (the slowest) metrics\n"
            "  --threads N       threads (default: all cores)\n"
            "  -q, --quiet       no progress lines on stderr\n"
            "  -h, --help        this text\n"
            "exit codes: 0 ok, 2 bad input (missing key or column, unreadable file).\n");
}

/* "a, b, c" (at most ~300 characters) for error messages. */
static const char *join_names(const char *const *names, int64_t n, char *buf, size_t size) {
    buf[0] = 0;
    for (int64_t i = 0; i < n && strlen(buf) < 300; i++)
        snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", i ? ", " : "", names[i]);
    return buf;
}

/* obs column -> codes 0..n_cat-1 (-1 missing); names sorted for determinism. */
static bmfm_status column_codes(bmfm_dataset *ds, const char *col, int32_t **codes, char ***names,
                                int64_t *n_cat) {
    bmfm_column c = {0};
    bmfm_strmap map = {0};
    bmfm_status st = bmfm_dataset_obs_column(ds, col, &c);
    if (st) {
        const char *const *cols = NULL;
        int64_t nc = 0;
        char avail[400] = "";
        if (bmfm_dataset_obs_columns(ds, &cols, &nc) == BMFM_OK) join_names(cols, nc, avail, sizeof avail);
        return bmfm_error_set(BMFM_E_INPUT, "%s: obs column '%s' not found or unreadable (obs has: %s)",
                              bmfm_dataset_path(ds), col, avail[0] ? avail : "no columns");
    }
    int64_t n = c.n;
    *codes = bmfm_malloc((size_t)(n ? n : 1) * sizeof **codes);
    char **first = bmfm_calloc((size_t)(n ? n : 1), sizeof *first);
    int64_t *order = NULL, k = 0;
    if (!*codes || !first || bmfm_strmap_init(&map, 64)) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        char buf[64];
        const char *t = bmfm_column_text(&c, i, buf, sizeof buf);
        if (!t) {
            (*codes)[i] = -1;
            continue;
        }
        int64_t v;
        if (!bmfm_strmap_get(&map, t, &v)) {
            v = k;
            if (bmfm_strmap_put(&map, t, v, NULL) < 0 || !(first[k] = bmfm_strdup(t))) {
                st = BMFM_E_NOMEM;
                goto done;
            }
            k++;
        }
        (*codes)[i] = (int32_t)v;
    }
    /* sort names, remap codes */
    order = bmfm_malloc((size_t)(k ? k : 1) * sizeof *order);
    if (!order) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < k; i++) order[i] = i;
    for (int64_t i = 1; i < k; i++) /* insertion sort: label sets are small */
        for (int64_t j = i; j > 0 && strcmp(first[order[j - 1]], first[order[j]]) > 0; j--) {
            int64_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    int64_t *rank = bmfm_malloc((size_t)(k ? k : 1) * sizeof *rank);
    *names = bmfm_malloc((size_t)(k ? k : 1) * sizeof **names);
    if (!rank || !*names) {
        free(rank);
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < k; i++) {
        rank[order[i]] = i;
        (*names)[i] = first[order[i]];
        first[order[i]] = NULL;
    }
    for (int64_t i = 0; i < n; i++)
        if ((*codes)[i] >= 0) (*codes)[i] = (int32_t)rank[(*codes)[i]];
    free(rank);
    *n_cat = k;
done:
    if (first)
        for (int64_t i = 0; i < n; i++) free(first[i]);
    free(first);
    free(order);
    bmfm_strmap_free(&map);
    bmfm_column_free(&c);
    return st;
}

static void free_names(char **names, int64_t n) {
    if (!names) return;
    for (int64_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static bmfm_status read_embedding(bmfm_dataset *ds, const char *key, float **emb, int64_t *d) {
    int64_t rows = 0;
    bmfm_status st = bmfm_dataset_obsm_read(ds, key, emb, &rows, d);
    if (st) {
        const char *const *keys = NULL;
        int64_t nk = 0;
        char avail[400] = "";
        if (bmfm_dataset_obsm_keys(ds, &keys, &nk) == BMFM_OK) join_names(keys, nk, avail, sizeof avail);
        return bmfm_error_set(BMFM_E_INPUT, "%s: obsm['%s'] not found or unreadable (obsm has: %s)",
                              bmfm_dataset_path(ds), key, avail[0] ? avail : "no keys");
    }
    if (rows != bmfm_dataset_n_obs(ds)) {
        free(*emb);
        *emb = NULL;
        return bmfm_error_set(BMFM_E_INPUT, "%s: obsm['%s'] has %lld rows, expected %lld", bmfm_dataset_path(ds),
                              key, (long long)rows, (long long)bmfm_dataset_n_obs(ds));
    }
    return BMFM_OK;
}

typedef struct {
    int quiet;
    const char *key;
    double t0;
} progress_ctx;

static void on_step(const char *s, void *vctx) {
    progress_ctx *p = vctx;
    if (!p->quiet) fprintf(stderr, "bmfm eval: [%s] %s (%.1fs)\n", p->key, s, bmfm_now_seconds() - p->t0);
}

/* One table row per embedding. */
typedef struct {
    char *key;
    bmfm_scib_result scib;
    int has_probe, has_heldout;
    bmfm_probe_result probe, heldout;
} eval_row;

/* The linear and kNN probes of one embedding (--probe), run by
 * bmfm_scib_compute beside its Leiden scan. */
typedef struct {
    eval_row *row;
    const float *emb;
    int64_t n, d;
    const int32_t *lab;
    int64_t n_lab;
    const int32_t *bat;
    int64_t n_bat;
    int test_batch;
    uint64_t seed;
    int knn_k;
    progress_ctx *pc;
} probe_job;

/* Job 0: 5-fold CV; job 1 (with a batch column): the held-out batch probe. */
static bmfm_status run_probe(void *vjob, int job) {
    probe_job *j = vjob;
    bmfm_probe_options po;
    bmfm_status st;
    bmfm_probe_options_default(&po);
    po.seed = j->seed;
    po.knn_k = j->knn_k;
    if (job == 0) {
        on_step("probe: 5-fold CV", j->pc);
        if ((st = bmfm_probe_cv(j->emb, j->n, j->d, j->lab, j->n_lab, &po, &j->row->probe))) return st;
        j->row->has_probe = 1;
        return BMFM_OK;
    }
    on_step(j->test_batch < 0 ? "probe: leave-one-batch-out" : "probe: held-out batch", j->pc);
    if ((st = bmfm_probe_heldout_batch(j->emb, j->n, j->d, j->lab, j->n_lab, j->bat, j->n_bat, j->test_batch, &po,
                                       &j->row->heldout)))
        return st;
    j->row->has_heldout = 1;
    return BMFM_OK;
}

enum { M_NMI, M_ARI, M_ASWL, M_ASWB, M_GC, M_ILISI, M_CLISI, M_KBET, M_PCR, M_ISO, M_BIO, M_BATCH, M_ALL,
       M_LRF1, M_LRACC, M_KNNF1, M_HOF1, M_COUNT };
static const char *metric_names[M_COUNT] = {"NMI", "ARI", "ASW_label", "ASW_batch", "graph_conn", "iLISI",
                                            "cLISI", "kBET", "PCR_batch", "iso_ASW", "AvgBio", "AvgBatch",
                                            "Overall", "probe_F1", "probe_acc", "kNN_F1", "heldout_F1"};
static const char *json_names[M_COUNT] = {"nmi", "ari", "asw_label", "asw_batch", "graph_conn", "ilisi",
                                          "clisi", "kbet", "pcr_batch", "isolated_asw", "avg_bio", "avg_batch",
                                          "overall", "probe_lr_f1_macro", "probe_lr_accuracy",
                                          "probe_knn_f1_macro", "probe_heldout_batch_lr_f1_macro"};

static double metric(const eval_row *r, int m) {
    const bmfm_scib_result *s = &r->scib;
    switch (m) {
    case M_NMI: return s->nmi;
    case M_ARI: return s->ari;
    case M_ASWL: return s->asw_label;
    case M_ASWB: return s->asw_batch;
    case M_GC: return s->graph_conn;
    case M_ILISI: return s->ilisi;
    case M_CLISI: return s->clisi;
    case M_KBET: return s->kbet;
    case M_PCR: return s->pcr;
    case M_ISO: return s->isolated_asw;
    case M_BIO: return s->avg_bio;
    case M_BATCH: return s->avg_batch;
    case M_ALL: return s->overall;
    case M_LRF1: return r->has_probe ? r->probe.lr_f1_macro : NAN;
    case M_LRACC: return r->has_probe ? r->probe.lr_accuracy : NAN;
    case M_KNNF1: return r->has_probe ? r->probe.knn_f1_macro : NAN;
    case M_HOF1: return r->has_heldout ? r->heldout.lr_f1_macro : NAN;
    }
    return NAN;
}

static int metric_shown(int m, int probe, int batch) {
    if (m >= M_LRF1 && !probe) return 0;
    if (m == M_HOF1 && !batch) return 0;
    return 1;
}

static void print_table(const eval_row *rows, int nr, int probe, int batch, int probe_k) {
    int w = 9;
    for (int i = 0; i < nr; i++)
        if ((int)strlen(rows[i].key) > w) w = (int)strlen(rows[i].key);
    printf("%-*s", w, "embedding");
    for (int m = 0; m < M_COUNT; m++)
        if (metric_shown(m, probe, batch)) printf("  %10s", metric_names[m]);
    printf("  %8s  %7s\n", "cells", "dropped");
    for (int i = 0; i < nr; i++) {
        printf("%-*s", w, rows[i].key);
        for (int m = 0; m < M_COUNT; m++) {
            if (!metric_shown(m, probe, batch)) continue;
            double v = metric(&rows[i], m);
            if (isnan(v)) printf("  %10s", "n/a");
            else printf("  %10.4f", v);
        }
        printf("  %8lld  %7lld\n", (long long)rows[i].scib.n_cells_used,
               (long long)(rows[i].scib.n_dropped_nan + rows[i].scib.n_dropped_missing));
    }
    if (nr) printf("\nprotocol: %s\n", rows[0].scib.protocol);
    if (probe)
        printf("probe: 5-fold stratified CV (own seeded folds), StandardScaler(with_mean=False), "
               "LogisticRegression(C=1, lbfgs, max_iter=100), kNN k=%d; classes < 10 cells dropped\n",
               probe_k);
    for (int i = 0; i < nr; i++) {
        const eval_row *r = &rows[i];
        if (r->scib.best_resolution > 0 || r->scib.n_clusters > 0)
            printf("%s: best Leiden resolution %.1f, %d clusters\n", r->key, r->scib.best_resolution,
                   r->scib.n_clusters);
        if (r->scib.n_dropped_nan) printf("%s: %lld cells with NaN embedding rows dropped\n", r->key,
                                          (long long)r->scib.n_dropped_nan);
        if (r->scib.n_dropped_missing)
            printf("%s: %lld cells with a missing label/batch dropped\n", r->key,
                   (long long)r->scib.n_dropped_missing);
        if (r->scib.note[0]) printf("%s: n/a: %s\n", r->key, r->scib.note);
        if (r->has_probe && r->probe.note[0]) printf("%s: probe: %s\n", r->key, r->probe.note);
        if (r->has_probe && r->probe.n_classes_dropped)
            printf("%s: probe: %d class(es) with < 10 cells dropped\n", r->key, r->probe.n_classes_dropped);
        if (r->has_probe && r->probe.lr_not_converged)
            printf("%s: probe: %d logistic-regression fit(s) hit max_iter (sklearn would warn too)\n", r->key,
                   r->probe.lr_not_converged);
        if (r->has_heldout && r->heldout.note[0]) printf("%s: held-out batch: %s\n", r->key, r->heldout.note);
    }
}

static cJSON *num_or_null(double v) { return isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v); }

static cJSON *probe_json(const bmfm_probe_result *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "lr_f1_macro", num_or_null(p->lr_f1_macro));
    cJSON_AddItemToObject(o, "lr_accuracy", num_or_null(p->lr_accuracy));
    cJSON_AddItemToObject(o, "knn_f1_macro", num_or_null(p->knn_f1_macro));
    cJSON_AddItemToObject(o, "knn_accuracy", num_or_null(p->knn_accuracy));
    cJSON *f = cJSON_AddArrayToObject(o, "lr_f1_per_fold");
    for (int i = 0; i < p->n_folds; i++) cJSON_AddItemToArray(f, num_or_null(p->lr_f1_fold[i]));
    cJSON_AddNumberToObject(o, "n_folds", p->n_folds);
    cJSON_AddNumberToObject(o, "n_classes", p->n_classes);
    cJSON_AddNumberToObject(o, "n_classes_dropped", p->n_classes_dropped);
    cJSON_AddNumberToObject(o, "n_cells_used", (double)p->n_cells_used);
    cJSON_AddNumberToObject(o, "lr_not_converged", p->lr_not_converged);
    cJSON_AddStringToObject(o, "note", p->note);
    return o;
}

static bmfm_status write_json(const char *path, const char *in, const char *label, const char *batch,
                              const eval_row *rows, int nr, int probe) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "input", in);
    cJSON_AddStringToObject(root, "label", label);
    if (batch) cJSON_AddStringToObject(root, "batch", batch);
    else cJSON_AddNullToObject(root, "batch");
    if (nr) cJSON_AddStringToObject(root, "protocol", rows[0].scib.protocol);
    cJSON *arr = cJSON_AddArrayToObject(root, "embeddings");
    for (int i = 0; i < nr; i++) {
        const eval_row *r = &rows[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "key", r->key);
        for (int m = 0; m < M_LRF1; m++) cJSON_AddItemToObject(e, json_names[m], num_or_null(metric(r, m)));
        cJSON_AddItemToObject(e, "best_resolution", num_or_null(r->scib.best_resolution));
        cJSON_AddNumberToObject(e, "n_clusters", r->scib.n_clusters);
        cJSON_AddItemToObject(e, "pcr_comparison", num_or_null(r->scib.pcr_comparison));
        cJSON_AddNumberToObject(e, "n_cells_used", (double)r->scib.n_cells_used);
        cJSON_AddNumberToObject(e, "n_dropped_nan", (double)r->scib.n_dropped_nan);
        cJSON_AddNumberToObject(e, "n_dropped_missing", (double)r->scib.n_dropped_missing);
        cJSON_AddStringToObject(e, "note", r->scib.note);
        if (probe) {
            cJSON_AddItemToObject(e, "probe", r->has_probe ? probe_json(&r->probe) : cJSON_CreateNull());
            cJSON_AddItemToObject(e, "probe_heldout_batch",
                                  r->has_heldout ? probe_json(&r->heldout) : cJSON_CreateNull());
        }
        cJSON_AddItemToArray(arr, e);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return bmfm_error_set(BMFM_E_NOMEM, "eval: JSON serialisation failed");
    char tmp[4200];
    bmfm_status st = bmfm_atomic_tmp_path(path, tmp, sizeof tmp);
    if (!st) {
        FILE *f = fopen(tmp, "w");
        if (!f) st = bmfm_error_set(BMFM_E_IO, "%s: cannot write", tmp);
        else {
            int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
            ok = (fclose(f) == 0) && ok;
            if (!ok) {
                bmfm_atomic_abort(tmp);
                st = bmfm_error_set(BMFM_E_IO, "%s: write failed", path);
            } else {
                st = bmfm_atomic_commit(tmp, path);
            }
        }
    }
    free(text);
    return st;
}

int bmfm_cmd_eval(int argc, char **argv) {
    /* The metrics allocate and free blocks of 0.1-10 MB step after step; by
     * default glibc maps each afresh (first-touch page faults every time).
     * Kept in the heap instead: 16.3k -> 13.3k page faults on pbmc8k. */
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
    static const struct option opts[] = {
        {"embedding", required_argument, 0, 'e'}, {"label", required_argument, 0, 'l'},
        {"batch", required_argument, 0, 'b'},     {"pre", required_argument, 0, 'p'},
        {"probe", no_argument, 0, 'P'},           {"probe-k", required_argument, 0, 'K'},
        {"json", required_argument, 0, 'j'},      {"k", required_argument, 0, 'k'},
        {"seed", required_argument, 0, 's'},      {"threads", required_argument, 0, 't'},
        {"no-lisi", no_argument, 0, 'L'},         {"no-kbet", no_argument, 0, 'B'},
        {"quiet", no_argument, 0, 'q'},           {"verbose", no_argument, 0, 'v'},
        {"heldout", required_argument, 0, 'H'},   {"help", no_argument, 0, 'h'},
        {"leiden-iterations", required_argument, 0, 'I'}, {0, 0, 0, 0}};
    const char *emb_arg = NULL, *label = NULL, *batch = NULL, *pre_key = NULL, *json = NULL, *heldout = NULL;
    int probe = 0, quiet = 0, verbose = 0, no_lisi = 0, no_kbet = 0;
    long k = 15, seed = 0, threads = 0, probe_k = 5, leiden_iters = -1;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "qvh", opts, NULL)) != -1) {
        switch (c) {
        case 'e': emb_arg = optarg; break;
        case 'l': label = optarg; break;
        case 'b': batch = optarg; break;
        case 'p': pre_key = optarg; break;
        case 'P': probe = 1; break;
        case 'K': if (bmfm_cli_parse_int(CMD, "--probe-k", optarg, 1, 1000, &probe_k)) return BMFM_EXIT_INPUT; break;
        case 'j': json = optarg; break;
        case 'k': if (bmfm_cli_parse_int(CMD, "--k", optarg, 2, 1000, &k)) return BMFM_EXIT_INPUT; break;
        case 's': if (bmfm_cli_parse_int(CMD, "--seed", optarg, 0, 2147483647L, &seed)) return BMFM_EXIT_INPUT; break;
        case 't': if (bmfm_cli_parse_int(CMD, "--threads", optarg, 1, 1024, &threads)) return BMFM_EXIT_INPUT; break;
        case 'H': heldout = optarg; break;
        case 'I':
            if (bmfm_cli_parse_int(CMD, "--leiden-iterations", optarg, 1, 1000, &leiden_iters)) return BMFM_EXIT_INPUT;
            break;
        case 'L': no_lisi = 1; break;
        case 'B': no_kbet = 1; break;
        case 'q': quiet = 1; break;
        case 'v': verbose++; break;
        case 'h': usage(stdout); return BMFM_EXIT_OK;
        default: return bmfm_cli_usage_error(CMD, "unknown option");
        }
    }
    bmfm_cli_set_verbosity(quiet, verbose);
    if (optind != argc - 1) return bmfm_cli_usage_error(CMD, "expected one input file");
    if (!emb_arg) return bmfm_cli_usage_error(CMD, "--embedding is required");
    if (!label) return bmfm_cli_usage_error(CMD, "--label is required");
    if (threads > 0) {
        omp_set_num_threads((int)threads);
        openblas_set_num_threads((int)threads);
    }
    bmfm_cpu_spread_omp_threads(); /* before the first parallel work (cpu_place.h) */
    const char *in = argv[optind];
    int rc = BMFM_EXIT_OK;
    bmfm_status st = BMFM_OK;
    bmfm_dataset *ds = NULL;
    int32_t *lab = NULL, *bat = NULL;
    char **lab_names = NULL, **bat_names = NULL;
    int64_t n_lab = 0, n_bat = 0;
    float *pre = NULL, *emb = NULL;
    int64_t d_pre = 0;
    char *keys = bmfm_strdup(emb_arg);
    eval_row rows[64];
    int nr = 0;
    memset(rows, 0, sizeof rows);
    if (!keys) return bmfm_cli_fail(CMD, BMFM_E_NOMEM);
    if ((st = bmfm_dataset_open(in, NULL, &ds))) goto fail;
    if ((st = column_codes(ds, label, &lab, &lab_names, &n_lab))) goto fail;
    if (batch && (st = column_codes(ds, batch, &bat, &bat_names, &n_bat))) goto fail;
    if (pre_key && (st = read_embedding(ds, pre_key, &pre, &d_pre))) goto fail;
    int test_batch = -1;
    if (heldout) {
        if (!bat || !probe) {
            rc = bmfm_cli_usage_error(CMD, "--heldout needs --probe and --batch");
            goto done;
        }
        for (int64_t b = 0; b < n_bat; b++)
            if (!strcmp(bat_names[b], heldout)) test_batch = (int)b;
        if (test_batch < 0) {
            char avail[400];
            st = bmfm_error_set(BMFM_E_INPUT, "--heldout: batch '%s' not in column '%s' (has: %s)", heldout, batch,
                                join_names((const char *const *)bat_names, n_bat, avail, sizeof avail));
            goto fail;
        }
    }
    /* check every key up front, so a typo fails before minutes of work;
     * the first embedding is kept for the first row */
    int64_t d_first = 0;
    for (char *save = NULL, *key = strtok_r(keys, ",", &save); key; key = strtok_r(NULL, ",", &save)) {
        if (nr == 64) {
            st = bmfm_error_set(BMFM_E_INPUT, "at most 64 embeddings per run");
            goto fail;
        }
        float *e = NULL;
        int64_t d;
        if ((st = read_embedding(ds, key, &e, &d))) goto fail;
        if (nr == 0) {
            emb = e;
            d_first = d;
        } else {
            free(e);
        }
        rows[nr++].key = key;
    }
    if (!nr) {
        rc = bmfm_cli_usage_error(CMD, "--embedding names no obsm key");
        goto done;
    }
    int64_t n = bmfm_dataset_n_obs(ds);
    double t0 = bmfm_now_seconds();
    for (int i = 0; i < nr; i++) {
        eval_row *r = &rows[i];
        int64_t d = d_first;
        if (i > 0 && (st = read_embedding(ds, r->key, &emb, &d))) goto fail;
        progress_ctx pc = {quiet, r->key, t0};
        bmfm_scib_options so;
        bmfm_scib_options_default(&so);
        so.k = (int)k;
        so.seed = (uint64_t)seed;
        so.leiden_iterations = (int)leiden_iters;
        if (no_lisi) so.lisi = 0;
        if (no_kbet) so.kbet = 0;
        so.progress = on_step;
        so.progress_ctx = &pc;
        probe_job pj = {r, emb, n, d, lab, n_lab, bat, n_bat, (int)test_batch, (uint64_t)seed, (int)probe_k, &pc};
        if (probe) {
            so.beside_jobs = bat ? 2 : 1;
            so.beside_leiden = run_probe;
            so.beside_leiden_ctx = &pj;
        }
        if ((st = bmfm_scib_compute(emb, n, d, lab, n_lab, bat, n_bat, pre, d_pre, &so, &r->scib))) goto fail;
        free(emb);
        emb = NULL;
    }
    print_table(rows, nr, probe, bat != NULL, (int)probe_k);
    if (json && (st = write_json(json, in, label, batch, rows, nr, probe))) goto fail;
    goto done;
fail:
    rc = bmfm_cli_fail(CMD, st);
done:
    free(keys);
    free(emb);
    free(pre);
    free(lab);
    free(bat);
    free_names(lab_names, n_lab);
    free_names(bat_names, n_bat);
    bmfm_dataset_close(ds);
    return rc;
}
