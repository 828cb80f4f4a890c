/* pretrain.c - `bmfm pretrain`: train a BMFM-RNA v2 style model on raw-count
 * .h5ad files (src/train/trainer.h). Options come from a YAML preset
 * (--config, a flat mapping whose keys are the long option names) and then
 * the command line, which wins. */
#include "cli.h"

#include "base/cpu_place.h"
#include "base/log.h"
#include "train/trainer.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static const char *CMD = "pretrain";

static void usage(FILE *f) {
    fprintf(f,
            "usage: bmfm pretrain --data A.h5ad[,B.h5ad...] --vocab GENES --out DIR [options]\n\n"
            "Pretrain a BMFM-RNA v2 style model (bidirectional LLaMA encoder, ScaleAdapt\n"
            "expression encoder) on raw-count .h5ad files with the WCED objective (all-genes\n"
            "expression mse + is-zero BCE from [CLS]), optionally MLM, and a hierarchical\n"
            "cross-entropy cell-type head over the Cell Ontology types observed in a label\n"
            "column (read from [CLS_0]). Loss = sum w_i L_i / sum w_i (weights 1 unless\n"
            "--label-weight). AdamW\n"
            "(betas 0.9/0.99, eps 1e-8, decay on Linear weights only), grad-norm clipping,\n"
            "linear warmup then constant (or linear decay). Each cell: its expressed genes in a\n"
            "seeded random order, truncated to --max-length. Deterministic for a seed and a\n"
            "step count. Writes DIR (model.safetensors, config.json, checkpoint_metadata.json,\n"
            "tokenizers/genes/tokenizer.json) atomically, loadable by embed / annotate.\n\n"
            "options:\n"
            "      --data LIST          comma-separated raw-count .h5ad files (whole files are read\n"
            "                           into memory)\n"
            "      --vocab FILE         genes vocabulary: a gene list (JSON list or one a line; the\n"
            "                           BMFM specials [UNK] [SEP] [PAD] [CLS] [MASK] [CLS_0..30] [S] [T]\n"
            "                           are put in front) or a tokenizer.json / vocab.txt / vocab.json\n"
            "      --out DIR            model directory to write\n"
            "      --config YAML        preset (e.g. configs/tiny.yaml): keys are these option names\n"
            "      --hidden N           hidden size (default 128)\n"
            "      --layers N           encoder blocks (default 4)\n"
            "      --heads N            attention heads (default 4)\n"
            "      --max-length N       tokens per cell incl. special tokens (default 512)\n"
            "      --steps N            optimizer steps (default 100)\n"
            "      --batch-size N       cells per step (default 8)\n"
            "      --lr X               peak learning rate (default 1e-3)\n"
            "      --warmup N           warmup steps (default 10)\n"
            "      --decay-steps N      linear decay to 0 at step N after warmup; -1 = at --steps;\n"
            "                           0 (default) = constant after warmup\n"
            "      --weight-decay X     AdamW weight decay (default 0.1)\n"
            "      --clip X             gradient-norm clipping (default 0.5)\n"
            "      --label-column COL   obs column of Cell Ontology ids (or names) for the HCE head;\n"
            "                           files without it train WCED only (cells count as unknown)\n"
            "      --ontology OBO       ontology for --label-column (pruned to the observed types)\n"
            "      --label-weight X     weight of the HCE term (default 1; WCED mse and BCE weigh 1)\n"
            "      --mlm                add the MLM objective (change 0.15, mask 0.95)\n"
            "      --no-wced            no WCED objective\n"
            "      --inference-model    save without the WCED decoder (smaller; embed/annotate only)\n"
"      --max-cells-per-file N  keep a seeded subset of at most N cells of each file\n"
            "                           (so one large file does not dominate; default: all)\n"
            "      --val-fraction X     held-out fraction of the cells (default 0.05)\n"
            "      --val-cells N        held-out cells evaluated at most (default 256; 0 = all)\n"
            "      --log-every N        log the mean training loss every N steps (default 10)\n"
            "      --val-every N        held-out loss every N steps (default: start and end only)\n"
            "      --checkpoint-every N write DIR every N steps too (default: at the end only)\n"
            "      --max-minutes X      stop early after X minutes of wall time (the step count\n"
            "                           then depends on the machine)\n"
            "      --seed S             seed of init, split, order and masking (default 1234)\n"
            "      --threads N          OpenMP threads\n"
            "  -q, --quiet              no progress lines (they go to stderr)\n"
            "  -h, --help\n\n"
            "exit status: 0 done, 2 bad input or option.\n");
}

