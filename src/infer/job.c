/* job.c - file-to-file inference (see job.h). */
#include "infer/job.h"

#include "base/alloc.h"
#include "io/dataset.h"
#include "io/h5ad_write.h"

#include <stdio.h>
#include <string.h>

void bmfm_infer_job_default(bmfm_infer_job *j) {
    memset(j, 0, sizeof *j);
    j->key = "X_bmfm";
    j->prefix = "bmfm_pred_";
    j->write_embedding = 1;
    bmfm_infer_options_default(&j->opts);
}

bmfm_status bmfm_infer_job_run(const bmfm_infer_job *j, bmfm_job_report *rep) {
    bmfm_status st;
    bmfm_dataset *ds = NULL;
    bmfm_infer_model *m = NULL;
    bmfm_predict *pred = NULL;
    bmfm_h5ad_edit *e = NULL;
    bmfm_infer_result *r = NULL;
    memset(rep, 0, sizeof *rep);
    if ((st = bmfm_dataset_open(j->input, j->layer, &ds))) goto done;
    if ((st = bmfm_infer_model_load(j->opts.model_dir, j->opts.gene_list, &m))) goto done;
    if (j->annotate && (st = bmfm_predict_new(m, &j->pred, bmfm_dataset_n_obs(ds), &pred))) goto done;
    /* fail on an unwritable output before the long run */
    if ((st = bmfm_h5ad_edit_begin(ds, j->output, &e))) goto done;
    bmfm_infer_options o = j->opts;
    o.predict = j->annotate;
    bmfm_infer_hook hook = {0};
    if (pred) hook = bmfm_predict_hook(pred);
    if ((st = bmfm_infer_run(m, ds, &o, pred ? &hook : NULL, &r))) goto done;
    if (j->write_embedding && (st = bmfm_h5ad_edit_put_obsm(e, j->key, r->emb, r->n_obs, r->dim))) goto done;
    if (pred && (st = bmfm_predict_write(pred, r, e, j->prefix))) goto done;
    char prov[2048];
    snprintf(prov, sizeof prov,
             "{\"model\": \"%s\", \"pooling\": \"%s\", \"max_length\": %lld, \"order\": \"%s\", "
             "\"input\": \"%s\", \"layer\": \"%s\", \"normalization\": \"%s\", \"empty_cells\": %lld}",
             j->opts.model_dir, j->opts.pooling ? j->opts.pooling : m->default_pooling,
             (long long)(j->opts.max_length > 0 ? j->opts.max_length
                         : m->default_max_length > 0 ? m->default_max_length : 1024),
             j->opts.order ? j->opts.order : m->default_order[0] ? m->default_order : "var", j->input,
             j->layer ? j->layer : "X", r->normalize_note, (long long)r->n_empty);
    char key[256];
    snprintf(key, sizeof key, "%s_provenance", j->key);
    if ((st = bmfm_h5ad_edit_put_uns_string(e, key, prov))) goto done;
    st = bmfm_h5ad_edit_commit(e);
    e = NULL;
    if (st) goto done;
    rep->n_obs = r->n_obs;
    rep->n_empty = r->n_empty;
    rep->n_truncated = r->n_truncated;
    rep->dim = r->dim;
    rep->n_heads = r->n_heads;
    rep->seconds = r->seconds;
    snprintf(rep->normalize_note, sizeof rep->normalize_note, "%s", r->normalize_note);
done:
    if (e) bmfm_h5ad_edit_abort(e);
    bmfm_infer_result_free(r);
    bmfm_predict_free(pred);
    bmfm_infer_model_free(m);
    bmfm_dataset_close(ds);
    return st;
}
