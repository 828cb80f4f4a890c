/* test_ontology.c - the Cell Ontology DAG, label mapping, label space and
 * decoding, checked against known facts of cl-basic, an independent Python
 * computation (tests/ref/onto_oracle.py), the cellxgene ontology JSON, and
 * constructed distributions; plus the `bmfm ontology` CLI. */
#include "test_util.h"

#include "base/alloc.h"
#include "base/error.h"
#include "base/fileutil.h"
#include "onto/decode.h"
#include "onto/labels.h"
#include "onto/labelspace.h"
#include "onto/ontology.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CL_BASIC "ontology/cl-basic_2022-12-15.obo"
#define CL_SIMPLE "ontology/cl-simple_2026-03-26.obo"

static bmfm_ontology *load(const char *rel) {
    bmfm_ontology *o = NULL;
    assert_int_equal(bmfm_ontology_load(tu_data(rel), &o), BMFM_OK);
    return o;
}

/* Read the oracle's "key value" line. */
static long long oracle_int(const char *text, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\n%s ", key);
    const char *p = strstr(text, pat);
    if (!p && !strncmp(text, pat + 1, strlen(pat + 1))) p = text - 1;
    assert_non_null(p);
    return atoll(p + strlen(pat));
}

static char *run_oracle(const char *name, const char *args) {
    const char *out = tu_scratch(name);
    assert_int_equal(tu_python("onto_oracle.py %s %s %s", tu_data(CL_BASIC), out, args), 0);
    char *text;
    size_t len;
    assert_int_equal(bmfm_read_file(out, &text, &len), BMFM_OK);
    return text;
}

static void test_dag_counts_match_oracle(void **state) {
    (void)state;
    bmfm_ontology *o = load(CL_BASIC);
    char *ref = run_oracle("dag.txt", "");
    int32_t dmax = 0;
    for (int64_t t = 0; t < o->n_terms; t++) dmax = o->depth[t] > dmax ? o->depth[t] : dmax;
    printf("nodes %lld edges %lld roots %lld leaves %lld maxdepth %d\n", (long long)o->n_nodes,
           (long long)o->n_edges, (long long)o->n_roots, (long long)o->n_leaves, dmax);
    assert_int_equal(o->n_terms, oracle_int(ref, "terms"));
    assert_int_equal(o->obo.n_obsolete, oracle_int(ref, "obsolete"));
    assert_int_equal(o->obo.n_is_a, oracle_int(ref, "is_a"));
    assert_int_equal(o->n_nodes, 2644); /* README: 2,644 non-obsolete CL terms */
    assert_int_equal(o->n_nodes, oracle_int(ref, "nodes"));
    assert_int_equal(o->n_edges, oracle_int(ref, "edges"));
    assert_int_equal(o->n_roots, oracle_int(ref, "roots"));
    assert_int_equal(o->n_leaves, oracle_int(ref, "leaves"));
    assert_int_equal(dmax, oracle_int(ref, "maxdepth"));
    assert_string_equal(bmfm_ontology_id(o, o->roots[0]), "CL:0000000");
    free(ref);
    bmfm_ontology_free(o);
}

static void test_lineage_of_cd4_memory_t_cell(void **state) {
    (void)state;
    bmfm_ontology *o = load(CL_BASIC);
    int64_t t = bmfm_ontology_find(o, "CL:0000897");
    assert_true(t >= 0);
    assert_string_equal(bmfm_ontology_name(o, t), "CD4-positive, alpha-beta memory T cell");
    int64_t *anc = malloc((size_t)o->n_terms * sizeof *anc);
    int64_t n = bmfm_ontology_ancestors(o, t, 0, anc);
    int has_t = 0, has_lym = 0, has_cell = 0;
    for (int64_t i = 0; i < n; i++) {
        has_t |= !strcmp(bmfm_ontology_id(o, anc[i]), "CL:0000084");
        has_lym |= !strcmp(bmfm_ontology_id(o, anc[i]), "CL:0000542");
        has_cell |= !strcmp(bmfm_ontology_id(o, anc[i]), "CL:0000000");
    }
    assert_true(has_t && has_lym && has_cell);
    assert_string_equal(bmfm_ontology_name(o, bmfm_ontology_find(o, "CL:0000084")), "T cell");
    assert_string_equal(bmfm_ontology_name(o, bmfm_ontology_find(o, "CL:0000542")), "lymphocyte");
    assert_true(bmfm_ontology_is_ancestor(o, bmfm_ontology_find(o, "CL:0000084"), t));
    assert_false(bmfm_ontology_is_ancestor(o, bmfm_ontology_find(o, "CL:0000236"), t)); /* B cell */
    /* the whole lineage with shortest-path depths equals the oracle's */
    n = bmfm_ontology_ancestors(o, t, 1, anc);
    char *ref = run_oracle("lineage.txt", "--lineage CL:0000897");
    char *p = ref;
    int64_t i = 0;
    while ((p = strstr(p, "lineage "))) {
        int d;
        char id[64];
        assert_int_equal(sscanf(p, "lineage %d %63s", &d, id), 2);
        assert_true(i < n);
        assert_string_equal(bmfm_ontology_id(o, anc[i]), id);
        assert_int_equal(o->depth[anc[i]], d);
        i++;
        p++;
    }
    assert_int_equal(i, n);
    printf("CL:0000897: %lld ancestors-or-self, depth %d (longest %d)\n", (long long)n, o->depth[t],
           o->depth_max[t]);
    /* descendants of T cell include the CD4 memory T cell; of a leaf: none */
    int64_t nd = bmfm_ontology_descendants(o, bmfm_ontology_find(o, "CL:0000084"), 0, anc), found = 0;
    for (int64_t k = 0; k < nd; k++) found |= anc[k] == t;
    assert_true(found && nd > 50);
    free(ref);
    free(anc);
    bmfm_ontology_free(o);
}

