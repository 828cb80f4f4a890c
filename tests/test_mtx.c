/* test_mtx.c - the 10x matrix-directory backend: rows identical to the .h5ad
 * the directory was made from (scipy.io.mmwrite oracle), gzipped and plain,
 * features.tsv and legacy genes.tsv; bad files give exit 2 and the line. */
#include "test_util.h"

#include "io/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


/* Every row, name and var column of the 10x directory equals the h5ad. */
static void compare_to_h5ad(const char *dir, const char *h5ad, int legacy) {
    bmfm_dataset *a = NULL, *b = NULL;
    assert_int_equal(bmfm_dataset_open(dir, NULL, &a), BMFM_OK);
    assert_int_equal(bmfm_dataset_open(h5ad, NULL, &b), BMFM_OK);
    assert_int_equal(bmfm_dataset_kind(a), BMFM_SOURCE_10X);
    assert_int_equal(bmfm_dataset_info(a)->encoding, BMFM_X_MTX);
    int64_t n = bmfm_dataset_n_obs(b), g = bmfm_dataset_n_vars(b);
    assert_int_equal(bmfm_dataset_n_obs(a), n);
    assert_int_equal(bmfm_dataset_n_vars(a), g);
    const char *const *na, *const *nb;
    assert_int_equal(bmfm_dataset_obs_names(a, &na), BMFM_OK);
    assert_int_equal(bmfm_dataset_obs_names(b, &nb), BMFM_OK);
    for (int64_t i = 0; i < n; i++) assert_string_equal(na[i], nb[i]);
    assert_int_equal(bmfm_dataset_var_names(a, &na), BMFM_OK);
    assert_int_equal(bmfm_dataset_var_names(b, &nb), BMFM_OK);
    for (int64_t i = 0; i < g; i++) assert_string_equal(na[i], nb[i]);
    const char *const *cols;
    int64_t nc;
    assert_int_equal(bmfm_dataset_var_columns(a, &cols, &nc), BMFM_OK);
    assert_int_equal(nc, legacy ? 1 : 2);
    assert_string_equal(cols[0], "gene_ids");
    bmfm_column c;
    assert_int_equal(bmfm_dataset_var_column(a, "gene_ids", &c), BMFM_OK);
    assert_int_equal(c.n, g);
    assert_string_equal(c.strings[0], "ENSG00000000000");
    bmfm_column_free(&c);
    assert_int_equal(bmfm_dataset_obs_columns(a, &cols, &nc), BMFM_OK);
    assert_int_equal(nc, 0);
    /* rows in uneven chunks */
    bmfm_csr ra = {0}, rb = {0};
    int64_t nnz = 0;
    for (int64_t s = 0; s < n; s += 37) {
        int64_t e = s + 37 < n ? s + 37 : n;
        assert_int_equal(bmfm_dataset_read_rows(a, s, e, &ra), BMFM_OK);
        assert_int_equal(bmfm_dataset_read_rows(b, s, e, &rb), BMFM_OK);
        assert_int_equal(ra.nrows, e - s);
        assert_int_equal(ra.ncols, g);
        for (int64_t i = 0; i <= e - s; i++) assert_int_equal(ra.indptr[i], rb.indptr[i]);
        int64_t k = ra.indptr[e - s];
        assert_memory_equal(ra.indices, rb.indices, (size_t)k * sizeof *ra.indices);
        assert_memory_equal(ra.data, rb.data, (size_t)k * sizeof *ra.data);
        nnz += k;
    }
    assert_int_equal(nnz, bmfm_dataset_info(a)->nnz);
    /* a single row in the middle */
    assert_int_equal(bmfm_dataset_read_rows(a, n / 2, n / 2 + 1, &ra), BMFM_OK);
    assert_int_equal(bmfm_dataset_read_rows(b, n / 2, n / 2 + 1, &rb), BMFM_OK);
    assert_int_equal(ra.indptr[1], rb.indptr[1]);
    assert_int_not_equal(bmfm_dataset_read_rows(a, n - 1, n + 1, &ra), BMFM_OK);
    bmfm_csr_free(&ra);
    bmfm_csr_free(&rb);
    bmfm_dataset_close(a);
    bmfm_dataset_close(b);
}

