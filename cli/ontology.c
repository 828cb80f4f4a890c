/* ontology.c - `bmfm ontology`: summary of an OBO file, lineage of a term,
 * and pruning the ontology to the cell types of a label column (the leaf
 * label space of an HCE head). Read-only except `prune --out`.
 */
#include "cli.h"

#include "base/alloc.h"
#include "base/strmap.h"
#include "io/dataset.h"
#include "onto/labels.h"
#include "onto/labelspace.h"
#include "onto/ontology.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "ontology"

static void usage(FILE *f) {
    fprintf(f,
            "usage: bmfm ontology summary OBO\n"
            "       bmfm ontology lineage OBO TERM\n"
            "       bmfm ontology prune OBO (FILE.h5ad --column COL | --labels FILE) [--out LEAVES.txt] [--strict]\n"
            "\n"
            "Cell Ontology (or any OBO 1.2/1.4 file) as BMFM builds it: an is_a-only DAG over\n"
            "the non-obsolete terms.\n"
            "\n"
            "  summary   terms, obsolete terms, is_a edges, roots, leaves, depth.\n"
            "  lineage   the ancestors of TERM (an id, name, exact synonym or alt_id; case and\n"
            "            spacing ignored), one per line: depth (shortest is_a path from a\n"
            "            root), id, name.\n"
            "  prune     map the labels of an obs column (or of a text file, one label per\n"
            "            line) to terms, print how many mapped and list those that did not,\n"
            "            then prune the ontology to the mapped types (repeatedly drop leaves\n"
            "            not among them) and print the node and leaf counts. The leaves, sorted\n"
            "            by id, are the classes of an HCE head.\n"
            "\n"
            "options:\n"
            "  --column COL     obs column of FILE.h5ad holding the labels\n"
            "  --labels FILE    read labels from a text file instead (one per line)\n"
            "  --out FILE       write the sorted leaf ids, one per line\n"
            "  --strict         exit 1 when some label does not map\n"
            "  -h, --help       this help\n"
            "\n"
            "Labels 'unknown', empty and NaN are counted as unknown, not as unmapped.\n"
            "Exit codes: 0 ok, 1 --strict and some label unmapped, 2 bad input.\n");
}

static int cmd_summary(const char *path) {
    bmfm_ontology *o;
    bmfm_status st = bmfm_ontology_load(path, &o);
    if (st) return bmfm_cli_fail(CMD, st);
    int64_t n_syn = 0, n_alt = 0;
    int32_t dmax = 0, dmax_long = 0;
    for (int64_t t = 0; t < o->n_terms; t++) {
        n_syn += o->obo.terms[t].n_synonyms;
        n_alt += o->obo.terms[t].n_alt_ids;
        if (o->depth[t] > dmax) dmax = o->depth[t];
        if (o->depth_max[t] > dmax_long) dmax_long = o->depth_max[t];
    }
    printf("file: %s\n", path);
    printf("format-version: %s\n", o->obo.format_version);
    printf("data-version: %s\n", o->obo.data_version);
    printf("terms: %lld\n", (long long)o->n_terms);
    printf("obsolete: %lld\n", (long long)o->obo.n_obsolete);
    printf("typedefs: %lld (skipped)\n", (long long)o->obo.n_typedefs);
    printf("is_a lines: %lld\n", (long long)o->obo.n_is_a);
    printf("nodes: %lld (non-obsolete terms)\n", (long long)o->n_nodes);
    printf("is_a edges: %lld (%lld dropped: obsolete parent)\n", (long long)o->n_edges,
           (long long)o->n_edges_dropped);
    printf("exact synonyms: %lld\n", (long long)n_syn);
    printf("alt ids: %lld\n", (long long)n_alt);
    printf("roots: %lld\n", (long long)o->n_roots);
    for (int64_t r = 0; r < o->n_roots && r < 20; r++)
        printf("  %s\t%s\n", bmfm_ontology_id(o, o->roots[r]), bmfm_ontology_name(o, o->roots[r]));
    if (o->n_roots > 20) printf("  ... %lld more\n", (long long)(o->n_roots - 20));
    printf("leaves: %lld\n", (long long)o->n_leaves);
    printf("max depth: %d (shortest path from a root), %d (longest path)\n", dmax, dmax_long);
    bmfm_ontology_free(o);
    return BMFM_EXIT_OK;
}