/* cl-simple 2026 against cellxgene's JSON of the same release: names and
 * deprecation agree; every is_a ancestor is among the JSON ancestors (which
 * also follow part_of), and a direct is_a parent is at distance 1. */
static void test_cl_2026_matches_cellxgene_json(void **state) {
    (void)state;
    bmfm_ontology *o = load(CL_SIMPLE);
    char *text;
    size_t len;
    assert_int_equal(bmfm_read_file(tu_data("ontology/cellxgene_CL-ontology-v2026-03-26.json.gz"), &text, &len),
                     BMFM_OK);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    int64_t *anc = malloc((size_t)o->n_terms * sizeof *anc);
    int64_t checked = 0, anc_checked = 0;
    for (int64_t t = 0; t < o->n_terms; t++) {
        const char *id = bmfm_ontology_id(o, t);
        if (strncmp(id, "CL:", 3)) continue;
        cJSON *j = cJSON_GetObjectItemCaseSensitive(root, id);
        assert_non_null(j);
        cJSON *label = cJSON_GetObjectItemCaseSensitive(j, "label");
        cJSON *dep = cJSON_GetObjectItemCaseSensitive(j, "deprecated");
        assert_int_equal(cJSON_IsTrue(dep), !o->is_node[t]);
        if (!o->is_node[t]) continue;
        assert_string_equal(label->valuestring, bmfm_ontology_name(o, t));
        cJSON *ja = cJSON_GetObjectItemCaseSensitive(j, "ancestors");
        int64_t n = bmfm_ontology_ancestors(o, t, 0, anc);
        for (int64_t i = 0; i < n; i++) {
            cJSON *d = cJSON_GetObjectItemCaseSensitive(ja, bmfm_ontology_id(o, anc[i]));
            if (!d) fprintf(stderr, "%s: is_a ancestor %s not in cellxgene ancestors\n", id, bmfm_ontology_id(o, anc[i]));
            assert_non_null(d);
            anc_checked++;
        }
        for (int64_t e = o->par_ptr[t]; e < o->par_ptr[t + 1]; e++) {
            cJSON *d = cJSON_GetObjectItemCaseSensitive(ja, bmfm_ontology_id(o, o->par[e]));
            assert_int_equal(d->valueint, 1);
        }
        checked++;
    }
    printf("cl-simple 2026: %lld live CL terms, %lld is_a ancestors found in the cellxgene JSON\n",
           (long long)checked, (long long)anc_checked);
    assert_true(checked > 3300);
    cJSON_Delete(root);
    free(anc);
    bmfm_ontology_free(o);
}

