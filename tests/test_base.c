/* test_base.c - errors, RNG determinism, string map, atomic files, CPU placement. */
#include "test_util.h"

#include "base/alloc.h"
#include "base/cpu_place.h"
#include "base/error.h"
#include "base/fileutil.h"
#include "base/rng.h"
#include "base/strmap.h"

#include <pthread.h>
#ifdef __linux__
#include <sched.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_error_message_and_prefix(void **state) {
    (void)state;
    bmfm_status s = bmfm_error_set(BMFM_E_INPUT, "/X/indptr has %d entries, expected %d", 9, 11);
    assert_int_equal(s, BMFM_E_INPUT);
    bmfm_error_prefix(BMFM_E_INPUT, "cells.h5ad");
    assert_string_equal(bmfm_error_message(), "cells.h5ad: /X/indptr has 9 entries, expected 11");
    assert_int_equal(bmfm_error_code(), BMFM_E_INPUT);
    bmfm_error_clear();
    assert_string_equal(bmfm_error_message(), "");
}

static void *fail_in_thread(void *arg) {
    bmfm_error_clear();
    bmfm_status st = bmfm_error_set(BMFM_E_NOMEM, "probe: fold %d: 12 bytes", 3);
    bmfm_error_save(st, arg);
    return NULL;
}

/* A message set on another thread reaches the caller only through save /
 * restore; a long prefix is cut at the buffer's end, not overflowed. */
static void test_error_across_threads(void **state) {
    (void)state;
    bmfm_error_clear();
    bmfm_error_saved saved;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fail_in_thread, &saved), 0);
    pthread_join(t, NULL);
    assert_string_equal(bmfm_error_message(), ""); /* this thread's own message */
    assert_int_equal(bmfm_error_restore(&saved), BMFM_E_NOMEM);
    assert_string_equal(bmfm_error_message(), "probe: fold 3: 12 bytes");
    assert_int_equal(bmfm_error_code(), BMFM_E_NOMEM);
    bmfm_error_saved none = {BMFM_E_IO, ""}, ok;
    assert_int_equal(bmfm_error_restore(&none), BMFM_E_IO);
    assert_string_equal(bmfm_error_message(), "i/o error");
    bmfm_error_save(BMFM_OK, &ok);
    assert_int_equal(bmfm_error_restore(&ok), BMFM_OK);
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    bmfm_error_set(BMFM_E_INPUT, "tail");
    bmfm_error_prefix(BMFM_E_INPUT, "%s", big);
    assert_int_equal(strlen(bmfm_error_message()), BMFM_ERROR_MAX - 1);
    bmfm_error_set(BMFM_E_INPUT, "%s", big + 1900); /* 1099 x, cut to 1023 */
    bmfm_error_prefix(BMFM_E_INPUT, "ab");
    assert_int_equal(strlen(bmfm_error_message()), BMFM_ERROR_MAX - 1);
    assert_memory_equal(bmfm_error_message(), "ab: xxx", 7);
    bmfm_error_clear();
}

static void test_rng_streams_are_deterministic_and_distinct(void **state) {
    (void)state;
    bmfm_rng a, b, c;
    bmfm_rng_seed(&a, 42, 7);
    bmfm_rng_seed(&b, 42, 7);
    bmfm_rng_seed(&c, 42, 8);
    int same_c = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = bmfm_rng_u64(&a), y = bmfm_rng_u64(&b), z = bmfm_rng_u64(&c);
        assert_true(x == y);
        same_c += x == z;
    }
    assert_true(same_c == 0);
    /* uniform mean and normal variance are roughly right */
    double sum = 0, sq = 0;
    for (int i = 0; i < 100000; i++) sum += bmfm_rng_uniform(&a);
    assert_true(sum / 100000 > 0.49 && sum / 100000 < 0.51);
    sum = 0;
    for (int i = 0; i < 100000; i++) {
        double g = bmfm_rng_normal(&a);
        sum += g;
        sq += g * g;
    }
    assert_true(sq / 100000 > 0.98 && sq / 100000 < 1.02);
    int32_t perm[50];
    for (int i = 0; i < 50; i++) perm[i] = i;
    bmfm_rng_shuffle_i32(&a, perm, 50);
    int seen[50] = {0};
    for (int i = 0; i < 50; i++) seen[perm[i]]++;
    for (int i = 0; i < 50; i++) assert_int_equal(seen[i], 1);
}

