/* job.h - one file-to-file inference job, what `bmfm embed` and `bmfm
 * annotate` run: open the input (an .h5ad, the matrix picked by --layer, or
 * a 10x directory), load the model directory, check the output is writable,
 * run the pipeline, then write obsm[key], the prediction columns and a
 * provenance string in uns into a copy of the input, renamed into place only
 * when everything succeeded (an error leaves the output untouched).
 */
#ifndef BMFM_INFER_JOB_H
#define BMFM_INFER_JOB_H

#include "infer/api.h"
#include "infer/predict.h"

typedef struct bmfm_infer_job {
    const char *input;
    const char *output;        /* NULL = in place */
    const char *layer;         /* input matrix: NULL = X, "raw", or a layer name */
    const char *key;           /* obsm key, default "X_bmfm" */
    const char *prefix;        /* obs prefix, default "bmfm_pred_" */
    int write_embedding;       /* 1 = obsm[key] */
    int annotate;              /* 1 = prediction columns */
    bmfm_infer_options opts;
    bmfm_predict_opts pred;
} bmfm_infer_job;

typedef struct bmfm_job_report {
    int64_t n_obs, n_empty, n_truncated, dim;
    int n_heads;
    double seconds;
    char normalize_note[512];
} bmfm_job_report;

void bmfm_infer_job_default(bmfm_infer_job *j);
bmfm_status bmfm_infer_job_run(const bmfm_infer_job *j, bmfm_job_report *rep);

#endif