static void test_label_mapping(void **state) {
    (void)state;
    bmfm_ontology *o = load(CL_BASIC);
    bmfm_label_index ix;
    assert_int_equal(bmfm_label_index_build(o, &ix), BMFM_OK);
    struct {
        const char *label, *id;
        bmfm_label_match how;
    } cases[] = {
        {"CL:0000624", "CL:0000624", BMFM_LABEL_BY_ID},
        {"  cl:0000624 ", "CL:0000624", BMFM_LABEL_BY_ID},
        {"CD4-positive, alpha-beta T cell", "CL:0000624", BMFM_LABEL_BY_NAME},
        {" cd4-POSITIVE,   alpha-beta\tT cell ", "CL:0000624", BMFM_LABEL_BY_NAME},
        {"CD4-positive, alpha-beta T-lymphocyte", "CL:0000624", BMFM_LABEL_BY_SYNONYM},
        {"memory T lymphocyte", "CL:0000813", BMFM_LABEL_BY_SYNONYM},
        {"CL:0000337", "CL:0000031", BMFM_LABEL_BY_ALT_ID},   /* alt_id of neuroblast (sensu Vertebrata) */
        {"CL:0000375", "CL:0007010", BMFM_LABEL_REPLACED},    /* obsolete -> replaced_by */
        {"obsolete osteoprogenitor cell", "CL:0007010", BMFM_LABEL_REPLACED},
        {"T cell", "CL:0000084", BMFM_LABEL_BY_NAME},
        {"regulatory T cell", "CL:0000815", BMFM_LABEL_BY_NAME},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t t;
        bmfm_label_match m = bmfm_label_map(&ix, cases[i].label, &t);
        printf("'%s' -> %s (%s)\n", cases[i].label, t >= 0 ? bmfm_ontology_id(o, t) : "-", bmfm_label_match_name(m));
        assert_int_equal(m, cases[i].how);
        assert_string_equal(bmfm_ontology_id(o, t), cases[i].id);
    }
    int64_t t;
    assert_int_equal(bmfm_label_map(&ix, "unknown", &t), BMFM_LABEL_UNKNOWN);
    assert_int_equal(bmfm_label_map(&ix, " Unknown ", &t), BMFM_LABEL_UNKNOWN);
    assert_int_equal(bmfm_label_map(&ix, "", &t), BMFM_LABEL_UNKNOWN);
    assert_int_equal(bmfm_label_map(&ix, "NaN", &t), BMFM_LABEL_UNKNOWN);
    assert_int_equal(bmfm_label_map(&ix, NULL, &t), BMFM_LABEL_UNKNOWN);
    assert_int_equal(t, -1);
    assert_int_equal(bmfm_label_map(&ix, "CD4+/CD25 T Reg", &t), BMFM_LABEL_UNMAPPED);
    assert_int_equal(bmfm_label_map(&ix, "CL:9999999", &t), BMFM_LABEL_UNMAPPED);
    /* obsolete without a live replacement: CL:0000009 is replaced by a PO id */
    assert_int_equal(bmfm_label_map(&ix, "CL:0000009", &t), BMFM_LABEL_OBSOLETE);
    /* the batch report lists what did not map, with cell counts */
    const char *labels[] = {"T cell", "CD14+ Monocyte", "unknown", "B cell", "CD14+ Monocyte "};
    int64_t counts[] = {10, 5, 3, 7, 2}, terms[5];
    bmfm_label_report rep;
    assert_int_equal(bmfm_label_map_many(&ix, labels, counts, 5, terms, &rep), BMFM_OK);
    assert_int_equal(rep.n_mapped, 2);
    assert_int_equal(rep.n_mapped_cells, 17);
    assert_int_equal(rep.n_unknown_cells, 3);
    assert_int_equal(rep.n_unmapped, 2);
    assert_int_equal(rep.n_unmapped_cells, 7);
    assert_string_equal(rep.unmapped[0], "CD14+ Monocyte");
    assert_int_equal(rep.unmapped_why[0], BMFM_LABEL_UNMAPPED);
    bmfm_label_report_free(&rep);
    bmfm_label_index_free(&ix);
    bmfm_ontology_free(o);
}

/* Map the oracle's labels, prune, and compare node count, sorted leaves and
 * the leaves under every label (the reference's find_leaves). */
