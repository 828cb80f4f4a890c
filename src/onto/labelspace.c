/* labelspace.c - leaf label space: pruning, checkpoint leaves, masks (see labelspace.h). */
#include "onto/labelspace.h"

#include "base/alloc.h"
#include "base/fileutil.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bmfm_labelspace_free(bmfm_labelspace *ls) {
    if (!ls) return;
    free(ls->leaf_term);
    free(ls->term_leaf);
    free(ls->kept);
    free(ls->kchi_ptr);
    free(ls->kchi);
    free(ls->roots);
    free(ls->lv_ptr);
    free(ls->lv);
    free(ls);
}

static int cmp_term_id(const void *a, const void *b, void *ctx) {
    const bmfm_ontology *o = ctx;
    return strcmp(o->obo.terms[*(const int64_t *)a].id, o->obo.terms[*(const int64_t *)b].id);
}

/* Shared construction once `seed` marks the seed terms: keep the upward
 * closure of the seeds (not climbing out of a seed when cut_seeds), then
 * derive children, roots, classes (given order, or leaves sorted by id when
 * leaf_order is NULL) and the per-term class lists. */
static bmfm_status finish(bmfm_ontology *o, const uint8_t *seed, int cut_seeds, const int64_t *leaf_order,
                          int64_t K_given, bmfm_labelspace **out) {
    bmfm_status st = BMFM_OK;
    const int64_t n = o->n_terms;
    uint64_t *bits = NULL;
    int64_t *q = NULL;
    bmfm_labelspace *ls = bmfm_calloc(1, sizeof *ls);
    if (!ls) return BMFM_E_NOMEM;
    ls->onto = o;
    ls->n_terms = n;
    ls->kept = bmfm_calloc((size_t)n + 1, 1);
    ls->term_leaf = bmfm_malloc(((size_t)n + 1) * sizeof *ls->term_leaf);
    ls->kchi_ptr = bmfm_calloc((size_t)n + 1, sizeof *ls->kchi_ptr);
    ls->kchi = bmfm_malloc(((size_t)o->n_edges + 1) * sizeof *ls->kchi);
    ls->roots = bmfm_malloc(((size_t)n + 1) * sizeof *ls->roots);
    ls->leaf_term = bmfm_malloc(((size_t)n + 1) * sizeof *ls->leaf_term);
    ls->lv_ptr = bmfm_calloc((size_t)n + 1, sizeof *ls->lv_ptr);
    q = bmfm_malloc(((size_t)n + 1) * sizeof *q);
    if (!ls->kept || !ls->term_leaf || !ls->kchi_ptr || !ls->kchi || !ls->roots || !ls->leaf_term ||
        !ls->lv_ptr || !q)
        goto nomem;
    /* upward closure of the seeds */
    int64_t head = 0, tail = 0;
    for (int64_t t = 0; t < n; t++)
        if (seed[t]) {
            ls->kept[t] = 1;
            q[tail++] = t;
        }
    while (head < tail) {
        int64_t v = q[head++];
        for (int64_t e = o->par_ptr[v]; e < o->par_ptr[v + 1]; e++) {
            int64_t p = o->par[e];
            if (ls->kept[p] || (cut_seeds && seed[p])) continue;
            ls->kept[p] = 1;
            q[tail++] = p;
        }
    }
    ls->n_kept = tail;
    /* children inside the label space (ontology lists are already by id) */
    int64_t ne = 0;
    for (int64_t t = 0; t < n; t++) {
        ls->kchi_ptr[t] = ne;
        if (!ls->kept[t] || (cut_seeds && seed[t])) continue;
        for (int64_t e = o->chi_ptr[t]; e < o->chi_ptr[t + 1]; e++)
            if (ls->kept[o->chi[e]]) ls->kchi[ne++] = o->chi[e];
    }
    ls->kchi_ptr[n] = ne;
    /* roots: kept nodes no kept, uncut parent points to */
    uint8_t *has_parent = (uint8_t *)q; /* q is free again; n bytes suffice */
    memset(has_parent, 0, (size_t)n + 1);
    for (int64_t e = 0; e < ne; e++) has_parent[ls->kchi[e]] = 1;
    for (int64_t t = 0; t < n; t++)
        if (ls->kept[t] && !has_parent[t]) ls->roots[ls->n_roots++] = t;
    qsort_r(ls->roots, (size_t)ls->n_roots, sizeof *ls->roots, cmp_term_id, o);
    /* classes */
    if (leaf_order) {
        ls->K = K_given;
        memcpy(ls->leaf_term, leaf_order, (size_t)K_given * sizeof *leaf_order);
    } else {
        for (int64_t t = 0; t < n; t++)
            if (ls->kept[t] && ls->kchi_ptr[t + 1] == ls->kchi_ptr[t]) ls->leaf_term[ls->K++] = t;
        qsort_r(ls->leaf_term, (size_t)ls->K, sizeof *ls->leaf_term, cmp_term_id, o);
    }
    for (int64_t t = 0; t < n; t++) ls->term_leaf[t] = -1;
    for (int64_t k = 0; k < ls->K; k++) ls->term_leaf[ls->leaf_term[k]] = k;
    /* classes under each term: OR the children's bit sets, children first */
    const int64_t W = (ls->K + 63) / 64;
    bits = bmfm_calloc((size_t)n * (size_t)W + 1, sizeof *bits);
    if (!bits) goto nomem;
    for (int64_t i = o->n_nodes - 1; i >= 0; i--) {
        int64_t t = o->topo[i];
        if (!ls->kept[t]) continue;
        uint64_t *bt = bits + (size_t)t * (size_t)W;
        if (ls->term_leaf[t] >= 0) bt[ls->term_leaf[t] / 64] |= 1ull << (ls->term_leaf[t] % 64);
        for (int64_t e = ls->kchi_ptr[t]; e < ls->kchi_ptr[t + 1]; e++) {
            const uint64_t *bc = bits + (size_t)ls->kchi[e] * (size_t)W;
            for (int64_t w = 0; w < W; w++) bt[w] |= bc[w];
        }
    }
    int64_t total = 0;
    for (int64_t t = 0; t < n; t++) {
        ls->lv_ptr[t] = total;
        for (int64_t w = 0; w < W; w++) total += __builtin_popcountll(bits[(size_t)t * (size_t)W + (size_t)w]);
    }
    ls->lv_ptr[n] = total;
    ls->lv = bmfm_malloc(((size_t)total + 1) * sizeof *ls->lv);
    if (!ls->lv) goto nomem;
    for (int64_t t = 0, j = 0; t < n; t++)
        for (int64_t k = 0; k < ls->K; k++)
            if (bits[(size_t)t * (size_t)W + (size_t)(k / 64)] >> (k % 64) & 1) ls->lv[j++] = (int32_t)k;
    goto done;
nomem:
    st = BMFM_E_NOMEM;
done:
    free(bits);
    free(q);
    if (st) {
        bmfm_labelspace_free(ls);
        ls = NULL;
    }
    *out = ls;
    return st;
}

