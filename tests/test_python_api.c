/* test_python_api.c - the Python module (python/bmfm, ctypes over
 * libbmfm.so) run with Debian's /usr/bin/python3: bmfm.inference on an
 * AnnData in memory against the PyTorch reference embeddings and logits
 * (tests/ref/infer_oracle.py pyapi). */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Under `make asan` libbmfm.so is instrumented too, and python must load the
 * ASan runtime first (LD_PRELOAD); python itself leaks by design, so leak
 * checking is off for that child. Empty outside sanitizer builds. */
extern void __asan_init(void) __attribute__((weak));
static void sanitizer_env(char *buf, size_t n) {
    buf[0] = '\0';
    if (!__asan_init) return;
    char *path = NULL;
    if (tu_capture(&path, "gcc -print-file-name=libasan.so") == 0 && path) {
        path[strcspn(path, "\n")] = '\0';
        snprintf(buf, n, "LD_PRELOAD=%s ASAN_OPTIONS=detect_leaks=0 ", path);
    }
    free(path);
}

static void test_inference_matches_reference(void **state) {
    char dir[512], m[600], e[600], lib[1024];
    snprintf(dir, sizeof dir, "%s", tu_scratch(""));
    snprintf(m, sizeof m, "%sm47", dir);
    snprintf(e, sizeof e, "%se47", dir);
    const char *z = tu_data("h5ad/bmfm_cellxgene_placenta_220.h5ad");
    assert_int_equal(tu_python("infer_oracle.py make %s %s %s 47m", tu_data("genes/bmfm_protein_coding_genes.json"),
                               z, m),
                     0);
    assert_int_equal(tu_python("infer_oracle.py embed %s %s %s 160", m, z, e), 0);
    const char *env = getenv("BMFM_LIB");
    if (env) snprintf(lib, sizeof lib, "%s", env);
    else if (!getcwd(lib, sizeof lib - 16)) fail();
    else snprintf(lib + strlen(lib), sizeof lib - strlen(lib), "/libbmfm.so");
    char san[1200];
    sanitizer_env(san, sizeof san);
    char *log = NULL;
    int rc = tu_capture(&log, "%sPYTHONPATH=python BMFM_LIB=%s /usr/bin/python3 tests/ref/infer_oracle.py pyapi %s %s %s 160",
                        san, lib, m, z, e);
    print_message("%s", log);
    free(log);
    assert_int_equal(rc, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_inference_matches_reference)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