static void check_prune_against_oracle(const char *oracle_args, const char *name, int64_t want_K) {
    bmfm_ontology *o = load(CL_BASIC);
    char *ref = run_oracle(name, oracle_args);
    bmfm_label_index ix;
    assert_int_equal(bmfm_label_index_build(o, &ix), BMFM_OK);
    int64_t n_labels = oracle_int(ref, "labels");
    int64_t *terms = malloc((size_t)n_labels * sizeof *terms);
    char **ids = malloc((size_t)n_labels * sizeof *ids);
    char *p = ref;
    int64_t n = 0;
    while ((p = strstr(p, "\nmask "))) {
        char id[64];
        assert_int_equal(sscanf(p, "\nmask %63s", id), 1);
        ids[n] = strdup(id);
        bmfm_label_map(&ix, id, &terms[n]);
        n++;
        p++;
    }
    assert_int_equal(n, n_labels);
    int64_t mapped = 0;
    for (int64_t i = 0; i < n; i++) mapped += terms[i] >= 0;
    assert_int_equal(mapped, oracle_int(ref, "mapped"));
    bmfm_labelspace *ls;
    assert_int_equal(bmfm_labelspace_prune(o, terms, n, &ls), BMFM_OK);
    printf("%s: %lld labels, %lld mapped, %lld nodes kept, K = %lld leaves\n", oracle_args, (long long)n,
           (long long)mapped, (long long)ls->n_kept, (long long)ls->K);
    assert_int_equal(ls->n_kept, oracle_int(ref, "kept"));
    assert_int_equal(ls->K, oracle_int(ref, "K"));
    if (want_K >= 0) assert_int_equal(ls->K, want_K);
    /* sorted leaves = class order */
    p = ref;
    int64_t k = 0;
    while ((p = strstr(p, "\nleaf "))) {
        char id[64];
        assert_int_equal(sscanf(p, "\nleaf %63s", id), 1);
        assert_string_equal(bmfm_ontology_id(o, ls->leaf_term[k]), id);
        k++;
        p++;
    }
    assert_int_equal(k, ls->K);
    /* masks: the target's multi-hot equals the oracle's leaf list */
    float *w = malloc((size_t)(ls->K + 1) * sizeof *w), flag;
    p = ref;
    for (int64_t i = 0; i < n; i++) {
        p = strstr(p, "\nmask ") + 1;
        char *eol = strchr(p, '\n');
        int64_t nl = bmfm_labelspace_target(ls, terms[i], w, &flag);
        int64_t set = 0;
        for (int64_t j = 0; j < ls->K; j++) set += w[j] == 1.0f;
        assert_int_equal(set, nl);
        int64_t listed = 0;
        char *q = p + 5 + strlen(ids[i]) + 1;
        while (q < eol && *q != '-') {
            char id[64];
            assert_int_equal(sscanf(q, "%63s", id), 1);
            int64_t lt = bmfm_ontology_find(o, id);
            assert_true(lt >= 0 && ls->term_leaf[lt] >= 0);
            assert_true(w[ls->term_leaf[lt]] == 1.0f);
            listed++;
            q += strlen(id) + 1;
        }
        assert_int_equal(listed, nl);
        assert_true(flag == (nl > 0 ? 1.0f : 0.0f));
    }
    /* from_leaves with this leaf list rebuilds the same space (checkpoint route) */
    const char **lids = malloc((size_t)ls->K * sizeof *lids);
    for (int64_t j = 0; j < ls->K; j++) lids[j] = bmfm_ontology_id(o, ls->leaf_term[j]);
    bmfm_labelspace *ls2;
    assert_int_equal(bmfm_labelspace_from_leaves(o, lids, ls->K, 0, &ls2), BMFM_OK);
    assert_int_equal(ls2->K, ls->K);
    assert_int_equal(ls2->n_kept, ls->n_kept);
    for (int64_t t = 0; t < o->n_terms; t++) {
        assert_int_equal(ls2->lv_ptr[t + 1] - ls2->lv_ptr[t], ls->lv_ptr[t + 1] - ls->lv_ptr[t]);
        for (int64_t j = ls->lv_ptr[t]; j < ls->lv_ptr[t + 1]; j++) assert_int_equal(ls2->lv[j], ls->lv[j]);
    }
    bmfm_labelspace_free(ls2);
    free(lids);
    free(w);
    for (int64_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(terms);
    free(ref);
    bmfm_labelspace_free(ls);
    bmfm_label_index_free(&ix);
    bmfm_ontology_free(o);
}

static void test_prune_placenta(void **state) {
    (void)state;
    char args[1024];
    snprintf(args, sizeof args, "--h5ad %s --column cell_type_ontology_term_id",
             tu_data("h5ad/bmfm_cellxgene_placenta_220.h5ad"));
    check_prune_against_oracle(args, "placenta.txt", 16);
}

static void test_prune_zheng68k(void **state) {
    (void)state;
    char args[1024];
    snprintf(args, sizeof args, "--h5ad %s --column cell_type_ontology_term_id",
             tu_data("h5ad/bmfm_zheng68k_165.h5ad"));
    check_prune_against_oracle(args, "zheng.txt", -1);
}

static void test_prune_census_vocabulary(void **state) {
    (void)state;
    char args[1024];
    /* the UBERON / special lines of the file map to nothing and are ignored */
    snprintf(args, sizeof args, "--ids %s", tu_data("genes/bmfm_cellxgene_cell_type_vocabulary.txt"));
    check_prune_against_oracle(args, "vocab.txt", -1);
}

/* Checkpoint leaves from another release: a leaf obsolete in 2026 fails
 * unless add_missing, which keeps K and makes it an isolated leaf. */
static void test_from_leaves_across_releases(void **state) {
    (void)state;
    bmfm_ontology *o = load(CL_SIMPLE);
    const char *ids[] = {"CL:0000003", "CL:0000236", "CL:0000815", "CL:9999999"};
    bmfm_labelspace *ls;
    assert_int_equal(bmfm_labelspace_from_leaves(o, ids, 4, 0, &ls), BMFM_E_INPUT);
    assert_non_null(strstr(bmfm_error_message(), "CL:0000003' is obsolete"));
    assert_int_equal(bmfm_labelspace_from_leaves(o, ids, 4, 1, &ls), BMFM_OK);
    assert_int_equal(ls->K, 4);
    assert_int_equal(ls->n_added, 2);
    for (int k = 0; k < 4; k++) assert_string_equal(bmfm_ontology_id(o, ls->leaf_term[k]), ids[k]);
    /* B cell (CL:0000236) has subtypes in the ontology: cut, so it is a leaf with only itself */
    assert_int_equal(ls->lv_ptr[ls->leaf_term[1] + 1] - ls->lv_ptr[ls->leaf_term[1]], 1);
    assert_true(ls->n_cut >= 2);
    /* lymphocyte covers B cell and regulatory T cell, not the isolated ones */
    int64_t lym = bmfm_ontology_find(o, "CL:0000542");
    assert_int_equal(ls->lv_ptr[lym + 1] - ls->lv_ptr[lym], 2);
    float w[4], flag;
    assert_int_equal(bmfm_labelspace_target(ls, lym, w, &flag), 2);
    assert_true(w[0] == 0 && w[1] == 1 && w[2] == 1 && w[3] == 0 && flag == 1);
    assert_int_equal(bmfm_labelspace_target(ls, bmfm_ontology_find(o, "CL:0000057"), w, &flag), 0); /* fibroblast */
    assert_true(flag == 0);
    const char *dup[] = {"CL:0000236", "CL:0000236"};
    bmfm_labelspace *ls2;
    assert_int_equal(bmfm_labelspace_from_leaves(o, dup, 2, 0, &ls2), BMFM_E_INPUT);
    bmfm_labelspace_free(ls);
    bmfm_ontology_free(o);
}

/* root R -> A (a1..a5), B (b); c under both A and B (a DAG). */
static const char *TOY =
    "[Term]\nid: T:R\nname: root\n"
    "[Term]\nid: T:A\nname: alpha\nis_a: T:R\n"
    "[Term]\nid: T:B\nname: beta\nis_a: T:R\n"
    "[Term]\nid: T:a1\nsynonym: \"shared\" EXACT []\nis_a: T:A\n"
    "[Term]\nid: T:a2\nsynonym: \"Shared\" EXACT []\nsynonym: \"Alpha\" EXACT []\nis_a: T:A\n"
    "[Term]\nid: T:a3\nis_a: T:A\n"
    "[Term]\nid: T:a4\nis_a: T:A\n[Term]\nid: T:a5\nis_a: T:A\n"
    "[Term]\nid: T:b\nname: bee\nis_a: T:B\n"
    "[Term]\nid: T:X\nname: x\nis_a: T:A\nis_a: T:B\n"
    "[Term]\nid: T:c\nis_a: T:X\n";

static bmfm_labelspace *toy_space(bmfm_ontology **o) {
    bmfm_obo obo;
    assert_int_equal(bmfm_obo_parse(TOY, strlen(TOY), "toy.obo", &obo), BMFM_OK);
    assert_int_equal(bmfm_ontology_build(&obo, o), BMFM_OK);
    int64_t all[16], n = 0;
    for (int64_t t = 0; t < (*o)->n_terms; t++) all[n++] = t;
    bmfm_labelspace *ls;
    assert_int_equal(bmfm_labelspace_prune(*o, all, n, &ls), BMFM_OK);
    return ls;
}

static int64_t K_of(bmfm_ontology *o, bmfm_labelspace *ls, const char *id) {
    return ls->term_leaf[bmfm_ontology_find(o, id)];
}

static void test_decode_greedy_vs_argmax_threshold_rollup(void **state) {
    (void)state;
    bmfm_ontology *o;
    bmfm_labelspace *ls = toy_space(&o);
    assert_int_equal(ls->K, 7); /* a1..a5, b, c (sorted: T:a1.. T:a5, T:b, T:c) */
    double p[7] = {0}, mass[16];
    int64_t path[16], len;
    /* mass on A's leaves, each small; b alone is the largest leaf */
    for (int i = 1; i <= 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "T:a%d", i);
        p[K_of(o, ls, id)] = 0.11;
    }
    p[K_of(o, ls, "T:b")] = 0.4;
    p[K_of(o, ls, "T:c")] = 0.05;
    bmfm_decode_node_mass(ls, p, mass);
    int64_t A = bmfm_ontology_find(o, "T:A"), B = bmfm_ontology_find(o, "T:B"), R = bmfm_ontology_find(o, "T:R");
    assert_true(fabs(mass[R] - 1.0) < 1e-12);
    assert_true(fabs(mass[A] - 0.60) < 1e-12); /* a1..a5 + c (through X) */
    assert_true(fabs(mass[B] - 0.45) < 1e-12); /* b + c */
    int64_t k = bmfm_decode_argmax(ls, p);
    assert_string_equal(bmfm_ontology_id(o, ls->leaf_term[k]), "T:b");
    int64_t g = bmfm_decode_greedy(ls, mass, 0, path, &len);
    assert_string_equal(bmfm_ontology_id(o, g), "T:a1"); /* ties between a1..a5: smallest id */
    assert_int_equal(len, 3);
    assert_true(path[0] == R && path[1] == A);
    /* the two agree when the top leaf also sits in the heaviest subtree */
    p[K_of(o, ls, "T:b")] = 0.2, p[K_of(o, ls, "T:a3")] = 0.31;
    bmfm_decode_node_mass(ls, p, mass);
    assert_int_equal(ls->leaf_term[bmfm_decode_argmax(ls, p)], bmfm_decode_greedy(ls, mass, 0, path, &len));
    p[K_of(o, ls, "T:b")] = 0.4, p[K_of(o, ls, "T:a3")] = 0.11;
    bmfm_decode_node_mass(ls, p, mass);
    /* threshold: stop at the deepest node of the path with mass >= tau */
    assert_int_equal(bmfm_decode_greedy(ls, mass, 0.5, path, &len), A);
    assert_int_equal(len, 2);
    assert_int_equal(bmfm_decode_greedy(ls, mass, 0.7, path, &len), R);
    assert_int_equal(bmfm_decode_greedy(ls, mass, 0.11, path, &len), bmfm_ontology_find(o, "T:a1"));
    assert_int_equal(bmfm_decode_greedy(ls, mass, 1.5, path, &len), -1); /* abstain */
    assert_int_equal(len, 0);
    /* roll-up to a depth, and to coarse types */
    int64_t a3 = bmfm_ontology_find(o, "T:a3"), c = bmfm_ontology_find(o, "T:c"), b = bmfm_ontology_find(o, "T:b");
    assert_int_equal(bmfm_decode_rollup_depth(o, NULL, a3, 1), A);
    assert_int_equal(bmfm_decode_rollup_depth(o, NULL, a3, 0), R);
    assert_int_equal(bmfm_decode_rollup_depth(o, NULL, a3, 5), a3);
    assert_int_equal(bmfm_decode_rollup_depth(o, NULL, c, 1), A);  /* tie A/B: smallest id */
    assert_int_equal(bmfm_decode_rollup_depth(o, mass, c, 1), A);  /* A heavier */
    double m2[16];
    memcpy(m2, mass, sizeof m2);
    m2[B] = 0.9;
    assert_int_equal(bmfm_decode_rollup_depth(o, m2, c, 1), B);    /* B heavier */
    int64_t coarse[] = {R, A, B};
    assert_int_equal(bmfm_decode_rollup_coarse(o, a3, coarse, 3), A);
    assert_int_equal(bmfm_decode_rollup_coarse(o, b, coarse, 3), B);
    assert_int_equal(bmfm_decode_rollup_coarse(o, c, coarse, 3), A); /* A and B equally deep: list order */
    int64_t only_b[] = {B};
    assert_int_equal(bmfm_decode_rollup_coarse(o, a3, only_b, 1), -1);
    /* the batch decoder agrees with the single calls, from logits */
    float zz[2 * 7];
    for (int k2 = 0; k2 < 7; k2++) zz[k2] = (float)log(p[k2] > 0 ? p[k2] : 1e-30), zz[7 + k2] = 0;
    zz[7 + K_of(o, ls, "T:c")] = 3;
    bmfm_decode_call calls[2];
    assert_int_equal(bmfm_decode_cells(ls, zz, 2, 0.5, calls), BMFM_OK);
    assert_int_equal(calls[0].leaf_term, b);
    assert_true(fabs(calls[0].leaf_prob - 0.4) < 1e-6);
    assert_int_equal(calls[0].greedy_term, A);
    assert_true(fabs(calls[0].greedy_mass - 0.6) < 1e-6);
    assert_int_equal(calls[1].leaf_term, c); /* e^3/(e^3+6) = 0.77 on c, under both A and B */
    assert_int_equal(calls[1].greedy_term, c);
    /* a synonym of two terms is ambiguous; a name beats another term's synonym */
    bmfm_label_index ix;
    int64_t lt;
    assert_int_equal(bmfm_label_index_build(o, &ix), BMFM_OK);
    assert_int_equal(bmfm_label_map(&ix, "SHARED", &lt), BMFM_LABEL_AMBIGUOUS);
    assert_int_equal(lt, -1);
    assert_int_equal(bmfm_label_map(&ix, "alpha", &lt), BMFM_LABEL_BY_NAME);
    assert_int_equal(lt, A);
    bmfm_label_index_free(&ix);
    /* softmax of logits */
    float z[3] = {1, 2, 3};
    double q[3];
    bmfm_decode_softmax(z, 3, q);
    assert_true(fabs(q[2] - exp(3) / (exp(1) + exp(2) + exp(3))) < 1e-15);
    bmfm_labelspace_free(ls);
    bmfm_ontology_free(o);
}