static void test_10x_gz_rows_equal_h5ad(void **state) {
    (void)state;
    const char *h5 = tu_data("h5ad/bmfm_zheng68k_165.h5ad");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_scratch("zheng_10x"));
    assert_int_equal(tu_python("make_10x.py %s %s", h5, dir), 0);
    compare_to_h5ad(dir, h5, 0);
    bmfm_dataset *a = NULL;
    assert_int_equal(bmfm_dataset_open(dir, NULL, &a), BMFM_OK);
    assert_string_equal(bmfm_dataset_info(a)->dtype, "integer");
    assert_string_equal(bmfm_dataset_info(a)->location, "matrix.mtx.gz");
    bmfm_dataset_close(a);
    /* the CLI reads the directory the same way */
    char *out = NULL;
    assert_int_equal(tu_capture(&out, "%s inspect --json %s 2>/dev/null", tu_bmfm_bin(), dir), 0);
    assert_non_null(strstr(out, "\"source\":\t\"10x\""));
    assert_non_null(strstr(out, "\"n_obs\":\t165,"));
    assert_non_null(strstr(out, "\"guess\":\t\"raw\""));
    free(out);
}

/* log-scale real values, uncompressed files, legacy genes.tsv */
static void test_10x_plain_legacy_real_values(void **state) {
    (void)state;
    const char *h5 = tu_data("h5ad/scclassify_pancreas_wang.h5ad");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_scratch("wang_10x"));
    assert_int_equal(tu_python("make_10x.py %s %s --plain --legacy", h5, dir), 0);
    compare_to_h5ad(dir, h5, 1);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A 3-gene x 2-cell directory with the given matrix text; returns its path. */
static const char *make_dir(const char *name, const char *mtx) {
    static char dir[4096];
    char p[4200];
    snprintf(dir, sizeof dir, "%s", tu_scratch(name));
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/matrix.mtx", dir);
    write_file(p, mtx);
    snprintf(p, sizeof p, "%s/features.tsv", dir);
    write_file(p, "ENSG1\tA\tGene Expression\nENSG2\tB\tGene Expression\nENSG3\tC\tGene Expression\n");
    snprintf(p, sizeof p, "%s/barcodes.tsv", dir);
    write_file(p, "AAAC-1\nAAAG-1\n");
    return dir;
}

#define HDR "%%MatrixMarket matrix coordinate integer general\n%metadata\n"

static void test_small_transpose_and_zeros(void **state) {
    (void)state;
    /* genes x cells; entries not sorted; an explicit zero is dropped */
    const char *dir = make_dir("ok", HDR "3 2 4\n3 1 5\n1 1 2\n2 2 0\n2 2 7\n");
    /* the last line must not be needed twice: 2 2 0 then 2 2 7 would be a duplicate only if both stored */
    bmfm_dataset *ds = NULL;
    assert_int_equal(bmfm_dataset_open(dir, NULL, &ds), BMFM_OK);
    bmfm_csr r = {0};
    assert_int_equal(bmfm_dataset_read_rows(ds, 0, 2, &r), BMFM_OK);
    assert_int_equal(r.indptr[1], 2);
    assert_int_equal(r.indptr[2], 3);
    assert_int_equal(r.indices[0], 0);
    assert_int_equal(r.indices[1], 2);
    assert_true(r.data[0] == 2.0f && r.data[1] == 5.0f);
    assert_int_equal(r.indices[2], 1);
    assert_true(r.data[2] == 7.0f);
    assert_int_equal(bmfm_dataset_info(ds)->nnz, 3);
    bmfm_csr_free(&r);
    bmfm_dataset_close(ds);
}

/* bad matrix text -> open fails with BMFM_E_INPUT naming the line, and the
 * CLI exits 2 with the same message */
static void expect_bad(const char *name, const char *mtx, const char *needle) {
    const char *dir = make_dir(name, mtx);
    bmfm_dataset *ds = NULL;
    assert_int_equal(bmfm_dataset_open(dir, NULL, &ds), BMFM_E_INPUT);
    assert_null(ds);
    if (!strstr(bmfm_error_message(), needle)) fail_msg("'%s' lacks '%s'", bmfm_error_message(), needle);
    char *out = NULL;
    int rc = tu_capture(&out, "%s inspect %s", tu_bmfm_bin(), dir);
    assert_int_equal(rc, 2);
    if (!strstr(out, needle)) fail_msg("CLI output '%s' lacks '%s'", out, needle);
    assert_non_null(strstr(out, "matrix.mtx"));
    free(out);
}

