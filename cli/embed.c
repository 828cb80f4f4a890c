/* embed.c - `bmfm embed`: cell embeddings into obsm; also the option parsing
 * shared with `bmfm annotate` (cli/annotate.c), which adds the label heads. */
#include "cli.h"

#include "base/cpu_place.h"
#include "base/log.h"
#include "infer/job.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int bmfm_cli_infer_main(int argc, char **argv, int annotate);

static void usage(FILE *f, const char *cmd, int annotate) {
    fprintf(f,
            "usage: bmfm %s IN [-m MODEL_DIR] (-o OUT | --inplace) [options]\n\n"
            "%s\n\n"
            "IN is an .h5ad file or a 10x matrix directory; the output is a copy of the input\n"
            "(a new .h5ad for 10x) with obsm[KEY]%s, written to a temporary name and renamed\n"
            "only when complete. Cells with no gene in the model vocabulary get NaN rows.\n\n"
            "options:\n"
            "  -m, --model DIR        model directory (config.json, model.safetensors,\n"
            "                         checkpoint_metadata.json, tokenizers/genes/); default:\n"
            "                         $BMFM_MODEL, else the bundled small model models/default\n"
            "                         beside the binary (see docs/training.md for what it is)\n"
            "  -o, --output FILE      output .h5ad\n"
            "      --inplace          edit IN itself (through a temporary copy)\n"
            "      --pooling P        first_token | mean_pooling | pooling_layer | <k> | a,b,...\n"
            "                         (concatenated in order); default: the checkpoint's\n"
            "                         pooling_method, else first_token\n"
            "      --key KEY          obsm key (default X_bmfm)\n"
            "      --max-length N     tokens per cell incl. special tokens (default 1024; for a\n"
            "                         model from `bmfm pretrain`, its training length)\n"
            "      --batch-size N     cells per forward batch at most (default 8)\n"
            "      --token-budget N   tokens per forward batch at most (default 16384)\n"
            "      --layer NAME       input matrix: a layer of IN, or 'raw' for raw/X (default X),\n"
            "                         as the reference's layer= swaps X with adata.layers[NAME]\n"
            "      --order O          gene order: var (default, as the reference API), sorted\n"
            "                         (count descending), random (with --seed; the default for\n"
            "                         models from `bmfm pretrain`, which train on random order)\n"
            "      --seed S           seed of the random order (default 0)\n"
            "      --normalize M      auto (default: detect log-normalized input and pass it\n"
            "                         through), raw (always ln(1+c/(S+1)*1e4)), none (pass through)\n"
            "      --gene-list FILE   allowed genes (e.g. protein-coding list), intersected with\n"
            "                         the vocabulary (default: MODEL_DIR/protein_coding_genes.json\n"
            "                         when present, else every vocabulary gene)\n"
            "      --var-column COL   gene names from this var column instead of the var index\n"
            "      --case-insensitive match gene names ignoring case (the reference: exact)\n"
            "      --threads N        OpenMP threads (results do not depend on it)\n"
            "  -q, --quiet / -v, --verbose\n",
            cmd,
            annotate ? "Cell embeddings and cell-type calls from a BMFM-RNA model."
                     : "Cell embeddings from a BMFM-RNA model.",
            annotate ? " and one obs column per label head" : "");
    if (annotate)
        fprintf(f,
                "\nannotate options:\n"
                "      --prefix P         obs column prefix (default bmfm_pred_)\n"
                "      --no-embedding     do not write obsm[KEY]\n"
                "      --ontology OBO     Cell Ontology (e.g. cl-basic.obo) to decode ontology heads:\n"
                "                         adds _name, _greedy, _call (abstaining), _call_name,\n"
                "                         _call_prob columns\n"
                "      --decode D         leaf (default, the reference's leaf argmax) or greedy:\n"
                "                         what the main column of an ontology head holds\n"
                "      --min-prob TAU     the abstaining call stops at the deepest node on the\n"
                "                         greedy path with probability >= TAU (default 0.5)\n"
                "      --levels L         roll-up columns: depths '1,2,3' (_level<d>) and/or coarse\n"
                "                         types 'T cell;B cell;monocyte' (_coarse), ';'-separated\n"
                "      --probs            write every class probability as obsm <prefix><label>_probs\n"
                "      --logits           keep the raw logits as obsm <prefix><label>_logits\n");
    fprintf(f, "\nExit codes: 0 ok, 2 bad input or option (the output is left untouched).\n");
}

