/* rawcheck.c - raw-count detection from a row sample (see rawcheck.h). */
#include "data/rawcheck.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define HEAD_ROWS 200

const char *bmfm_values_kind_name(bmfm_values_kind k) {
    switch (k) {
    case BMFM_VALUES_RAW: return "raw";
    case BMFM_VALUES_LOG: return "log-normalized";
    case BMFM_VALUES_NORMALIZED: return "normalized";
    case BMFM_VALUES_SCALED: return "scaled";
    default: return "empty";
    }
}

int bmfm_values_kind_parse(const char *s) {
    if (!strcmp(s, "raw") || !strcmp(s, "counts")) return BMFM_VALUES_RAW;
    if (!strcmp(s, "log-normalized") || !strcmp(s, "log")) return BMFM_VALUES_LOG;
    if (!strcmp(s, "normalized")) return BMFM_VALUES_NORMALIZED;
    if (!strcmp(s, "scaled")) return BMFM_VALUES_SCALED;
    return -1;
}

typedef struct {
    int64_t n, non_int, neg;
    double min, max;
} tally;

static void tally_rows(tally *t, const bmfm_csr *m) {
    int64_t nnz = m->indptr[m->nrows];
    for (int64_t k = 0; k < nnz; k++) {
        double x = m->data[k];
        if (x == 0) continue;
        if (t->n == 0 || x < t->min) t->min = x;
        if (t->n == 0 || x > t->max) t->max = x;
        t->n++;
        t->neg += x < 0;
        t->non_int += x != floor(x);
    }
}

bmfm_status bmfm_rawcheck_run(bmfm_dataset *ds, int64_t max_rows, bmfm_rawcheck *out) {
    memset(out, 0, sizeof *out);
    if (max_rows <= 0) max_rows = 1000;
    int64_t n_obs = bmfm_dataset_n_obs(ds);
    const bmfm_matrix_info *info = bmfm_dataset_info(ds);
    bmfm_csr rows = {0};
    tally t = {0};
    bmfm_status s = BMFM_OK;
    int64_t want = n_obs < max_rows ? n_obs : max_rows;
    int64_t head = info->encoding == BMFM_X_CSC ? want : (want < HEAD_ROWS ? want : HEAD_ROWS);
    if (head > 0) {
        s = bmfm_dataset_read_rows(ds, 0, head, &rows);
        if (s) goto done;
        tally_rows(&t, &rows);
    }
    out->rows_sampled = head;
    /* evenly spaced rows over the rest of the file */
    int64_t extra = want - head, rest = n_obs - head;
    for (int64_t i = 0; i < extra; i++) {
        int64_t r = head + (int64_t)((double)i * (double)rest / (double)extra);
        s = bmfm_dataset_read_rows(ds, r, r + 1, &rows);
        if (s) goto done;
        tally_rows(&t, &rows);
        out->rows_sampled++;
    }
    out->values_sampled = t.n;
    out->min = t.min;
    out->max = t.max;
    out->frac_non_integer = t.n ? (double)t.non_int / (double)t.n : 0;
    out->frac_negative = t.n ? (double)t.neg / (double)t.n : 0;
    if (t.n == 0) {
        out->verdict = BMFM_VALUES_EMPTY;
        snprintf(out->reason, sizeof out->reason, "no non-zero values in %lld sampled rows", (long long)out->rows_sampled);
    } else if (t.neg) {
        out->verdict = BMFM_VALUES_SCALED;
        snprintf(out->reason, sizeof out->reason, "%lld of %lld sampled values are negative (min %g): scaled or centred, not counts",
                 (long long)t.neg, (long long)t.n, t.min);
    } else if (t.non_int == 0) {
        out->verdict = BMFM_VALUES_RAW;
        snprintf(out->reason, sizeof out->reason, "all %lld sampled values are non-negative integers (max %g)",
                 (long long)t.n, t.max);
    } else if (t.max < BMFM_RAWCHECK_LOG_MAX) {
        out->verdict = BMFM_VALUES_LOG;
        snprintf(out->reason, sizeof out->reason, "%.1f%% of sampled values are non-integer, max %g < %g: log-scale",
                 100.0 * out->frac_non_integer, t.max, BMFM_RAWCHECK_LOG_MAX);
    } else {
        out->verdict = BMFM_VALUES_NORMALIZED;
        snprintf(out->reason, sizeof out->reason, "%.1f%% of sampled values are non-integer, max %g: normalized, not log",
                 100.0 * out->frac_non_integer, t.max);
    }
done:
    bmfm_csr_free(&rows);
    return s;
}