static int cmd_lineage(const char *path, const char *term) {
    bmfm_ontology *o;
    bmfm_label_index ix = {0};
    int64_t *anc = NULL;
    int rc = BMFM_EXIT_OK;
    bmfm_status st = bmfm_ontology_load(path, &o);
    if (st) return bmfm_cli_fail(CMD, st);
    if ((st = bmfm_label_index_build(o, &ix))) {
        rc = bmfm_cli_fail(CMD, st);
        goto done;
    }
    int64_t t;
    bmfm_label_match m = bmfm_label_map(&ix, term, &t);
    if (!bmfm_label_is_mapped(m)) {
        fprintf(stderr, "bmfm %s: error: %s: '%s' does not name a live term (%s)\n", CMD, path, term,
                bmfm_label_match_name(m));
        rc = BMFM_EXIT_INPUT;
        goto done;
    }
    if (!(anc = bmfm_malloc((size_t)o->n_terms * sizeof *anc))) {
        rc = bmfm_cli_fail(CMD, BMFM_E_NOMEM);
        goto done;
    }
    int64_t n = bmfm_ontology_ancestors(o, t, 1, anc);
    printf("# %s %s (matched by %s): %lld ancestors\n", bmfm_ontology_id(o, t), bmfm_ontology_name(o, t),
           bmfm_label_match_name(m), (long long)(n - 1));
    printf("depth\tid\tname\n");
    for (int64_t i = 0; i < n; i++)
        printf("%d\t%s\t%s\n", o->depth[anc[i]], bmfm_ontology_id(o, anc[i]), bmfm_ontology_name(o, anc[i]));
done:
    free(anc);
    bmfm_label_index_free(&ix);
    bmfm_ontology_free(o);
    return rc;
}

/* Distinct labels with their cell counts. */
typedef struct {
    char **labels;
    int64_t *counts;
    int64_t n;
    size_t cap, cap_counts;
    bmfm_strmap seen;
} label_set;

static bmfm_status label_set_add(label_set *s, const char *label, int64_t count) {
    int64_t at;
    if (!label) label = "";
    if (bmfm_strmap_get(&s->seen, label, &at)) {
        s->counts[at] += count;
        return BMFM_OK;
    }
    if (bmfm_grow((void **)&s->labels, &s->cap, (size_t)s->n + 1, sizeof *s->labels) ||
        bmfm_grow((void **)&s->counts, &s->cap_counts, (size_t)s->n + 1, sizeof *s->counts) ||
        bmfm_strmap_put(&s->seen, label, s->n, NULL) < 0 || !(s->labels[s->n] = bmfm_strdup(label)))
        return BMFM_E_NOMEM;
    s->counts[s->n++] = count;
    return BMFM_OK;
}

static void label_set_free(label_set *s) {
    for (int64_t i = 0; i < s->n; i++) free(s->labels[i]);
    free(s->labels);
    free(s->counts);
    bmfm_strmap_free(&s->seen);
}

static bmfm_status labels_from_text(const char *path, label_set *s) {
    FILE *f = fopen(path, "r");
    if (!f) return bmfm_error_set(BMFM_E_IO, "%s: cannot open", path);
    char line[4096];
    bmfm_status st = BMFM_OK;
    while (!st && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        st = label_set_add(s, line, 1);
    }
    fclose(f);
    return st;
}

static bmfm_status labels_from_h5ad(const char *path, const char *column, label_set *s) {
    bmfm_dataset *ds = NULL;
    bmfm_column c = {0};
    bmfm_status st = bmfm_dataset_open(path, NULL, &ds);
    if (!st) st = bmfm_dataset_obs_column(ds, column, &c);
    if (!st && c.kind == BMFM_COL_CATEGORICAL) {
        /* count codes once, then add each used category */
        int64_t *cnt = bmfm_calloc((size_t)c.n_categories + 1, sizeof *cnt), missing = 0;
        if (!cnt) st = BMFM_E_NOMEM;
        for (int64_t i = 0; !st && i < c.n; i++) {
            if (c.codes[i] >= 0 && c.codes[i] < c.n_categories) cnt[c.codes[i]]++;
            else missing++;
        }
        for (int64_t k = 0; !st && k < c.n_categories; k++)
            if (cnt[k]) st = label_set_add(s, c.categories[k], cnt[k]);
        if (!st && missing) st = label_set_add(s, NULL, missing);
        free(cnt);
    } else if (!st) {
        char buf[64];
        for (int64_t i = 0; !st && i < c.n; i++) st = label_set_add(s, bmfm_column_text(&c, i, buf, sizeof buf), 1);
    }
    bmfm_column_free(&c);
    if (ds) bmfm_dataset_close(ds);
    return st;
}