enum {
    O_DATA = 1000, O_VOCAB, O_OUT, O_CONFIG, O_HIDDEN, O_LAYERS, O_HEADS, O_MAXLEN, O_STEPS, O_BATCH, O_LR, O_WARMUP,
    O_DECAY, O_WD, O_CLIP, O_LABEL, O_ONTO, O_MLM, O_NOWCED, O_INFMODEL, O_VALFRAC, O_VALCELLS, O_LOG, O_VALEVERY,
    O_CKPT, O_MAXMIN, O_SEED, O_THREADS, O_MAXCELLS, O_LABELW
};

static const struct option LONG[] = {
    {"data", required_argument, 0, O_DATA},        {"vocab", required_argument, 0, O_VOCAB},
    {"out", required_argument, 0, O_OUT},          {"config", required_argument, 0, O_CONFIG},
    {"hidden", required_argument, 0, O_HIDDEN},    {"layers", required_argument, 0, O_LAYERS},
    {"heads", required_argument, 0, O_HEADS},      {"max-length", required_argument, 0, O_MAXLEN},
    {"steps", required_argument, 0, O_STEPS},      {"batch-size", required_argument, 0, O_BATCH},
    {"lr", required_argument, 0, O_LR},            {"warmup", required_argument, 0, O_WARMUP},
    {"decay-steps", required_argument, 0, O_DECAY}, {"weight-decay", required_argument, 0, O_WD},
    {"clip", required_argument, 0, O_CLIP},        {"label-column", required_argument, 0, O_LABEL},
    {"ontology", required_argument, 0, O_ONTO},    {"mlm", no_argument, 0, O_MLM},
    {"no-wced", no_argument, 0, O_NOWCED},         {"inference-model", no_argument, 0, O_INFMODEL},
    {"val-fraction", required_argument, 0, O_VALFRAC}, {"val-cells", required_argument, 0, O_VALCELLS},
    {"log-every", required_argument, 0, O_LOG},    {"val-every", required_argument, 0, O_VALEVERY},
    {"checkpoint-every", required_argument, 0, O_CKPT}, {"max-minutes", required_argument, 0, O_MAXMIN},
    {"seed", required_argument, 0, O_SEED},        {"threads", required_argument, 0, O_THREADS},
    {"max-cells-per-file", required_argument, 0, O_MAXCELLS},
    {"label-weight", required_argument, 0, O_LABELW},
    {"quiet", no_argument, 0, 'q'},                {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0}};

typedef struct state {
    bmfm_train_opts o;
    char *data_list;      /* owned copy, split in place */
    const char *data[64];
    char *strs[16];       /* owned strings from the YAML file */
    int n_strs;
} state;

static const char *keep(state *s, const char *v) {
    if (s->n_strs == 16) return v;
    return s->strs[s->n_strs++] = strdup(v);
}

static int parse_bool(const char *v, int *out) {
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1")) *out = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0")) *out = 0;
    else return -1;
    return 0;
}

/* Apply one option; `from_yaml` values must be copied (the parser frees them)
 * and flags take a boolean value there. */
