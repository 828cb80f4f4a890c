/* ontology.c - is_a DAG over the non-obsolete terms of an OBO file (see ontology.h). */
#include "onto/ontology.h"

#include "base/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bmfm_ontology_free(bmfm_ontology *o) {
    if (!o) return;
    bmfm_obo_free(&o->obo);
    bmfm_strmap_free(&o->index);
    free(o->is_node);
    free(o->par_ptr);
    free(o->par);
    free(o->chi_ptr);
    free(o->chi);
    free(o->depth);
    free(o->depth_max);
    free(o->topo);
    free(o->roots);
    free(o->scratch);
    free(o->stamp);
    free(o);
}

int64_t bmfm_ontology_find(const bmfm_ontology *o, const char *id) {
    int64_t v;
    return id && bmfm_strmap_get(&o->index, id, &v) ? v : -1;
}

static int cmp_id_ctx(const void *a, const void *b, void *ctx) {
    const bmfm_ontology *o = ctx;
    return strcmp(o->obo.terms[*(const int64_t *)a].id, o->obo.terms[*(const int64_t *)b].id);
}

static int cmp_depth_id_ctx(const void *a, const void *b, void *ctx) {
    const bmfm_ontology *o = ctx;
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    if (o->depth[x] != o->depth[y]) return o->depth[x] < o->depth[y] ? -1 : 1;
    return strcmp(o->obo.terms[x].id, o->obo.terms[y].id);
}

void bmfm_ontology_sort_by_depth(const bmfm_ontology *o, int64_t *terms, int64_t n) {
    qsort_r(terms, (size_t)n, sizeof *terms, cmp_depth_id_ctx, (void *)o);
}

/* Report one is_a cycle among the nodes Kahn's algorithm could not order
 * (each of them has a parent that is also left over). */
static bmfm_status cycle_error(bmfm_ontology *o, const int64_t *indeg) {
    int64_t start = -1;
    for (int64_t t = 0; t < o->n_terms && start < 0; t++)
        if (o->is_node[t] && indeg[t] > 0) start = t;
    /* walk up left-over parents until a node repeats: that node is on a cycle */
    uint32_t *seen = o->stamp;
    memset(seen, 0, (size_t)o->n_terms * sizeof *seen);
    int64_t t = start;
    while (!seen[t]) {
        seen[t] = 1;
        int64_t next = -1;
        for (int64_t e = o->par_ptr[t]; e < o->par_ptr[t + 1] && next < 0; e++)
            if (indeg[o->par[e]] > 0) next = o->par[e];
        if (next < 0) return bmfm_error_set(BMFM_E_INTERNAL, "%s: cycle walk lost its way", o->obo.source);
        t = next;
    }
    /* t is on the cycle; list it child -> parent and cite the first is_a line */
    char path[512];
    size_t used = 0;
    int line = 0;
    int64_t c = t;
    do {
        int64_t next = -1; /* the same first left-over parent the walk took */
        for (int64_t e = o->par_ptr[c]; e < o->par_ptr[c + 1] && next < 0; e++)
            if (indeg[o->par[e]] > 0) next = o->par[e];
        const bmfm_obo_term *ct = &o->obo.terms[c];
        for (int32_t k = 0; k < ct->n_is_a && !line; k++)
            if (!strcmp(ct->is_a[k], o->obo.terms[next].id)) line = ct->is_a_line[k];
        if (used < sizeof path)
            used += (size_t)snprintf(path + used, sizeof path - used, "%s is_a ", ct->id);
        seen[c] = 2;
        c = next;
    } while (c != t && seen[c] != 2);
    if (used < sizeof path) snprintf(path + used, sizeof path - used, "%s", o->obo.terms[c].id);
    return bmfm_error_set(BMFM_E_INPUT, "%s: line %d: is_a cycle: %s", o->obo.source, line, path);
}

