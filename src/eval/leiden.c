/* leiden.c - igraph_community_leiden with modularity normalisation (see leiden.h). */
#include "eval/leiden.h"

#include <errno.h>
#include <igraph/igraph.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "base/alloc.h"
#include "base/cpu_place.h"
#include "eval/cluster_metrics.h"

#define LEIDEN_BETA 0.01
#define LEIDEN_MAX_SWEEPS 100

typedef struct igraph_ctx {
    igraph_t g;
    igraph_vector_t w, strength;
    double total;
} igraph_ctx;

static void ig_free(igraph_ctx *c) {
    igraph_destroy(&c->g);
    igraph_vector_destroy(&c->w);
    igraph_vector_destroy(&c->strength);
}

/* Undirected graph with each edge of the symmetric W once (i < j). */
static bmfm_status ig_build(const bmfm_wgraph *w, igraph_ctx *c) {
    igraph_vector_int_t edges;
    int64_t ne = 0;
    for (int64_t i = 0; i < w->n; i++)
        for (int64_t p = w->indptr[i]; p < w->indptr[i + 1]; p++) ne += w->indices[p] > i;
    if (igraph_vector_int_init(&edges, 2 * ne)) return bmfm_error_set(BMFM_E_NOMEM, "leiden: igraph edge vector");
    if (igraph_vector_init(&c->w, ne)) {
        igraph_vector_int_destroy(&edges);
        return bmfm_error_set(BMFM_E_NOMEM, "leiden: igraph weight vector");
    }
    int64_t e = 0;
    for (int64_t i = 0; i < w->n; i++)
        for (int64_t p = w->indptr[i]; p < w->indptr[i + 1]; p++)
            if (w->indices[p] > i) {
                VECTOR(edges)[2 * e] = i;
                VECTOR(edges)[2 * e + 1] = w->indices[p];
                VECTOR(c->w)[e++] = w->data[p];
            }
    igraph_error_t ie = igraph_create(&c->g, &edges, w->n, IGRAPH_UNDIRECTED);
    igraph_vector_int_destroy(&edges);
    if (ie) {
        igraph_vector_destroy(&c->w);
        return bmfm_error_set(BMFM_E_INTERNAL, "leiden: igraph_create failed (%d)", (int)ie);
    }
    if (igraph_vector_init(&c->strength, 0) ||
        igraph_strength(&c->g, &c->strength, igraph_vss_all(), IGRAPH_ALL, IGRAPH_LOOPS, &c->w)) {
        igraph_destroy(&c->g);
        igraph_vector_destroy(&c->w);
        return bmfm_error_set(BMFM_E_NOMEM, "leiden: igraph strengths");
    }
    c->total = igraph_vector_sum(&c->strength);
    return BMFM_OK;
}

static void fork_helpers(bmfm_leiden_scan_job *j, int reserve);
static int help_wanted(bmfm_leiden_scan_job *j);

/* scanner: the scan whose helpers this thread may fork between sweeps (NULL
 * outside a scan and in the helpers themselves). */