static void test_bad_matrix_files(void **state) {
    (void)state;
    expect_bad("hdr", "%%MatrixMarket matrix array real general\n3 2\n1\n2\n3\n4\n5\n6\n", "line 1");
    expect_bad("hdr2", "hello\n3 2 1\n1 1 1\n", "line 1: not a MatrixMarket header");
    expect_bad("sym", "%%MatrixMarket matrix coordinate real symmetric\n3 2 1\n1 1 1\n", "line 1: symmetry");
    expect_bad("size", HDR "3 x 1\n1 1 1\n", "line 3: expected the size line");
    expect_bad("few", HDR "3 2 3\n1 1 1\n2 2 1\n", "line 6: file ends after 2 of the 3 declared entries");
    expect_bad("many", HDR "3 2 1\n1 1 1\n2 2 1\n", "line 5: more entries than the 1 declared");
    expect_bad("range", HDR "3 2 2\n1 1 1\n4 2 1\n", "line 5: index (4, 2) out of range");
    expect_bad("range0", HDR "3 2 1\n0 1 1\n", "line 4: index (0, 1) out of range");
    expect_bad("nonnum", HDR "3 2 2\n1 1 1\n2 2 abc\n", "line 5: value is not a number");
    expect_bad("nan", HDR "3 2 1\n1 1 nan\n", "line 4: value is not finite");
    expect_bad("dup", HDR "3 2 2\n2 1 1\n1 1 1\n2 1 3\n", "more entries");
    expect_bad("dup2", HDR "3 2 3\n2 1 1\n1 1 1\n2 1 3\n", "appears twice");
}

static void test_bad_tsv_and_truncated_gz(void **state) {
    (void)state;
    char p[4200];
    /* too few barcodes */
    const char *dir = make_dir("bc", HDR "3 2 1\n1 1 1\n");
    snprintf(p, sizeof p, "%s/barcodes.tsv", dir);
    write_file(p, "AAAC-1\n");
    bmfm_dataset *ds = NULL;
    assert_int_equal(bmfm_dataset_open(dir, NULL, &ds), BMFM_E_INPUT);
    assert_non_null(strstr(bmfm_error_message(), "barcodes.tsv: line 2: has 1 lines, the matrix has 2"));
    /* too many features */
    dir = make_dir("feat", HDR "3 2 1\n1 1 1\n");
    snprintf(p, sizeof p, "%s/features.tsv", dir);
    write_file(p, "E1\tA\tG\nE2\tB\tG\nE3\tC\tG\nE4\tD\tG\n");
    assert_int_equal(bmfm_dataset_open(dir, NULL, &ds), BMFM_E_INPUT);
    assert_non_null(strstr(bmfm_error_message(), "features.tsv: line 4: more lines than the 3"));
    /* missing matrix */
    dir = make_dir("nomtx", HDR "3 2 1\n1 1 1\n");
    snprintf(p, sizeof p, "%s/matrix.mtx", dir);
    remove(p);
    assert_int_equal(bmfm_dataset_open(dir, NULL, &ds), BMFM_E_INPUT);
    assert_non_null(strstr(bmfm_error_message(), "no matrix.mtx"));
    /* a gzipped matrix cut in the middle */
    char big[1 << 16];
    int n = snprintf(big, sizeof big, "%s3 2000 6000\n", HDR);
    for (int c = 1; c <= 2000; c++)
        for (int g = 1; g <= 3; g++) n += snprintf(big + n, sizeof big - (size_t)n, "%d %d %d\n", g, c, (c * 7 + g) % 13 + 1);
    dir = make_dir("trunc", big);
    assert_int_equal(bmfm_dataset_open(dir, NULL, &ds), BMFM_E_INPUT); /* only 2 barcodes */
    snprintf(p, sizeof p, "%s/barcodes.tsv", dir);
    FILE *f = fopen(p, "w");
    for (int c = 0; c < 2000; c++) fprintf(f, "C%d\n", c);
    fclose(f);
    assert_int_equal(tu_system("gzip -f %s/matrix.mtx", dir), 0);
    assert_int_equal(bmfm_dataset_open(dir, NULL, &ds), BMFM_OK);
    bmfm_dataset_close(ds);
    assert_int_equal(tu_system("head -c 9000 %s/matrix.mtx.gz > %s/m && mv %s/m %s/matrix.mtx.gz", dir, dir, dir, dir), 0);
    assert_int_equal(bmfm_dataset_open(dir, NULL, &ds), BMFM_E_INPUT);
    if (!strstr(bmfm_error_message(), "matrix.mtx.gz: line ") || !strstr(bmfm_error_message(), "truncated"))
        fail_msg("%s", bmfm_error_message());
    char *out = NULL;
    assert_int_equal(tu_capture(&out, "%s inspect %s", tu_bmfm_bin(), dir), 2);
    assert_non_null(strstr(out, "truncated"));
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_10x_gz_rows_equal_h5ad),
        cmocka_unit_test(test_10x_plain_legacy_real_values),
        cmocka_unit_test(test_small_transpose_and_zeros),
        cmocka_unit_test(test_bad_matrix_files),
        cmocka_unit_test(test_bad_tsv_and_truncated_gz),
    };
    return cmocka_run_group_tests_name("mtx", tests, NULL, NULL);
}