bmfm_status bmfm_ontology_build(bmfm_obo *obo, bmfm_ontology **out) {
    bmfm_status st = BMFM_OK;
    int64_t *indeg = NULL, *fill = NULL;
    *out = NULL;
    bmfm_ontology *o = bmfm_calloc(1, sizeof *o);
    if (!o) return BMFM_E_NOMEM;
    o->obo = *obo;
    memset(obo, 0, sizeof *obo);
    const int64_t n = o->n_terms = o->obo.n_terms;
    const char *src = o->obo.source ? o->obo.source : "<obo>";
    if (bmfm_strmap_init(&o->index, (size_t)n + 16)) goto nomem;
    o->is_node = bmfm_calloc((size_t)n + 1, 1);
    o->par_ptr = bmfm_calloc((size_t)n + 1, sizeof *o->par_ptr);
    o->chi_ptr = bmfm_calloc((size_t)n + 1, sizeof *o->chi_ptr);
    o->depth = bmfm_malloc(((size_t)n + 1) * sizeof *o->depth);
    o->depth_max = bmfm_malloc(((size_t)n + 1) * sizeof *o->depth_max);
    o->scratch = bmfm_malloc(((size_t)n + 1) * sizeof *o->scratch);
    o->stamp = bmfm_calloc((size_t)n + 1, sizeof *o->stamp);
    indeg = bmfm_calloc((size_t)n + 1, sizeof *indeg);
    fill = bmfm_calloc((size_t)n + 1, sizeof *fill);
    if (!o->is_node || !o->par_ptr || !o->chi_ptr || !o->depth || !o->depth_max || !o->scratch ||
        !o->stamp || !indeg || !fill)
        goto nomem;
    for (int64_t t = 0; t < n; t++) {
        const bmfm_obo_term *tt = &o->obo.terms[t];
        if (bmfm_strmap_put(&o->index, tt->id, t, NULL) < 0) goto nomem;
        o->is_node[t] = !tt->obsolete && strcmp(tt->id, "unknown") != 0;
        o->n_nodes += o->is_node[t];
    }
    /* resolve is_a: count edges per child (duplicates counted once) */
    for (int64_t t = 0; t < n; t++) {
        const bmfm_obo_term *tt = &o->obo.terms[t];
        for (int32_t k = 0; k < tt->n_is_a; k++) {
            int64_t p = bmfm_ontology_find(o, tt->is_a[k]);
            if (p < 0) {
                st = bmfm_error_set(BMFM_E_INPUT, "%s: line %d: dangling is_a: %s is_a %s, which no [Term] defines",
                                    src, tt->is_a_line[k], tt->id, tt->is_a[k]);
                goto done;
            }
            if (!o->is_node[t]) continue;
            if (!o->is_node[p]) {
                o->n_edges_dropped++;
                continue;
            }
            if (p == t) {
                st = bmfm_error_set(BMFM_E_INPUT, "%s: line %d: is_a cycle: %s is_a itself", src,
                                    tt->is_a_line[k], tt->id);
                goto done;
            }
            int dup = 0;
            for (int32_t j = 0; j < k && !dup; j++) dup = !strcmp(tt->is_a[j], tt->is_a[k]);
            if (dup) continue;
            o->par_ptr[t + 1]++;
            o->chi_ptr[p + 1]++;
        }
    }
    for (int64_t t = 0; t < n; t++) {
        o->par_ptr[t + 1] += o->par_ptr[t];
        o->chi_ptr[t + 1] += o->chi_ptr[t];
    }
    o->n_edges = o->par_ptr[n];
    o->par = bmfm_malloc(((size_t)o->n_edges + 1) * sizeof *o->par);
    o->chi = bmfm_malloc(((size_t)o->n_edges + 1) * sizeof *o->chi);
    if (!o->par || !o->chi) goto nomem;
    for (int64_t t = 0; t < n; t++) {
        const bmfm_obo_term *tt = &o->obo.terms[t];
        if (!o->is_node[t]) continue;
        for (int32_t k = 0; k < tt->n_is_a; k++) {
            int64_t p = bmfm_ontology_find(o, tt->is_a[k]);
            if (!o->is_node[p]) continue;
            int dup = 0;
            for (int32_t j = 0; j < k && !dup; j++) dup = !strcmp(tt->is_a[j], tt->is_a[k]);
            if (dup) continue;
            o->par[o->par_ptr[t] + indeg[t]++] = p;
            o->chi[o->chi_ptr[p] + fill[p]++] = t;
        }
    }
    for (int64_t t = 0; t < n; t++) {
        qsort_r(o->par + o->par_ptr[t], (size_t)(o->par_ptr[t + 1] - o->par_ptr[t]), sizeof *o->par,
                cmp_id_ctx, o);
        qsort_r(o->chi + o->chi_ptr[t], (size_t)(o->chi_ptr[t + 1] - o->chi_ptr[t]), sizeof *o->chi,
                cmp_id_ctx, o);
    }
    /* Kahn's algorithm in id order of the roots; indeg[] = parents left */
    o->topo = bmfm_malloc(((size_t)o->n_nodes + 1) * sizeof *o->topo);
    o->roots = bmfm_malloc(((size_t)o->n_nodes + 1) * sizeof *o->roots);
    if (!o->topo || !o->roots) goto nomem;
    for (int64_t t = 0; t < n; t++) {
        o->depth[t] = o->depth_max[t] = -1;
        if (o->is_node[t] && indeg[t] == 0) o->roots[o->n_roots++] = t;
        if (o->is_node[t] && o->chi_ptr[t + 1] == o->chi_ptr[t]) o->n_leaves++;
    }
    qsort_r(o->roots, (size_t)o->n_roots, sizeof *o->roots, cmp_id_ctx, o);
    int64_t head = 0, tail = 0;
    for (int64_t r = 0; r < o->n_roots; r++) {
        o->topo[tail++] = o->roots[r];
        o->depth[o->roots[r]] = o->depth_max[o->roots[r]] = 0;
    }
    while (head < tail) {
        int64_t t = o->topo[head++];
        for (int64_t e = o->chi_ptr[t]; e < o->chi_ptr[t + 1]; e++) {
            int64_t c = o->chi[e];
            int32_t d = o->depth[t] + 1, dm = o->depth_max[t] + 1;
            if (o->depth[c] < 0 || d < o->depth[c]) o->depth[c] = d;
            if (dm > o->depth_max[c]) o->depth_max[c] = dm;
            if (--indeg[c] == 0) o->topo[tail++] = c;
        }
    }
    if (tail != o->n_nodes) {
        st = cycle_error(o, indeg);
        goto done;
    }
    goto done;
nomem:
    st = BMFM_E_NOMEM;
done:
    free(indeg);
    free(fill);
    if (st) {
        bmfm_ontology_free(o);
        o = NULL;
    }
    *out = o;
    return st;
}