static bmfm_status ig_leiden(igraph_ctx *c, double resolution, uint64_t seed, int n_iterations,
                             int32_t *membership, int *n_clusters, bmfm_leiden_scan_job *scanner) {
    igraph_vector_int_t memb, prev;
    igraph_integer_t nb = 0;
    igraph_real_t q = 0;
    bmfm_status st = BMFM_OK;
    int64_t n = igraph_vcount(&c->g);
    if (igraph_vector_int_init(&memb, n)) return bmfm_error_set(BMFM_E_NOMEM, "leiden: membership vector");
    if (igraph_vector_int_init(&prev, n)) {
        igraph_vector_int_destroy(&memb);
        return bmfm_error_set(BMFM_E_NOMEM, "leiden: membership vector");
    }
    igraph_rng_seed(igraph_rng_default(), (igraph_uint_t)seed);
    /* modularity: resolution / 2m with node weights = strengths (python-igraph's normalisation) */
    double res = c->total > 0 ? resolution / c->total : resolution;
    if (n_iterations >= 0) {
        if (igraph_community_leiden(&c->g, &c->w, &c->strength, res, LEIDEN_BETA, 0, n_iterations, &memb, &nb, &q))
            st = bmfm_error_set(BMFM_E_INTERNAL, "leiden: igraph_community_leiden failed");
    } else {
        int sweeps = 0;
        if (igraph_community_leiden(&c->g, &c->w, &c->strength, res, LEIDEN_BETA, 0, 1, &memb, &nb, &q))
            st = bmfm_error_set(BMFM_E_INTERNAL, "leiden: igraph_community_leiden failed");
        while (!st && ++sweeps < LEIDEN_MAX_SWEEPS) {
            /* between two igraph calls: a helper asked for now starts a
             * sweep (~15 ms on pbmc8k) later, not a whole resolution later */
            if (scanner && help_wanted(scanner)) fork_helpers(scanner, 0);
            igraph_vector_int_update(&prev, &memb);
            if (igraph_community_leiden(&c->g, &c->w, &c->strength, res, LEIDEN_BETA, 1, 1, &memb, &nb, &q)) {
                st = bmfm_error_set(BMFM_E_INTERNAL, "leiden: igraph_community_leiden failed");
                break;
            }
            if (igraph_vector_int_all_e(&prev, &memb)) break;
        }
    }
    if (!st) {
        for (int64_t i = 0; i < n; i++) membership[i] = (int32_t)VECTOR(memb)[i];
        *n_clusters = (int)nb;
    }
    igraph_vector_int_destroy(&memb);
    igraph_vector_int_destroy(&prev);
    return st;
}

bmfm_status bmfm_leiden(const bmfm_wgraph *w, double resolution, uint64_t seed, int n_iterations,
                        int32_t *membership, int *n_clusters) {
    igraph_ctx c;
    memset(&c, 0, sizeof c);
    /* igraph's default handler aborts the process; library code must return */
    igraph_error_handler_t *old = igraph_set_error_handler(igraph_error_handler_ignore);
    bmfm_status st = ig_build(w, &c);
    if (!st) {
        st = ig_leiden(&c, resolution, seed, n_iterations, membership, n_clusters, NULL);
        ig_free(&c);
    }
    igraph_set_error_handler(old);
    return st;
}

/* ---------------------------------------------------------------- the scan
 *
 * Resolutions are claimed one at a time from a counter in a MAP_SHARED
 * region, where each one's membership, cluster count and "done" flag go. The
 * scanning thread claims until none is left. bmfm_leiden_scan_help, called
 * by an idle thread, only asks for helpers: the scanning thread forks them
 * itself between two resolutions, when it holds no lock of igraph or of the
 * allocator (a child forked while another thread is inside malloc can find
 * the allocator locked forever: ASan's does not reset its locks at fork).
 * The children claim from the same counter; igraph keeps global state, so
 * threads cannot share it, but processes can. Every resolution reseeds the
 * RNG, so who computes it does not matter. */
typedef struct scan_shared {
    int next; /* the next unclaimed resolution (atomic, across processes) */
    int pad[15];
} scan_shared;

struct bmfm_leiden_scan_job {
    igraph_ctx c;
    double res_min, res_step;
    uint64_t seed;
    int n_iterations, nres, n_children;
    int help_wanted, closed; /* atomic: set by bmfm_leiden_scan_help / once the scan is past its claims */
    int64_t n;
    size_t bytes;
    void *map;
    scan_shared *sh;
    int32_t *all;  /* nres * n memberships */
    int32_t *ncl;  /* nres cluster counts */
    int32_t *done; /* nres flags */
    pid_t pids[BMFM_LEIDEN_MAX_HELPERS];
};

static int help_wanted(bmfm_leiden_scan_job *j) { return __atomic_load_n(&j->help_wanted, __ATOMIC_ACQUIRE) > 0; }

