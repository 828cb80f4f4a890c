/* baseline.c - `bmfm baseline pca`: the scanpy-style PCA baseline
 * (src/eval/pca.h) written to obsm of a copy of the input. Argument parsing,
 * the dataset row source and output only.
 */
#include "cli.h"

#include "base/cpu_place.h"
#include "base/progress.h"
#include "eval/pca.h"
#include "io/dataset.h"
#include "io/h5ad_write.h"

#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void openblas_set_num_threads(int);

static const char *CMD = "baseline";

static void usage(FILE *f) {
    fprintf(f,
            "usage: bmfm baseline pca IN -o OUT.h5ad [options]\n"
            "\n"
            "The PCA baseline embedding of cz-benchmarks / scanpy (docs/eval.md):\n"
            "normalize_total to the median library size, log1p, highly variable genes,\n"
            "optional scaling, PCA (exact, signs as sklearn's svd_flip), written to\n"
            "obsm[KEY] of a copy of IN (all other content kept). When the matrix holds\n"
            "values that are not non-negative integers it is taken as already\n"
            "log-normalised and normalize_total/log1p are skipped (said on stderr).\n"
            "\n"
            "options:\n"
            "  -o, --output OUT   output .h5ad (written atomically; may equal IN)\n"
            "  --n-hvg N          highly variable genes (default 3000; 0 = all genes)\n"
            "  --flavor F         seurat (default) or cell_ranger (seurat_v3: not implemented)\n"
            "  --n-pcs N          principal components (default 50; at most min(cells, genes) - 1)\n"
            "  --scale            zero mean, unit variance per gene, clipped at 10\n"
            "  --key KEY          obsm key to write (default X_pca)\n"
            "  --matrix M         X (default), raw, or layers/NAME\n"
            "  --input I          auto (default), counts, or log (already log-normalised)\n"
            "  --threads N        threads (default: all cores)\n"
            "  -q, --quiet        no progress lines\n"
            "  -h, --help         this text\n"
            "exit codes: 0 ok, 2 bad input or options.\n");
}

typedef struct {
    bmfm_dataset *ds;
    bmfm_csr block;
} ds_rows;

static bmfm_status read_ds(void *vctx, int64_t begin, int64_t end, const bmfm_csr **out) {
    ds_rows *r = vctx;
    bmfm_status st = bmfm_dataset_read_rows(r->ds, begin, end, &r->block);
    *out = &r->block;
    return st;
}

typedef struct {
    int quiet;
    double t0;
} step_ctx;

static void on_step(const char *s, void *vctx) {
    step_ctx *c = vctx;
    if (!c->quiet) fprintf(stderr, "bmfm baseline: %s (%.1fs)\n", s, bmfm_now_seconds() - c->t0);
}

