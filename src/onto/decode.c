/* decode.c - node probabilities, argmax, greedy/threshold decoding, roll-up (see decode.h). */
#include "onto/decode.h"

#include "base/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void bmfm_decode_softmax(const float *logits, int64_t K, double *p) {
    double m = -INFINITY, s = 0;
    for (int64_t k = 0; k < K; k++) m = logits[k] > m ? logits[k] : m;
    for (int64_t k = 0; k < K; k++) s += p[k] = exp((double)logits[k] - m);
    for (int64_t k = 0; k < K; k++) p[k] /= s;
}

void bmfm_decode_node_mass(const bmfm_labelspace *ls, const double *p, double *mass) {
    for (int64_t t = 0; t < ls->n_terms; t++) {
        double s = 0;
        for (int64_t j = ls->lv_ptr[t]; j < ls->lv_ptr[t + 1]; j++) s += p[ls->lv[j]];
        mass[t] = s;
    }
}

int64_t bmfm_decode_argmax(const bmfm_labelspace *ls, const double *p) {
    int64_t best = 0;
    for (int64_t k = 1; k < ls->K; k++)
        if (p[k] > p[best]) best = k;
    return best;
}

/* Index of the largest mass among terms[0..n) (lists are sorted by id, so
 * the first maximum is the smallest id), or -1 when n == 0. */
static int64_t best_of(const int64_t *terms, int64_t n, const double *mass) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++)
        if (best < 0 || mass[terms[i]] > mass[terms[best]]) best = i;
    return best < 0 ? -1 : terms[best];
}

int64_t bmfm_decode_greedy(const bmfm_labelspace *ls, const double *mass, double tau, int64_t *path,
                           int64_t *path_len) {
    *path_len = 0;
    int64_t t = best_of(ls->roots, ls->n_roots, mass);
    if (t < 0 || mass[t] < tau) return -1;
    path[(*path_len)++] = t;
    for (;;) {
        int64_t c = best_of(ls->kchi + ls->kchi_ptr[t], ls->kchi_ptr[t + 1] - ls->kchi_ptr[t], mass);
        if (c < 0 || mass[c] < tau) return t;
        t = c;
        path[(*path_len)++] = t;
    }
}

int64_t bmfm_decode_rollup_depth(bmfm_ontology *o, const double *mass, int64_t t, int32_t depth) {
    if (t < 0 || t >= o->n_terms || !o->is_node[t]) return -1;
    if (o->depth[t] <= depth) return t;
    int64_t *anc = bmfm_malloc((size_t)o->n_terms * sizeof *anc);
    if (!anc) return -1;
    int64_t n = bmfm_ontology_ancestors(o, t, 0, anc), best = -1;
    /* sorted by (depth, id): the first maximum is the smallest id */
    for (int64_t i = 0; i < n; i++) {
        if (o->depth[anc[i]] != depth) continue;
        if (best < 0 || (mass && mass[anc[i]] > mass[best])) best = anc[i];
    }
    free(anc);
    return best;
}

int64_t bmfm_decode_rollup_coarse(bmfm_ontology *o, int64_t t, const int64_t *coarse, int64_t n) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++) {
        int64_t c = coarse[i];
        if (c < 0 || !bmfm_ontology_is_ancestor(o, c, t)) continue;
        if (best < 0 || o->depth[c] > o->depth[best]) best = c;
    }
    return best;
}

bmfm_status bmfm_decode_cells(const bmfm_labelspace *ls, const float *logits, int64_t N, double tau,
                              bmfm_decode_call *out) {
    double *p = bmfm_malloc((size_t)ls->K * sizeof *p);
    double *mass = bmfm_malloc((size_t)ls->n_terms * sizeof *mass);
    int64_t *path = bmfm_malloc((size_t)ls->n_terms * sizeof *path), len;
    bmfm_status st = p && mass && path ? BMFM_OK : BMFM_E_NOMEM;
    for (int64_t i = 0; !st && i < N; i++) {
        bmfm_decode_softmax(logits + i * ls->K, ls->K, p);
        bmfm_decode_node_mass(ls, p, mass);
        int64_t k = bmfm_decode_argmax(ls, p);
        out[i].leaf_term = ls->leaf_term[k];
        out[i].leaf_prob = p[k];
        out[i].greedy_term = bmfm_decode_greedy(ls, mass, tau, path, &len);
        out[i].greedy_mass = out[i].greedy_term >= 0 ? mass[out[i].greedy_term] : 0;
    }
    free(p);
    free(mass);
    free(path);
    return st;
}