/* scanner: the thread of _finish (forks requested helpers); else a helper.
 * Resolutions are claimed from the largest down: the smallest takes the
 * fewest sweeps (0.2 on pbmc8k: 3 igraph calls, against 5-8 for the others),
 * so the last one claimed, which may run alone at the end, is short. */
static void scan_claim_loop(bmfm_leiden_scan_job *j, int scanner) {
    for (;;) {
        if (scanner && help_wanted(j)) fork_helpers(j, 1);
        int claim = __atomic_fetch_add(&j->sh->next, 1, __ATOMIC_ACQ_REL);
        if (claim >= j->nres) return;
        int r = j->nres - 1 - claim, k = 0;
        if (ig_leiden(&j->c, j->res_min + r * j->res_step, j->seed, j->n_iterations, j->all + (int64_t)r * j->n,
                      &k, scanner ? j : NULL))
            continue; /* left undone: the scanning thread recomputes it and reports the error */
        j->ncl[r] = k;
        __atomic_store_n(&j->done[r], 1, __ATOMIC_RELEASE);
    }
}

/* On the scanning thread, between resolutions (reserve 1: one unclaimed
 * resolution is kept for this thread) or between two sweeps of one (reserve
 * 0): up to help_wanted children, one unclaimed resolution for each. */
static void fork_helpers(bmfm_leiden_scan_job *j, int reserve) {
    int want = __atomic_exchange_n(&j->help_wanted, 0, __ATOMIC_ACQ_REL);
    int left = j->nres - __atomic_load_n(&j->sh->next, __ATOMIC_ACQUIRE);
    fflush(NULL); /* nothing buffered gets written twice */
    int cpu = bmfm_cpu_current();
    for (int started = 0; started < want && started < left - reserve && j->n_children < BMFM_LEIDEN_MAX_HELPERS;
         started++) {
        pid_t pid = fork();
        if (pid == 0) {
#ifdef __linux__
            /* no orphan keeps computing (the signal follows the forking
             * thread; a helper killed early only leaves its claim undone,
             * which _finish recomputes) */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
            /* onto the next CPU, not its parent's (cpu_place.h) */
            bmfm_cpu_move_next(cpu, started);
            scan_claim_loop(j, 0);
            _exit(0);
        }
        if (pid < 0) return; /* this thread does the work */
        j->pids[j->n_children++] = pid;
    }
}