int bmfm_cmd_baseline(int argc, char **argv) {
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'}, {"n-hvg", required_argument, 0, 'g'},
        {"flavor", required_argument, 0, 'f'}, {"n-pcs", required_argument, 0, 'n'},
        {"scale", no_argument, 0, 'S'},        {"key", required_argument, 0, 'k'},
        {"matrix", required_argument, 0, 'm'}, {"input", required_argument, 0, 'i'},
        {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},      {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return BMFM_EXIT_OK;
    }
    if (argc < 2 || strcmp(argv[1], "pca"))
        return bmfm_cli_usage_error(CMD, "expected 'bmfm baseline pca IN -o OUT'");
    argc--;
    argv++;
    const char *out = NULL, *key = "X_pca", *matrix = NULL;
    bmfm_baseline_options o;
    bmfm_baseline_options_default(&o);
    int quiet = 0, verbose = 0;
    long v;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:qvh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'g': if (bmfm_cli_parse_int(CMD, "--n-hvg", optarg, 0, 1000000000L, &v)) return BMFM_EXIT_INPUT; o.n_hvg = v; break;
        case 'f':
            if (bmfm_hvg_flavor_parse(optarg, &o.flavor)) return bmfm_cli_usage_error(CMD, "%s", bmfm_error_message());
            if (o.flavor == BMFM_HVG_SEURAT_V3)
                return bmfm_cli_usage_error(CMD, "--flavor seurat_v3 is not implemented (needs a loess fit on raw "
                                                 "counts); use seurat or cell_ranger");
            break;
        case 'n': if (bmfm_cli_parse_int(CMD, "--n-pcs", optarg, 1, 10000, &v)) return BMFM_EXIT_INPUT; o.n_comps = (int)v; break;
        case 'S': o.scale = 1; break;
        case 'k': key = optarg; break;
        case 'm': matrix = optarg; break;
        case 'i':
            if (!strcmp(optarg, "auto")) o.input = BMFM_BASELINE_INPUT_AUTO;
            else if (!strcmp(optarg, "counts")) o.input = BMFM_BASELINE_INPUT_COUNTS;
            else if (!strcmp(optarg, "log")) o.input = BMFM_BASELINE_INPUT_LOG;
            else return bmfm_cli_usage_error(CMD, "--input expects auto, counts or log, got '%s'", optarg);
            break;
        case 't':
            if (bmfm_cli_parse_int(CMD, "--threads", optarg, 1, 1024, &v)) return BMFM_EXIT_INPUT;
            omp_set_num_threads((int)v);
            openblas_set_num_threads((int)v);
            break;
        case 'q': quiet = 1; break;
        case 'v': verbose++; break;
        case 'h': usage(stdout); return BMFM_EXIT_OK;
        default: return bmfm_cli_usage_error(CMD, "unknown option");
        }
    }
    bmfm_cli_set_verbosity(quiet, verbose);
    bmfm_cpu_spread_omp_threads(); /* before the first parallel work (cpu_place.h) */
    if (optind != argc - 1) return bmfm_cli_usage_error(CMD, "expected one input file");
    if (!out) return bmfm_cli_usage_error(CMD, "-o OUT is required");
    if (!*key) return bmfm_cli_usage_error(CMD, "--key must not be empty");
    const char *in = argv[optind];
    step_ctx sc = {quiet, bmfm_now_seconds()};
    o.progress = on_step;
    o.progress_ctx = &sc;
    ds_rows src = {0};
    bmfm_pca_result r = {0};
    bmfm_h5ad_edit *ed = NULL;
    bmfm_status st = bmfm_dataset_open(in, matrix, &src.ds);
    if (st) goto fail;
    const bmfm_matrix_info *info = bmfm_dataset_info(src.ds);
    if ((st = bmfm_baseline_pca(info->n_obs, info->n_vars, read_ds, &src, &o, &r))) goto fail;
    if (!quiet) {
        if (r.normalized)
            fprintf(stderr, "bmfm baseline: normalize_total to the median library size %.6g, log1p\n", r.target_sum);
        if (r.note[0]) fprintf(stderr, "bmfm baseline: %s\n", r.note);
    }
    char prov[512];
    snprintf(prov, sizeof prov,
             "bmfm baseline pca: matrix=%s input=%s normalize_total(target=%.6g)+log1p=%s n_hvg=%lld flavor=%s "
             "scale=%d n_pcs=%lld solver=exact(dsyevr) sign=svd_flip(u)",
             info->location, o.input == BMFM_BASELINE_INPUT_AUTO ? "auto" : o.input == BMFM_BASELINE_INPUT_LOG ? "log" : "counts",
             r.target_sum, r.normalized ? "yes" : "no", (long long)r.n_genes, bmfm_hvg_flavor_name(o.flavor),
             o.scale, (long long)r.n_comps);
    char ukey[300];
    snprintf(ukey, sizeof ukey, "bmfm_%s_params", key);
    on_step("writing", &sc);
    if ((st = bmfm_h5ad_edit_begin(src.ds, out, &ed))) goto fail;
    if ((st = bmfm_h5ad_edit_put_obsm(ed, key, r.X_pca, r.n_obs, r.n_comps))) goto fail;
    if ((st = bmfm_h5ad_edit_put_uns_string(ed, ukey, prov))) goto fail;
    st = bmfm_h5ad_edit_commit(ed);
    ed = NULL;
    if (st) goto fail;
    double vsum = 0;
    for (int64_t i = 0; i < r.n_comps; i++) vsum += r.variance_ratio[i];
    printf("%s: obsm['%s'] = %lld x %lld PCs of %lld genes (%s); variance ratio PC1 %.4f, all %lld PCs %.4f\n",
           out, key, (long long)r.n_obs, (long long)r.n_comps, (long long)r.n_genes,
           r.normalized ? "normalize_total+log1p" : "input taken as log-normalised", r.variance_ratio[0],
           (long long)r.n_comps, vsum);
    goto done;
fail:;
    int rc = bmfm_cli_fail(CMD, st);
    if (ed) bmfm_h5ad_edit_abort(ed);
    bmfm_pca_result_free(&r);
    bmfm_csr_free(&src.block);
    bmfm_dataset_close(src.ds);
    return rc;
done:
    bmfm_pca_result_free(&r);
    bmfm_csr_free(&src.block);
    bmfm_dataset_close(src.ds);
    return BMFM_EXIT_OK;
}
