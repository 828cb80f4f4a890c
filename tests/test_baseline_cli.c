/* test_baseline_cli.c - `bmfm baseline pca` end to end on real shared files:
 * raw counts and already log-normalised input; the output is read by python
 * anndata and equals the numpy/sklearn oracle (tests/ref/pca_oracle.py) up to
 * sign; bad options and inputs exit 2 without a partial file. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *KANG = "h5ad/harmony_kang_pbmc_ctrl_stim_2000.h5ad";
static const char *SYMPHONY = "h5ad/symphony_pbmcs_3tech_1200.h5ad";

/* Run `bmfm baseline pca FILE -o OUT --key KEY ARGS`, expect `said` on its
 * output, then the oracle with ORACLE_ARGS and the anndata read-back check. */
static void check_baseline(const char *file, const char *name, const char *key, const char *args,
                           const char *oracle_args, const char *said) {
    char out[512], prefix[600], *log = NULL;
    snprintf(out, sizeof out, "%s", tu_scratch(name));
    snprintf(prefix, sizeof prefix, "%s.oracle", out);
    int rc = tu_capture(&log, "%s baseline pca %s -o %s --key %s %s", tu_bmfm_bin(), tu_data(file), out, key, args);
    print_message("%s", log);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(log, said));
    free(log);
    assert_int_equal(tu_python("pca_oracle.py %s %s %s", tu_data(file), prefix, oracle_args), 0);
    assert_int_equal(tu_python("eval_cli_check.py %s %s %s", out, key, prefix), 0);
}

static void test_baseline_counts_matches_oracle_and_anndata_reads_it(void **state) {
    (void)state;
    check_baseline(KANG, "kang_pca.h5ad", "X_pca", "--n-hvg 2000 --n-pcs 30", "--n-hvg 2000 --n-comps 30",
                   "normalize_total");
}

static void test_baseline_log_input_skips_normalisation(void **state) {
    (void)state;
    check_baseline(SYMPHONY, "sym_pca.h5ad", "X_base", "", "", "already log-normalised");
}

static void test_baseline_bad_options(void **state) {
    (void)state;
    char *log = NULL;
    const char *out = tu_scratch("never.h5ad");
    assert_int_equal(tu_capture(&log, "%s baseline pca %s -o %s --flavor bogus", tu_bmfm_bin(), tu_data(KANG), out), 2);
    free(log);
    assert_int_equal(tu_capture(&log, "%s baseline pca %s -o %s --flavor seurat_v3", tu_bmfm_bin(), tu_data(KANG), out), 2);
    assert_non_null(strstr(log, "not implemented"));
    free(log);
    assert_int_equal(tu_capture(&log, "%s baseline pca /nonexistent.h5ad -o %s", tu_bmfm_bin(), out), 2);
    free(log);
    assert_int_equal(tu_capture(&log, "%s baseline pca %s -o %s --matrix layers/none", tu_bmfm_bin(), tu_data(KANG), out), 2);
    free(log);
    FILE *f = fopen(out, "r");
    assert_null(f); /* no partial output */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_baseline_counts_matches_oracle_and_anndata_reads_it),
        cmocka_unit_test(test_baseline_log_input_skips_normalisation),
        cmocka_unit_test(test_baseline_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