bmfm_status bmfm_leiden_scan_start(const bmfm_wgraph *w, double res_min, double res_max, double res_step,
                                   uint64_t seed, int n_iterations, bmfm_leiden_scan_job **job) {
    *job = NULL;
    if (!(res_step > 0) || !(res_min > 0) || res_max < res_min)
        return bmfm_error_set(BMFM_E_INPUT, "leiden scan: bad resolution range %g..%g step %g", res_min, res_max,
                              res_step);
    bmfm_leiden_scan_job *j = bmfm_calloc(1, sizeof *j);
    if (!j) return BMFM_E_NOMEM;
    j->res_min = res_min;
    j->res_step = res_step;
    j->seed = seed;
    j->n_iterations = n_iterations;
    j->n = w->n;
    j->nres = (int)floor((res_max - res_min) / res_step + 1e-9) + 1;
    j->bytes = sizeof(scan_shared) + ((size_t)j->nres * (size_t)w->n + 2 * (size_t)j->nres) * sizeof(int32_t);
    j->map = mmap(NULL, j->bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (j->map == MAP_FAILED) {
        size_t bytes = j->bytes;
        free(j);
        return bmfm_error_set(BMFM_E_NOMEM, "leiden scan: cannot map %zu bytes", bytes);
    }
    j->sh = j->map; /* zero-filled */
    j->all = (int32_t *)(j->sh + 1);
    j->ncl = j->all + (size_t)j->nres * (size_t)w->n;
    j->done = j->ncl + j->nres;
    igraph_error_handler_t *old = igraph_set_error_handler(igraph_error_handler_ignore);
    bmfm_status st = ig_build(w, &j->c);
    igraph_set_error_handler(old);
    if (st) {
        munmap(j->map, j->bytes);
        free(j);
        return st;
    }
    *job = j;
    return BMFM_OK;
}

int bmfm_leiden_scan_help(bmfm_leiden_scan_job *j, int max_helpers) {
    if (!j || max_helpers < 1 || __atomic_load_n(&j->closed, __ATOMIC_ACQUIRE)) return 0;
    __atomic_store_n(&j->help_wanted, max_helpers, __ATOMIC_RELEASE);
    return 1;
}

/* Wait for every helper (after sending sig, if not 0). */
static void reap_helpers(bmfm_leiden_scan_job *j, int sig) {
    for (int i = 0; i < j->n_children; i++) {
        if (sig) kill(j->pids[i], sig);
        while (waitpid(j->pids[i], NULL, 0) < 0 && errno == EINTR) {
        }
    }
    j->n_children = 0;
}

bmfm_status bmfm_leiden_scan_finish(bmfm_leiden_scan_job *j, const int32_t *labels, int32_t *best_membership,
                                    bmfm_leiden_scan_result *out) {
    bmfm_status st = BMFM_OK;
    memset(out, 0, sizeof *out);
    out->nmi = out->ari = out->best_resolution = NAN;
    igraph_error_handler_t *old = igraph_set_error_handler(igraph_error_handler_ignore);
    scan_claim_loop(j, 1);
    __atomic_store_n(&j->closed, 1, __ATOMIC_RELEASE); /* no child starts after this */
    out->n_helpers = j->n_children;
    reap_helpers(j, 0);
    double best_nmi = -1;
    int best = 0;
    for (int r = 0; r < j->nres; r++) {
        int32_t *memb = j->all + (size_t)r * (size_t)j->n;
        double nmi;
        if (!j->done[r]) { /* a child's claim it did not finish (killed), or a failure to report */
            int k = 0;
            if ((st = ig_leiden(&j->c, j->res_min + r * j->res_step, j->seed, j->n_iterations, memb, &k, NULL)))
                goto done;
            j->ncl[r] = k;
        }
        if ((st = bmfm_nmi(labels, memb, j->n, &nmi))) goto done;
        if (nmi > best_nmi) {
            best_nmi = nmi;
            best = r;
        }
    }
    const int32_t *bm = j->all + (size_t)best * (size_t)j->n;
    out->best_resolution = j->res_min + best * j->res_step;
    out->n_clusters = j->ncl[best];
    out->n_resolutions = j->nres;
    out->nmi = best_nmi;
    if ((st = bmfm_ari(labels, bm, j->n, &out->ari))) goto done;
    if (best_membership) memcpy(best_membership, bm, (size_t)j->n * sizeof *best_membership);
done:
    igraph_set_error_handler(old);
    return st;
}

void bmfm_leiden_scan_free(bmfm_leiden_scan_job *j) {
    if (!j) return;
    reap_helpers(j, SIGKILL); /* only those of an unfinished scan are left */
    ig_free(&j->c);
    munmap(j->map, j->bytes);
    free(j);
}

bmfm_status bmfm_leiden_scan(const bmfm_wgraph *w, const int32_t *labels, double res_min, double res_max,
                             double res_step, uint64_t seed, int n_iterations, int32_t *best_membership,
                             bmfm_leiden_scan_result *out) {
    bmfm_leiden_scan_job *j;
    memset(out, 0, sizeof *out);
    out->nmi = out->ari = out->best_resolution = NAN;
    bmfm_status st = bmfm_leiden_scan_start(w, res_min, res_max, res_step, seed, n_iterations, &j);
    if (st) return st;
    st = bmfm_leiden_scan_finish(j, labels, best_membership, out);
    bmfm_leiden_scan_free(j);
    return st;
}