static int apply(state *s, int id, const char *name, const char *v, int from_yaml) {
    bmfm_train_opts *o = &s->o;
    long n;
    double x;
    int b = 1;
    if (from_yaml && (id == O_MLM || id == O_NOWCED || id == O_INFMODEL) && parse_bool(v, &b) != 0) {
        bmfm_cli_usage_error(CMD, "%s: '%s' is not a boolean", name, v);
        return -1;
    }
#define INT(field, lo, hi)                                                                                             \
    do {                                                                                                               \
        if (bmfm_cli_parse_int(CMD, name, v, lo, hi, &n)) return -1;                                                   \
        o->field = n;                                                                                                  \
    } while (0)
#define DBL(field)                                                                                                     \
    do {                                                                                                               \
        if (bmfm_cli_parse_double(CMD, name, v, &x)) return -1;                                                        \
        o->field = x;                                                                                                  \
    } while (0)
    switch (id) {
    case O_DATA: {
        free(s->data_list);
        s->data_list = strdup(v);
        o->n_data = 0;
        for (char *save = NULL, *p = strtok_r(s->data_list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
            if (o->n_data == 64) {
                bmfm_cli_usage_error(CMD, "--data: more than 64 files");
                return -1;
            }
            s->data[o->n_data++] = p;
        }
        o->data = s->data;
        break;
    }
    case O_VOCAB: o->vocab = from_yaml ? keep(s, v) : v; break;
    case O_OUT: o->out = from_yaml ? keep(s, v) : v; break;
    case O_HIDDEN: INT(hidden, 1, 65536); break;
    case O_LAYERS: INT(layers, 1, 1024); break;
    case O_HEADS: INT(heads, 1, 1024); break;
    case O_MAXLEN: INT(max_length, 4, 1 << 20); break;
    case O_STEPS: INT(steps, 0, 2000000000L); break;
    case O_BATCH: INT(batch_size, 1, 65536); break;
    case O_LR: DBL(lr); break;
    case O_WARMUP: INT(warmup, 0, 2000000000L); break;
    case O_DECAY: INT(decay_steps, -1, 2000000000L); break;
    case O_WD: DBL(weight_decay); break;
    case O_CLIP: DBL(clip); break;
    case O_LABEL: o->label_column = from_yaml ? keep(s, v) : v; break;
    case O_ONTO: o->ontology = from_yaml ? keep(s, v) : v; break;
    case O_MLM: o->mlm = b; break;
    case O_NOWCED: o->wced = !b; break;
    case O_INFMODEL: o->save_wced_decoder = !b; break;
    case O_VALFRAC: DBL(val_fraction); break;
    case O_VALCELLS: INT(val_max_cells, 0, 2000000000L); break;
    case O_LOG: INT(log_every, 1, 2000000000L); break;
    case O_VALEVERY: INT(val_every, 0, 2000000000L); break;
    case O_CKPT: INT(checkpoint_every, 0, 2000000000L); break;
    case O_MAXMIN: DBL(max_minutes); break;
    case O_SEED: INT(seed, 0, 2147483647L); break;
    case O_THREADS: INT(threads, 1, 1024); break;
    case O_MAXCELLS: INT(max_cells_per_file, 0, 2000000000L); break;
    case O_LABELW: DBL(label_weight); break;
    default: return -1;
    }
#undef INT
#undef DBL
    return 0;
}

/* A flat YAML mapping of option names to scalars. */
static int load_yaml(state *s, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return bmfm_cli_usage_error(CMD, "--config %s: cannot open", path), -1;
    yaml_parser_t p;
    yaml_document_t doc;
    int rc = -1;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    if (!yaml_parser_load(&p, &doc)) {
        bmfm_cli_usage_error(CMD, "--config %s: YAML error at line %lu: %s", path, (unsigned long)p.problem_mark.line + 1,
                             p.problem ? p.problem : "?");
        yaml_parser_delete(&p);
        fclose(f);
        return -1;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        bmfm_cli_usage_error(CMD, "--config %s: expected a mapping of option names to values", path);
        goto done;
    }
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(&doc, pr->key), *v = yaml_document_get_node(&doc, pr->value);
        if (k->type != YAML_SCALAR_NODE || v->type != YAML_SCALAR_NODE) {
            bmfm_cli_usage_error(CMD, "--config %s: line %lu: values must be scalars", path,
                                 (unsigned long)k->start_mark.line + 1);
            goto done;
        }
        const char *key = (const char *)k->data.scalar.value, *val = (const char *)v->data.scalar.value;
        int id = 0;
        for (const struct option *op = LONG; op->name; op++)
            if (!strcmp(op->name, key)) id = op->val;
        if (id < O_DATA || id == O_CONFIG) {
            bmfm_cli_usage_error(CMD, "--config %s: line %lu: unknown key '%s'", path,
                                 (unsigned long)k->start_mark.line + 1, key);
            goto done;
        }
        char nm[64];
        snprintf(nm, sizeof nm, "%s (in %s)", key, path);
        if (apply(s, id, nm, val, 1) != 0) goto done;
    }
    rc = 0;
done:
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    fclose(f);
    return rc;
}