/* Real ontology: placenta label space, mass spread over T-cell leaves and
 * one large B-cell leaf; roll-up to "T cell", "B cell", "monocyte". */
static void test_decode_on_real_ontology(void **state) {
    (void)state;
    bmfm_ontology *o = load(CL_BASIC);
    bmfm_label_index ix;
    assert_int_equal(bmfm_label_index_build(o, &ix), BMFM_OK);
    const char *obs[] = {"CL:0000236", "CL:0000815", "CL:0000084", "CL:0000623", "CL:0000786", "CL:0000451",
                         "CL:0000094", "CL:0000525"};
    int64_t terms[8];
    for (int i = 0; i < 8; i++) assert_true(bmfm_label_is_mapped(bmfm_label_map(&ix, obs[i], &terms[i])));
    bmfm_labelspace *ls;
    assert_int_equal(bmfm_labelspace_prune(o, terms, 8, &ls), BMFM_OK);
    double *p = calloc((size_t)ls->K, sizeof *p), *mass = calloc((size_t)ls->n_terms, sizeof *mass);
    int64_t *path = malloc((size_t)ls->n_terms * sizeof *path), len;
    int64_t bcell = bmfm_ontology_find(o, "CL:0000236"), treg = bmfm_ontology_find(o, "CL:0000815");
    int64_t tcell = bmfm_ontology_find(o, "CL:0000084");
    /* T cell (internal: regulatory T cell is observed below it) has one leaf here */
    assert_true(ls->term_leaf[tcell] < 0);
    for (int64_t k = 0; k < ls->K; k++) p[k] = 0.5 / (double)ls->K;
    p[ls->term_leaf[bcell]] += 0.3;
    p[ls->term_leaf[treg]] += 0.2;
    bmfm_decode_node_mass(ls, p, mass);
    int64_t k = bmfm_decode_argmax(ls, p);
    assert_int_equal(ls->leaf_term[k], bcell);
    int64_t g = bmfm_decode_greedy(ls, mass, 0, path, &len);
    printf("greedy path:");
    for (int64_t i = 0; i < len; i++) printf(" %s (%.3f)", bmfm_ontology_name(o, path[i]), mass[path[i]]);
    printf("\n");
    assert_int_equal(path[0], bmfm_ontology_find(o, "CL:0000000"));
    /* roll-up to coarse types */
    const char *names[] = {"T cell", "B cell", "monocyte"};
    int64_t coarse[3];
    for (int i = 0; i < 3; i++) assert_true(bmfm_label_is_mapped(bmfm_label_map(&ix, names[i], &coarse[i])));
    assert_int_equal(bmfm_decode_rollup_coarse(o, treg, coarse, 3), tcell);
    assert_int_equal(bmfm_decode_rollup_coarse(o, bcell, coarse, 3), bcell);
    assert_int_equal(bmfm_decode_rollup_coarse(o, bmfm_ontology_find(o, "CL:0000451"), coarse, 3), -1); /* DC */
    assert_int_equal(bmfm_decode_rollup_coarse(o, g, coarse, 3) >= -1, 1);
    /* roll-up of the CD4 memory T cell to depth 6 is T cell (lineage depth 6) */
    assert_int_equal(bmfm_decode_rollup_depth(o, NULL, bmfm_ontology_find(o, "CL:0000897"), 6), tcell);
    free(p);
    free(mass);
    free(path);
    bmfm_labelspace_free(ls);
    bmfm_label_index_free(&ix);
    bmfm_ontology_free(o);
}