static void test_strmap_put_get_duplicates_and_growth(void **state) {
    (void)state;
    bmfm_strmap m;
    assert_int_equal(bmfm_strmap_init(&m, 4), 0);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "GENE%d", i);
        assert_int_equal(bmfm_strmap_put(&m, key, i, NULL), 1);
    }
    int64_t existing = -1, v = -1;
    assert_int_equal(bmfm_strmap_put(&m, "GENE17", 99, &existing), 0);
    assert_int_equal(existing, 17);
    for (int i = 0; i < 5000; i += 37) {
        snprintf(key, sizeof key, "GENE%d", i);
        assert_int_equal(bmfm_strmap_get(&m, key, &v), 1);
        assert_int_equal(v, i);
    }
    assert_int_equal(bmfm_strmap_get(&m, "gene17", &v), 0);
    assert_int_equal((int)m.count, 5000);
    bmfm_strmap_free(&m);
}

static void test_atomic_file_commit_and_abort(void **state) {
    (void)state;
    const char *final_path = tu_scratch("atomic.txt");
    remove(final_path);
    char tmp[4096];
    assert_int_equal(bmfm_atomic_tmp_path(final_path, tmp, sizeof tmp), BMFM_OK);
    FILE *f = fopen(tmp, "w");
    fputs("hello", f);
    fclose(f);
    assert_false(bmfm_file_exists(final_path));
    assert_int_equal(bmfm_atomic_commit(tmp, final_path), BMFM_OK);
    assert_false(bmfm_file_exists(tmp));
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(bmfm_read_file(final_path, &data, &len), BMFM_OK);
    assert_string_equal(data, "hello");
    free(data);
    /* unwritable directory is refused before any work */
    assert_int_not_equal(bmfm_atomic_tmp_path("/nonexistent-dir/x.h5ad", tmp, sizeof tmp), BMFM_OK);
    assert_non_null(strstr(bmfm_error_message(), "/nonexistent-dir"));
    /* reading a gzip file through the same call */
    assert_int_equal(bmfm_read_file(tu_data("genes/bmfm_protein_coding_gene_mapping_uppercase_hgnc_2024_08_23.json.gz"), &data, &len), BMFM_OK);
    assert_true(len == 1444684);
    assert_int_equal(data[0], '{');
    free(data);
}

/* The placement helpers move threads but must leave every thread's affinity
 * mask as it was (the user's taskset or cgroup mask), also for a mask of one
 * CPU and for a CPU number outside the mask. */
static void test_cpu_place_keeps_masks(void **state) {
    (void)state;
#ifdef __linux__
    cpu_set_t before, after;
    assert_int_equal(sched_getaffinity(0, sizeof before, &before), 0);
    int masks_kept = 1;
    bmfm_cpu_spread_omp_threads();
#pragma omp parallel
    {
        cpu_set_t mine;
        if (sched_getaffinity(0, sizeof mine, &mine) != 0 || !CPU_EQUAL(&mine, &before)) {
#pragma omp atomic write
            masks_kept = 0;
        }
    }
    assert_true(masks_kept);
    bmfm_cpu_move_next(bmfm_cpu_current(), 0);
    bmfm_cpu_move_next(CPU_SETSIZE - 1, 3);
    bmfm_cpu_move_next(-1, 0);
    assert_int_equal(sched_getaffinity(0, sizeof after, &after), 0);
    assert_true(CPU_EQUAL(&after, &before));
    int first = -1; /* one allowed CPU only: nowhere to move, still that mask */
    for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
        if (CPU_ISSET(c, &before)) first = c;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
    bmfm_cpu_move_next(first, 0);
    assert_int_equal(sched_getaffinity(0, sizeof after, &after), 0);
    assert_true(CPU_EQUAL(&after, &one));
    assert_int_equal(bmfm_cpu_current(), first);
    assert_int_equal(sched_setaffinity(0, sizeof before, &before), 0);
#else
    skip();
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_message_and_prefix),
        cmocka_unit_test(test_error_across_threads),
        cmocka_unit_test(test_rng_streams_are_deterministic_and_distinct),
        cmocka_unit_test(test_strmap_put_get_duplicates_and_growth),
        cmocka_unit_test(test_atomic_file_commit_and_abort),
        cmocka_unit_test(test_cpu_place_keeps_masks),
    };
    return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