bmfm_status bmfm_ontology_load(const char *path, bmfm_ontology **out) {
    bmfm_obo obo;
    *out = NULL;
    BMFM_TRY(bmfm_obo_read(path, &obo));
    return bmfm_ontology_build(&obo, out);
}

/* Grow one per-term array by one element. */
#define GROW1(arr, n)                                                                  \
    do {                                                                               \
        void *p_ = bmfm_realloc((arr), ((size_t)(n) + 2) * sizeof *(arr));             \
        if (!p_) return BMFM_E_NOMEM;                                                  \
        (arr) = p_;                                                                    \
    } while (0)

bmfm_status bmfm_ontology_add_isolated(bmfm_ontology *o, const char *id, const char *name, int64_t *term) {
    int64_t n = o->n_terms, t = bmfm_ontology_find(o, id);
    if (t >= 0 && o->is_node[t])
        return bmfm_error_set(BMFM_E_INPUT, "%s: term %s is already a node", o->obo.source, id);
    GROW1(o->topo, o->n_nodes);
    GROW1(o->roots, o->n_roots);
    if (t < 0) {
        GROW1(o->is_node, n);
        GROW1(o->par_ptr, n);
        GROW1(o->chi_ptr, n);
        GROW1(o->depth, n);
        GROW1(o->depth_max, n);
        GROW1(o->scratch, n);
        GROW1(o->stamp, n);
        BMFM_TRY(bmfm_obo_append_term(&o->obo, id, name));
        if (bmfm_strmap_put(&o->index, id, n, NULL) < 0) return BMFM_E_NOMEM;
        o->par_ptr[n + 1] = o->par_ptr[n];
        o->chi_ptr[n + 1] = o->chi_ptr[n];
        o->stamp[n] = 0;
        o->n_terms = n + 1;
        t = n;
    }
    /* an obsolete term has no edges, so promoting it makes an isolated node */
    o->is_node[t] = 1;
    o->depth[t] = o->depth_max[t] = 0;
    o->topo[o->n_nodes++] = t;
    o->roots[o->n_roots++] = t;
    o->n_leaves++;
    *term = t;
    return BMFM_OK;
}