static void test_cli(void **state) {
    (void)state;
    char *out = NULL;
    const char *bin = tu_bmfm_bin(), *obo = tu_data(CL_BASIC);
    assert_int_equal(tu_capture(&out, "%s ontology summary %s", bin, obo), 0);
    assert_non_null(strstr(out, "terms: 2804\n"));
    assert_non_null(strstr(out, "obsolete: 160\n"));
    assert_non_null(strstr(out, "is_a lines: 3705\n"));
    assert_non_null(strstr(out, "nodes: 2644 (non-obsolete terms)\n"));
    assert_non_null(strstr(out, "roots: 10\n"));
    free(out);
    assert_int_equal(tu_capture(&out, "%s ontology lineage %s 'cd4-positive, alpha-beta memory T cell'", bin, obo), 0);
    assert_non_null(strstr(out, "# CL:0000897 CD4-positive, alpha-beta memory T cell (matched by name)"));
    assert_non_null(strstr(out, "\n6\tCL:0000084\tT cell\n"));
    assert_non_null(strstr(out, "\n5\tCL:0000542\tlymphocyte\n"));
    assert_non_null(strstr(out, "\n0\tCL:0000000\tcell\n"));
    free(out);
    /* prune from a label list with unknown and unmapped entries */
    const char *lab = tu_scratch("labels.txt"), *leaves = tu_scratch("leaves.txt");
    FILE *f = fopen(lab, "w");
    fprintf(f, "B cell\nregulatory T cell\nT cell\nunknown\nCD14+ Monocyte\nB cell\nCL:0000451\n");
    fclose(f);
    remove(leaves);
    assert_int_equal(tu_capture(&out, "%s ontology prune %s --labels %s --out %s", bin, obo, lab, leaves), 0);
    printf("%s", out);
    assert_non_null(strstr(out, "mapped: 4 of 6 labels (5 cells)"));
    assert_non_null(strstr(out, "unmapped: 1 labels (1 cells)"));
    assert_non_null(strstr(out, "  unmapped: 'CD14+ Monocyte' (unmapped, 1 cells)"));
    assert_non_null(strstr(out, ", 3 leaves\n"));
    free(out);
    char *text;
    size_t len;
    assert_int_equal(bmfm_read_file(leaves, &text, &len), BMFM_OK);
    assert_string_equal(text, "CL:0000236\nCL:0000451\nCL:0000815\n");
    free(text);
    assert_int_equal(tu_capture(&out, "%s ontology prune %s --labels %s --strict", bin, obo, lab), 1);
    free(out);
    /* BMFM's 580 census ids against CL 2026: 9 obsolete, 7 of them replaced, 2 listed */
    f = fopen(lab, "w");
    FILE *v = fopen(tu_data("genes/bmfm_cellxgene_cell_type_vocabulary.txt"), "r");
    char line[256];
    while (fgets(line, sizeof line, v))
        if (!strncmp(line, "CL:", 3)) fputs(line, f);
    fclose(v);
    fclose(f);
    assert_int_equal(tu_capture(&out, "%s ontology prune %s --labels %s", bin, tu_data(CL_SIMPLE), lab), 0);
    assert_non_null(strstr(out, "mapped: 578 of 580 labels"));
    assert_non_null(strstr(out, "of which 7 obsolete, mapped through replaced_by"));
    assert_non_null(strstr(out, "  unmapped: 'CL:0000212' (obsolete, 1 cells)"));
    assert_non_null(strstr(out, "  unmapped: 'CL:0000055' (obsolete, 1 cells)"));
    free(out);
    /* bad input: exit 2 with a message naming the line */
    const char *bad = tu_scratch("bad.obo");
    f = fopen(bad, "w");
    fprintf(f, "[Term]\nid: A:1\n\n[Term]\nid: A:2\nis_a: A:7\n");
    fclose(f);
    assert_int_equal(tu_capture(&out, "%s ontology summary %s", bin, bad), 2);
    assert_non_null(strstr(out, "line 6: dangling is_a"));
    free(out);
    assert_int_equal(tu_capture(&out, "%s ontology lineage %s 'no such cell'", bin, obo), 2);
    free(out);
    assert_int_equal(tu_capture(&out, "%s ontology summary /nonexistent.obo", bin), 2);
    free(out);
    assert_int_equal(tu_capture(&out, "%s ontology frobnicate %s", bin, obo), 2);
    free(out);
    assert_int_equal(tu_capture(&out, "%s ontology --help", bin), 0);
    assert_non_null(strstr(out, "usage: bmfm ontology summary OBO"));
    free(out);
}