static int cmd_prune(const char *obo, const char *h5ad, const char *column, const char *labels_file,
                     const char *out, int strict) {
    bmfm_ontology *o = NULL;
    bmfm_label_index ix = {0};
    bmfm_label_report rep = {0};
    bmfm_labelspace *ls = NULL;
    label_set s = {0};
    int64_t *terms = NULL;
    int rc = BMFM_EXIT_OK;
    bmfm_status st = bmfm_ontology_load(obo, &o);
    if (!st && bmfm_strmap_init(&s.seen, 256)) st = BMFM_E_NOMEM;
    if (!st) st = h5ad ? labels_from_h5ad(h5ad, column, &s) : labels_from_text(labels_file, &s);
    if (!st) st = bmfm_label_index_build(o, &ix);
    if (!st && !(terms = bmfm_malloc(((size_t)s.n + 1) * sizeof *terms))) st = BMFM_E_NOMEM;
    if (!st) st = bmfm_label_map_many(&ix, (const char *const *)s.labels, s.counts, s.n, terms, &rep);
    if (st) {
        rc = bmfm_cli_fail(CMD, st);
        goto done;
    }
    int64_t cells = rep.n_mapped_cells + rep.n_unknown_cells + rep.n_unmapped_cells;
    printf("labels: %lld distinct (%lld cells) from %s%s%s\n", (long long)rep.n_labels, (long long)cells,
           h5ad ? h5ad : labels_file, h5ad ? " column " : "", h5ad ? column : "");
    printf("mapped: %lld of %lld labels (%lld cells)\n", (long long)rep.n_mapped, (long long)rep.n_labels,
           (long long)rep.n_mapped_cells);
    if (rep.n_replaced)
        printf("  of which %lld obsolete, mapped through replaced_by\n", (long long)rep.n_replaced);
    printf("unknown: %lld labels (%lld cells)\n", (long long)rep.n_unknown, (long long)rep.n_unknown_cells);
    printf("unmapped: %lld labels (%lld cells)\n", (long long)rep.n_unmapped, (long long)rep.n_unmapped_cells);
    for (int64_t i = 0; i < rep.n_unmapped; i++)
        printf("  unmapped: '%s' (%s, %lld cells)\n", rep.unmapped[i], bmfm_label_match_name(rep.unmapped_why[i]),
               (long long)rep.unmapped_cells[i]);
    if (!rep.n_mapped) {
        fprintf(stderr, "bmfm %s: error: no label of %s maps to a term of %s\n", CMD, h5ad ? h5ad : labels_file, obo);
        rc = BMFM_EXIT_INPUT;
        goto done;
    }
    if ((st = bmfm_labelspace_prune(o, terms, s.n, &ls))) {
        rc = bmfm_cli_fail(CMD, st);
        goto done;
    }
    int64_t internal = 0;
    for (int64_t i = 0; i < s.n; i++) internal += terms[i] >= 0 && ls->term_leaf[terms[i]] < 0;
    printf("label space: %lld nodes, %lld roots, %lld leaves\n", (long long)ls->n_kept, (long long)ls->n_roots,
           (long long)ls->K);
    printf("internal labels: %lld (mapped labels with an observed descendant; they train through their leaves)\n",
           (long long)internal);
    if (out) {
        if ((st = bmfm_labelspace_write_leaves(ls, out))) {
            rc = bmfm_cli_fail(CMD, st);
            goto done;
        }
        printf("wrote %lld leaf ids to %s\n", (long long)ls->K, out);
    }
    if (strict && rep.n_unmapped) rc = BMFM_EXIT_FAILURE;
done:
    bmfm_labelspace_free(ls);
    bmfm_label_report_free(&rep);
    bmfm_label_index_free(&ix);
    label_set_free(&s);
    free(terms);
    bmfm_ontology_free(o);
    return rc;
}

int bmfm_cmd_ontology(int argc, char **argv) {
    static const struct option opts[] = {
        {"column", required_argument, 0, 'c'}, {"labels", required_argument, 0, 'l'},
        {"out", required_argument, 0, 'o'},    {"strict", no_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
    };
    const char *column = NULL, *labels = NULL, *out = NULL;
    int strict = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': column = optarg; break;
        case 'l': labels = optarg; break;
        case 'o': out = optarg; break;
        case 's': strict = 1; break;
        case 'h': usage(stdout); return BMFM_EXIT_OK;
        default: return bmfm_cli_usage_error(CMD, "unknown option");
        }
    }
    int npos = argc - optind;
    char **pos = argv + optind;
    if (npos < 1) return bmfm_cli_usage_error(CMD, "missing subcommand (summary, lineage or prune)");
    const char *sub = pos[0];
    if (!strcmp(sub, "summary")) {
        if (npos != 2) return bmfm_cli_usage_error(CMD, "summary takes one OBO file");
        return cmd_summary(pos[1]);
    }
    if (!strcmp(sub, "lineage")) {
        if (npos != 3) return bmfm_cli_usage_error(CMD, "lineage takes an OBO file and a term");
        return cmd_lineage(pos[1], pos[2]);
    }
    if (!strcmp(sub, "prune")) {
        if (npos == 3 && !labels) {
            if (!column) return bmfm_cli_usage_error(CMD, "prune FILE.h5ad needs --column");
            return cmd_prune(pos[1], pos[2], column, NULL, out, strict);
        }
        if (npos == 2 && labels) {
            if (column) return bmfm_cli_usage_error(CMD, "--column goes with an h5ad file, not --labels");
            return cmd_prune(pos[1], NULL, NULL, labels, out, strict);
        }
        return bmfm_cli_usage_error(CMD, "prune takes OBO and FILE.h5ad --column COL, or OBO --labels FILE");
    }
    return bmfm_cli_usage_error(CMD, "unknown subcommand '%s' (summary, lineage or prune)", sub);
}