bmfm_status bmfm_labelspace_prune(bmfm_ontology *o, const int64_t *observed, int64_t n, bmfm_labelspace **out) {
    *out = NULL;
    uint8_t *seed = bmfm_calloc((size_t)o->n_terms + 1, 1);
    if (!seed) return BMFM_E_NOMEM;
    int64_t n_seed = 0;
    for (int64_t i = 0; i < n; i++)
        if (observed[i] >= 0 && observed[i] < o->n_terms && o->is_node[observed[i]] && !seed[observed[i]]) {
            seed[observed[i]] = 1;
            n_seed++;
        }
    bmfm_status st = n_seed ? finish(o, seed, 0, NULL, 0, out)
                            : bmfm_error_set(BMFM_E_INPUT, "%s: none of the %lld observed labels is an ontology node",
                                             o->obo.source, (long long)n);
    free(seed);
    return st;
}

bmfm_status bmfm_labelspace_from_leaves(bmfm_ontology *o, const char *const *ids, int64_t K, int add_missing,
                                        bmfm_labelspace **out) {
    bmfm_status st = BMFM_OK;
    uint8_t *seed = NULL;
    int64_t *order = bmfm_malloc(((size_t)K + 1) * sizeof *order);
    int64_t n_added = 0, n_cut = 0;
    *out = NULL;
    if (!order) return BMFM_E_NOMEM;
    if (K <= 0) {
        st = bmfm_error_set(BMFM_E_INPUT, "label dictionary is empty");
        goto done;
    }
    for (int64_t k = 0; k < K; k++) {
        int64_t t = bmfm_ontology_find(o, ids[k]);
        if (t < 0 || !o->is_node[t]) {
            if (!add_missing) {
                st = bmfm_error_set(BMFM_E_INPUT, "%s: label %lld '%s' is %s in the ontology", o->obo.source,
                                    (long long)k, ids[k], t < 0 ? "not" : "obsolete");
                goto done;
            }
            if ((st = bmfm_ontology_add_isolated(o, ids[k], ids[k], &t))) goto done;
            n_added++;
        }
        order[k] = t;
    }
    seed = bmfm_calloc((size_t)o->n_terms + 1, 1);
    if (!seed) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t k = 0; k < K; k++) {
        if (seed[order[k]]) {
            st = bmfm_error_set(BMFM_E_INPUT, "label dictionary lists %s twice", ids[k]);
            goto done;
        }
        seed[order[k]] = 1;
        n_cut += o->chi_ptr[order[k] + 1] > o->chi_ptr[order[k]];
    }
    if ((st = finish(o, seed, 1, order, K, out))) goto done;
    (*out)->n_added = n_added;
    (*out)->n_cut = n_cut;
    if (n_added) bmfm_log_warn("%lld checkpoint label(s) are not live terms of %s; kept as isolated leaves",
                               (long long)n_added, o->obo.source);
    if (n_cut) bmfm_log_info("%lld checkpoint leaves have children in %s; those were cut off",
                             (long long)n_cut, o->obo.source);
done:
    free(order);
    free(seed);
    return st;
}

int64_t bmfm_labelspace_target(const bmfm_labelspace *ls, int64_t t, float *w, float *flag) {
    memset(w, 0, (size_t)ls->K * sizeof *w);
    *flag = 0;
    if (!bmfm_labelspace_has(ls, t)) return 0;
    for (int64_t j = ls->lv_ptr[t]; j < ls->lv_ptr[t + 1]; j++) w[ls->lv[j]] = 1;
    int64_t n = ls->lv_ptr[t + 1] - ls->lv_ptr[t];
    *flag = n > 0;
    return n;
}

bmfm_status bmfm_labelspace_write_leaves(const bmfm_labelspace *ls, const char *path) {
    char tmp[4096];
    BMFM_TRY(bmfm_atomic_tmp_path(path, tmp, sizeof tmp));
    FILE *f = fopen(tmp, "w");
    if (!f) return bmfm_error_set(BMFM_E_IO, "%s: cannot create", tmp);
    for (int64_t k = 0; k < ls->K; k++) fprintf(f, "%s\n", bmfm_ontology_id(ls->onto, ls->leaf_term[k]));
    if (fclose(f) != 0) {
        bmfm_atomic_abort(tmp);
        return bmfm_error_set(BMFM_E_IO, "%s: write failed", path);
    }
    return bmfm_atomic_commit(tmp, path);
}
