/* rawcheck.h - guess whether a matrix holds raw counts.
 *
 * Reads a sample of rows (the first 200, then evenly spaced rows up to
 * max_rows; only a contiguous head for CSC, where scattered rows cost a full
 * scan each) and classifies the stored values:
 *   raw      all non-negative integers (counts; BMFM log-normalizes these),
 *   log      non-negative, some non-integer, max below 30 (log1p-like),
 *   normalized non-negative, non-integer, larger values (CP10k, TPM...),
 *   scaled   negative values present (z-scored / centred: not counts).
 * A guess from a sample, not a proof: callers offer an override option.
 */
#ifndef BMFM_DATA_RAWCHECK_H
#define BMFM_DATA_RAWCHECK_H

#include "io/dataset.h"

typedef enum {
    BMFM_VALUES_RAW,
    BMFM_VALUES_LOG,
    BMFM_VALUES_NORMALIZED,
    BMFM_VALUES_SCALED,
    BMFM_VALUES_EMPTY /* no stored non-zero value in the sample */
} bmfm_values_kind;

typedef struct bmfm_rawcheck {
    bmfm_values_kind verdict;
    int64_t rows_sampled, values_sampled;
    double min, max;
    double frac_non_integer; /* of sampled stored values */
    double frac_negative;
    char reason[256];
} bmfm_rawcheck;

#define BMFM_RAWCHECK_LOG_MAX 30.0

/* max_rows <= 0: 1000. */
bmfm_status bmfm_rawcheck_run(bmfm_dataset *ds, int64_t max_rows, bmfm_rawcheck *out);
/* "raw", "log-normalized", "normalized", "scaled", "empty" */
const char *bmfm_values_kind_name(bmfm_values_kind k);
/* Parse the names above (plus "counts" for raw, "log" for log-normalized). -1 if unknown. */
int bmfm_values_kind_parse(const char *s);

#endif