int bmfm_cli_infer_main(int argc, char **argv, int annotate) {
    const char *cmd = argv[0];
    bmfm_infer_job j;
    bmfm_infer_job_default(&j);
    j.annotate = annotate;
    j.pred.min_prob = 0.5;
    int inplace = 0, quiet = 0, verbose = 0;
    enum {
        O_POOL = 256, O_KEY, O_MAXLEN, O_BATCH, O_BUDGET, O_LAYER, O_ORDER, O_SEED, O_NORM, O_GENES,
        O_VARCOL, O_CASE, O_THREADS, O_INPLACE, O_PREFIX, O_NOEMB, O_ONTO, O_DECODE, O_MINP, O_LEVELS,
        O_PROBS, O_LOGITS
    };
    static const struct option base_opts[] = {
        {"model", required_argument, 0, 'm'},      {"output", required_argument, 0, 'o'},
        {"inplace", no_argument, 0, O_INPLACE},    {"pooling", required_argument, 0, O_POOL},
        {"key", required_argument, 0, O_KEY},      {"max-length", required_argument, 0, O_MAXLEN},
        {"batch-size", required_argument, 0, O_BATCH}, {"token-budget", required_argument, 0, O_BUDGET},
        {"layer", required_argument, 0, O_LAYER},  {"order", required_argument, 0, O_ORDER},
        {"seed", required_argument, 0, O_SEED},    {"normalize", required_argument, 0, O_NORM},
        {"gene-list", required_argument, 0, O_GENES}, {"var-column", required_argument, 0, O_VARCOL},
        {"case-insensitive", no_argument, 0, O_CASE}, {"threads", required_argument, 0, O_THREADS},
        {"quiet", no_argument, 0, 'q'},            {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        /* annotate only (rejected for embed below) */
        {"prefix", required_argument, 0, O_PREFIX}, {"no-embedding", no_argument, 0, O_NOEMB},
        {"ontology", required_argument, 0, O_ONTO}, {"decode", required_argument, 0, O_DECODE},
        {"min-prob", required_argument, 0, O_MINP}, {"levels", required_argument, 0, O_LEVELS},
        {"probs", no_argument, 0, O_PROBS},        {"logits", no_argument, 0, O_LOGITS},
        {0, 0, 0, 0}};
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:qvh", base_opts, NULL)) != -1) {
        if (!annotate && c >= O_PREFIX)
            return bmfm_cli_usage_error(cmd, "%s is an option of 'bmfm annotate'", argv[optind - 1]);
        switch (c) {
        case 'm': j.opts.model_dir = optarg; break;
        case 'o': j.output = optarg; break;
        case O_INPLACE: inplace = 1; break;
        case O_POOL: j.opts.pooling = optarg; break;
        case O_KEY: j.key = optarg; break;
        case O_MAXLEN:
            if (bmfm_cli_parse_int(cmd, "--max-length", optarg, 3, 1 << 20, &v)) return BMFM_EXIT_INPUT;
            j.opts.max_length = v;
            break;
        case O_BATCH:
            if (bmfm_cli_parse_int(cmd, "--batch-size", optarg, 1, 1 << 20, &v)) return BMFM_EXIT_INPUT;
            j.opts.batch_size = v;
            break;
        case O_BUDGET:
            if (bmfm_cli_parse_int(cmd, "--token-budget", optarg, 3, 1L << 30, &v)) return BMFM_EXIT_INPUT;
            j.opts.token_budget = v;
            break;
        case O_LAYER: j.layer = optarg; break;
        case O_ORDER: j.opts.order = optarg; break;
        case O_SEED:
            if (bmfm_cli_parse_int(cmd, "--seed", optarg, 0, 0x7fffffffffffffffL, &v)) return BMFM_EXIT_INPUT;
            j.opts.seed = (uint64_t)v;
            break;
        case O_NORM:
            if (!strcmp(optarg, "auto")) j.opts.normalize = -1;
            else if (!strcmp(optarg, "raw")) j.opts.normalize = 1;
            else if (!strcmp(optarg, "none")) j.opts.normalize = 0;
            else return bmfm_cli_usage_error(cmd, "--normalize '%s': expected auto, raw or none", optarg);
            break;
        case O_GENES: j.opts.gene_list = optarg; break;
        case O_VARCOL: j.opts.var_column = optarg; break;
        case O_CASE: j.opts.case_insensitive = 1; break;
        case O_THREADS:
            if (bmfm_cli_parse_int(cmd, "--threads", optarg, 1, 4096, &v)) return BMFM_EXIT_INPUT;
            j.opts.threads = (int)v;
            break;
        case O_PREFIX: j.prefix = optarg; break;
        case O_NOEMB: j.write_embedding = 0; break;
        case O_ONTO: j.pred.ontology = optarg; break;
        case O_DECODE:
            if (!strcmp(optarg, "leaf")) j.pred.decode = BMFM_DECODE_LEAF;
            else if (!strcmp(optarg, "greedy")) j.pred.decode = BMFM_DECODE_GREEDY;
            else return bmfm_cli_usage_error(cmd, "--decode '%s': expected leaf or greedy", optarg);
            break;
        case O_MINP: {
            double d;
            if (bmfm_cli_parse_double(cmd, "--min-prob", optarg, &d)) return BMFM_EXIT_INPUT;
            if (d < 0 || d > 1) return bmfm_cli_usage_error(cmd, "--min-prob %s: expected a value in [0, 1]", optarg);
            j.pred.min_prob = d;
            break;
        }
        case O_LEVELS: j.pred.levels = optarg; break;
        case O_PROBS: j.opts.want_probs = 1; break;
        case O_LOGITS: j.opts.want_logits = 1; break;
        case 'q': quiet = 1; break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout, cmd, annotate); return BMFM_EXIT_OK;
        default: return bmfm_cli_usage_error(cmd, "unknown option");
        }
    }
    bmfm_cli_set_verbosity(quiet, verbose);
    if (optind != argc - 1) return bmfm_cli_usage_error(cmd, "expected one input file (got %d)", argc - optind);
    j.input = argv[optind];
    if (!j.opts.model_dir) j.opts.model_dir = bmfm_cli_default_model();
    if (!j.opts.model_dir)
        return bmfm_cli_usage_error(cmd, "no -m MODEL_DIR given and no bundled model found (set BMFM_MODEL)");
    if (!j.output && !inplace) return bmfm_cli_usage_error(cmd, "-o OUT or --inplace is required");
    if (j.output && inplace) return bmfm_cli_usage_error(cmd, "-o and --inplace exclude each other");
    j.opts.progress = !quiet && isatty(2);
    bmfm_job_report rep;
    bmfm_cpu_spread_omp_threads(); /* before the first parallel work (cpu_place.h) */
    bmfm_status st = bmfm_infer_job_run(&j, &rep);
    if (st) return bmfm_cli_fail(cmd, st);
    if (!quiet)
        printf("%s: %lld cells -> obsm[%s] (%lld dims), %d label heads, %.1f cells/s; input %s\n",
               j.output ? j.output : j.input, (long long)rep.n_obs, j.key, (long long)rep.dim,
               rep.n_heads, rep.seconds > 0 ? rep.n_obs / rep.seconds : 0.0, rep.normalize_note);
    if (rep.n_truncated)
        bmfm_log_info("%lld cells had more genes than --max-length allows (truncated, %s order)",
                      (long long)rep.n_truncated, j.opts.order ? j.opts.order : "var");
    return BMFM_EXIT_OK;
}

int bmfm_cmd_embed(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr, argv[0], 0);
        return BMFM_EXIT_INPUT;
    }
    return bmfm_cli_infer_main(argc, argv, 0);
}