int bmfm_cmd_pretrain(int argc, char **argv) {
    state s;
    memset(&s, 0, sizeof s);
    bmfm_train_opts_default(&s.o);
    int quiet = 0, rc = BMFM_EXIT_INPUT;
    /* pass 1: --help and --config first, so the command line overrides the preset */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return BMFM_EXIT_OK;
        }
        const char *cfgpath = NULL;
        if (!strcmp(argv[i], "--config") && i + 1 < argc) cfgpath = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9)) cfgpath = argv[i] + 9;
        if (cfgpath && load_yaml(&s, cfgpath) != 0) goto done;
    }
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "qh", LONG, NULL)) != -1) {
        if (c == 'q') quiet = 1;
        else if (c == O_CONFIG) continue;
        else if (c == '?') {
            bmfm_cli_usage_error(CMD, "bad option");
            goto done;
        } else {
            char nm[64];
            const char *name = "?";
            for (const struct option *op = LONG; op->name; op++)
                if (op->val == c) name = op->name;
            snprintf(nm, sizeof nm, "--%s", name);
            if (apply(&s, c, nm, optarg, 0) != 0) goto done;
        }
    }
    if (optind < argc) {
        bmfm_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
        goto done;
    }
    if (s.o.n_data == 0 || !s.o.out || !s.o.vocab) {
        bmfm_cli_usage_error(CMD, "--data, --vocab and --out are required");
        goto done;
    }
    if (quiet) bmfm_cli_set_verbosity(1, 0);
    else if (bmfm_log_get_level() < BMFM_LOG_INFO) bmfm_log_set_level(BMFM_LOG_INFO);
    bmfm_train_report r;
    bmfm_cpu_spread_omp_threads(); /* before the first parallel work (cpu_place.h) */
    bmfm_status st = bmfm_train_run(&s.o, &r);
    if (st) {
        rc = bmfm_cli_fail(CMD, st);
        goto done;
    }
    fprintf(stderr,
            "bmfm pretrain: %lld steps in %.1f s (%lld trainable parameters, %lld train / %lld held-out cells); "
            "train loss %.5f -> %.5f; held-out loss %.5f -> %.5f",
            (long long)r.steps, r.seconds, (long long)r.params, (long long)r.n_train, (long long)r.n_val,
            r.first_loss, r.last_loss, r.val_first, r.val_last);
    if (!isnan(r.val_hce_acc))
        fprintf(stderr, "; held-out leaf accuracy %.3f (%lld labelled cells)", r.val_hce_acc, (long long)r.val_labeled);
    fprintf(stderr, "; model in %s\n", s.o.out);
    rc = BMFM_EXIT_OK;
done:
    free(s.data_list);
    for (int i = 0; i < s.n_strs; i++) free(s.strs[i]);
    return rc;
}