static void test_cli_prune_h5ad(void **state) {
    (void)state;
    char *out = NULL;
    const char *bin = tu_bmfm_bin(), *obo = tu_data(CL_BASIC);
    assert_int_equal(tu_capture(&out, "%s ontology prune %s %s --column cell_type_ontology_term_id", bin, obo,
                                tu_data("h5ad/bmfm_cellxgene_placenta_220.h5ad")),
                     0);
    printf("%s", out);
    assert_non_null(strstr(out, "mapped: 22 of 22 labels (220 cells)"));
    assert_non_null(strstr(out, ", 16 leaves\n"));
    free(out);
    /* the CL names column of the same file gives the same leaves, mapped by name */
    const char *l1 = tu_scratch("leaves_ids.txt"), *l2 = tu_scratch("leaves_names.txt");
    assert_int_equal(tu_capture(&out, "%s ontology prune %s %s --column cell_type_ontology_term_id --out %s", bin, obo,
                                tu_data("h5ad/bmfm_cellxgene_placenta_220.h5ad"), l1),
                     0);
    free(out);
    assert_int_equal(tu_capture(&out, "%s ontology prune %s %s --column cell_type --out %s", bin, obo,
                                tu_data("h5ad/bmfm_cellxgene_placenta_220.h5ad"), l2),
                     0);
    assert_non_null(strstr(out, "mapped: 22 of 22 labels (220 cells)"));
    free(out);
    assert_int_equal(tu_system("cmp -s %s %s", l1, l2), 0);
    /* Zheng's FACS names map to nothing: all listed, exit 2 */
    assert_int_equal(tu_capture(&out, "%s ontology prune %s %s --column celltype", bin, obo,
                                tu_data("h5ad/bmfm_zheng68k_165.h5ad")),
                     2);
    printf("%s", out);
    assert_non_null(strstr(out, "unmapped: 11 labels (165 cells)"));
    assert_non_null(strstr(out, "  unmapped: 'CD14+ Monocyte' (unmapped, 15 cells)"));
    assert_non_null(strstr(out, "no label of"));
    free(out);
    assert_int_equal(tu_capture(&out, "%s ontology prune %s %s --column no_such_column", bin, obo,
                                tu_data("h5ad/bmfm_zheng68k_165.h5ad")),
                     2);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dag_counts_match_oracle),
        cmocka_unit_test(test_lineage_of_cd4_memory_t_cell),
        cmocka_unit_test(test_cl_2026_matches_cellxgene_json),
        cmocka_unit_test(test_label_mapping),
        cmocka_unit_test(test_prune_placenta),
        cmocka_unit_test(test_prune_zheng68k),
        cmocka_unit_test(test_prune_census_vocabulary),
        cmocka_unit_test(test_from_leaves_across_releases),
        cmocka_unit_test(test_decode_greedy_vs_argmax_threshold_rollup),
        cmocka_unit_test(test_decode_on_real_ontology),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_cli_prune_h5ad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
