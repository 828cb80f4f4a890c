/* probe.h - linear and kNN probes of a cell embedding (cz-benchmarks / BMFM
 * label-prediction protocol, metrics.md B12/B13).
 *
 * Protocol: cells with a missing label or a non-finite embedding row are
 * dropped (counted), then classes with fewer than min_class_size cells;
 * 5-fold stratified CV; features scaled by the training fold's standard
 * deviation WITHOUT centring (StandardScaler(with_mean=False)); L2 logistic
 * regression with sklearn 1.2's objective (sum of log-losses + 0.5/C ||W||^2,
 * intercept unpenalised; multinomial for > 2 classes, binomial for 2), solved
 * by L-BFGS stopped like scipy's L-BFGS-B under sklearn (gtol = tol on the
 * max-abs gradient, relative decrease <= 2.2e-9, max_iter iterations); and a
 * kNN classifier (uniform vote, Euclidean, ties to the smallest class).
 * Scores: mean over folds of macro F1 (sklearn f1_score(average="macro"),
 * labels = union of true and predicted) and accuracy.
 *
 * Folds are ours, not sklearn's StratifiedKFold (which draws from NumPy's RNG):
 * bmfm_probe_folds() documents and exports them so an oracle can reuse them.
 *
 * Not here: random forests, AUROC, SGD probes; reading files (see cli/eval.c).
 */
#ifndef BMFM_EVAL_PROBE_H
#define BMFM_EVAL_PROBE_H

#include "base/error.h"

#include <stdint.h>

#define BMFM_PROBE_MAX_FOLDS 20

typedef struct bmfm_probe_options {
    int n_folds;        /* 5 */
    uint64_t seed;      /* 0 */
    int min_class_size; /* 10 */
    double C;           /* 1.0 (inverse L2 strength) */
    int max_iter;       /* 100 (sklearn default) */
    double tol;         /* 1e-4 (sklearn default) */
    int knn_k;          /* 5 (KNeighborsClassifier default); 0 = no kNN probe */
} bmfm_probe_options;

void bmfm_probe_options_default(bmfm_probe_options *o);

typedef struct bmfm_probe_result {
    double lr_f1_macro, lr_accuracy;   /* mean over folds (or held-out batches) */
    double knn_f1_macro, knn_accuracy; /* NaN when knn_k == 0 */
    int n_folds;                       /* folds or held-out batches actually scored */
    double lr_f1_fold[BMFM_PROBE_MAX_FOLDS], lr_acc_fold[BMFM_PROBE_MAX_FOLDS];
    double knn_f1_fold[BMFM_PROBE_MAX_FOLDS], knn_acc_fold[BMFM_PROBE_MAX_FOLDS];
    int n_classes;                     /* classes kept */
    int n_classes_dropped;             /* classes with < min_class_size cells */
    int64_t n_cells_used;
    int64_t n_dropped_nan;             /* non-finite embedding rows */
    int64_t n_dropped_label;           /* missing label or class too small */
    int lr_not_converged;              /* fits that hit max_iter (sklearn would warn) */
    char note[256];                    /* why a score is undefined, if it is */
} bmfm_probe_result;

/* Stratified fold of each cell: fold[i] in [0, n_folds) or -1 (dropped: label
 * < 0 or >= n_labels, class with < min_class_size cells, or skip[i] != 0 when
 * skip is given). Assignment: classes in code order; within a class the cells
 * are shuffled by Fisher-Yates with bmfm_rng(seed, stream = class code); a
 * running counter over all kept cells (class after class, in shuffled order)
 * gives fold = counter % n_folds. Every class is thus spread over the folds
 * with sizes differing by at most one, and fold sizes differ by at most one. */
bmfm_status bmfm_probe_folds(const int32_t *labels, int64_t n, int64_t n_labels, int n_folds,
                             int min_class_size, uint64_t seed, const uint8_t *skip, int32_t *fold);

/* Stratified k-fold CV of both probes. emb is n x d row-major. The folds are
 * bmfm_probe_folds(labels, n, n_labels, n_folds, max(min_class_size, n_folds),
 * seed, skip = rows with a non-finite value, fold). */
bmfm_status bmfm_probe_cv(const float *emb, int64_t n, int64_t d, const int32_t *labels,
                          int64_t n_labels, const bmfm_probe_options *o, bmfm_probe_result *out);

/* Held-out-batch mode. With test_batch >= 0: train on every other batch, test
 * on that one (n_folds = 1). With test_batch < 0: leave-one-batch-out over all
 * batches with cells, scores averaged over them. Classes are filtered by
 * min_class_size over the whole data; the scaler is fit on the training cells. */
bmfm_status bmfm_probe_heldout_batch(const float *emb, int64_t n, int64_t d, const int32_t *labels,
                                     int64_t n_labels, const int32_t *batches, int64_t n_batches,
                                     int test_batch, const bmfm_probe_options *o,
                                     bmfm_probe_result *out);

/* ---- building blocks (exported for the oracle tests) ---- */

/* L2 logistic regression; X is n x d row-major double, y in [0, n_classes).
 * n_classes == 2: one coefficient row (binomial, class 1 positive);
 * n_classes > 2: n_classes rows (multinomial). coef rows are d weights then
 * the intercept. */
typedef struct bmfm_logreg {
    int64_t d;
    int n_classes, n_rows;
    double *coef;   /* n_rows x (d + 1) */
    double loss;    /* objective at the solution */
    double grad_max;/* max |gradient| at the solution */
    int n_iter;
    int converged;  /* 0 when max_iter was hit */
} bmfm_logreg;

bmfm_status bmfm_logreg_fit(const double *X, int64_t n, int64_t d, const int32_t *y, int n_classes,
                            double C, int max_iter, double tol, bmfm_logreg *out);
void bmfm_logreg_predict(const bmfm_logreg *m, const double *X, int64_t n, int32_t *pred);
void bmfm_logreg_free(bmfm_logreg *m);

/* kNN vote: predict each of the nq query rows from the nt training rows. */
bmfm_status bmfm_knn_classify(const double *train, int64_t nt, const int32_t *ytrain,
                              const double *query, int64_t nq, int64_t d, int n_classes, int k,
                              int32_t *pred);

/* sklearn f1_score(average="macro") over the union of true and predicted
 * classes; *accuracy (optional) = fraction correct. */
double bmfm_f1_macro(const int32_t *y, const int32_t *pred, int64_t n, int n_classes,
                     double *accuracy);

#endif