/* Breadth-first closure over parents (up) or children (down). */
static int64_t closure(bmfm_ontology *o, int64_t t, int self_too, int64_t *out, int up) {
    if (t < 0 || t >= o->n_terms || !o->is_node[t]) return 0;
    if (++o->cur_stamp == 0) {
        memset(o->stamp, 0, (size_t)o->n_terms * sizeof *o->stamp);
        o->cur_stamp = 1;
    }
    const int64_t *ptr = up ? o->par_ptr : o->chi_ptr, *adj = up ? o->par : o->chi;
    int64_t *q = o->scratch, head = 0, tail = 0, n = 0;
    q[tail++] = t;
    o->stamp[t] = o->cur_stamp;
    while (head < tail) {
        int64_t v = q[head++];
        if (v != t || self_too) out[n++] = v;
        for (int64_t e = ptr[v]; e < ptr[v + 1]; e++)
            if (o->stamp[adj[e]] != o->cur_stamp) {
                o->stamp[adj[e]] = o->cur_stamp;
                q[tail++] = adj[e];
            }
    }
    bmfm_ontology_sort_by_depth(o, out, n);
    return n;
}

int64_t bmfm_ontology_ancestors(bmfm_ontology *o, int64_t t, int self_too, int64_t *out) {
    return closure(o, t, self_too, out, 1);
}

int64_t bmfm_ontology_descendants(bmfm_ontology *o, int64_t t, int self_too, int64_t *out) {
    return closure(o, t, self_too, out, 0);
}

int bmfm_ontology_is_ancestor(bmfm_ontology *o, int64_t a, int64_t d) {
    if (a < 0 || d < 0 || !o->is_node[a] || !o->is_node[d]) return 0;
    if (a == d) return 1;
    if (o->depth[a] > o->depth_max[d]) return 0; /* an ancestor is strictly shallower on every path */
    if (++o->cur_stamp == 0) {
        memset(o->stamp, 0, (size_t)o->n_terms * sizeof *o->stamp);
        o->cur_stamp = 1;
    }
    int64_t *q = o->scratch, head = 0, tail = 0;
    q[tail++] = d;
    o->stamp[d] = o->cur_stamp;
    while (head < tail) {
        int64_t v = q[head++];
        for (int64_t e = o->par_ptr[v]; e < o->par_ptr[v + 1]; e++) {
            int64_t p = o->par[e];
            if (p == a) return 1;
            if (o->stamp[p] != o->cur_stamp) {
                o->stamp[p] = o->cur_stamp;
                q[tail++] = p;
            }
        }
    }
    return 0;
}
