/* test_safetensors.c - the safetensors reader and writer: round trip,
 * metadata, files written by the Python oracle (numpy + json), BF16/F16
 * conversion, and corrupt headers giving errors that name the tensor. */
#include "test_util.h"

#include "base/error.h"
#include "io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_raw(const char *path, const char *header, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t hl = strlen(header);
    fwrite(&hl, 8, 1, f);
    fwrite(header, 1, hl, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void test_round_trip_and_metadata(void **state) {
    (void)state;
    float a[6] = {1, -2, 3.5f, 0, 1e-30f, 7}, b[3] = {0.25f, 0.5f, -1};
    bmfm_st_item items[2] = {{"model.a.weight", a, 2, {2, 3}}, {"model.b", b, 1, {3}}};
    const char *k[] = {"format"}, *v[] = {"pt"};
    const char *path = tu_scratch("rt.safetensors");
    assert_int_equal(bmfm_safetensors_write(path, items, 2, k, v, 1), BMFM_OK);
    bmfm_safetensors st;
    assert_int_equal(bmfm_safetensors_open(&st, path), BMFM_OK);
    assert_int_equal(st.n, 2);
    const bmfm_st_tensor *t = bmfm_safetensors_find(&st, "model.a.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[1], 3);
    float out[6];
    assert_int_equal(bmfm_safetensors_read_f32(&st, t, out), BMFM_OK);
    assert_memory_equal(out, a, sizeof a);
    assert_null(bmfm_safetensors_find(&st, "nope"));
    assert_non_null(strstr(st.metadata_json, "\"format\":\"pt\""));
    bmfm_safetensors_close(&st);
    /* the Python oracle's reader reads what we wrote */
    assert_int_equal(tu_system("/usr/bin/python3 -c \"import sys; sys.path.insert(0, 'tests/ref'); import llama_ref as r; "
                               "t = r.st_read('%s'); assert t['model.a.weight'].shape == (2, 3) and t['model.b'][2] == -1\"",
                               path),
                     0);
}

static void test_half_precision_converted(void **state) {
    (void)state;
    /* bf16 1.5 = 0x3FC0, -2 = 0xC000; f16 1.5 = 0x3E00, 2^-24 (subnormal) = 0x0001 */
    uint16_t data[4] = {0x3FC0, 0xC000, 0x3E00, 0x0001};
    const char *path = tu_scratch("half.safetensors");
    write_raw(path, "{\"x\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                    "\"y\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]}}", data, sizeof data);
    bmfm_safetensors st;
    assert_int_equal(bmfm_safetensors_open(&st, path), BMFM_OK);
    float o[2];
    assert_int_equal(bmfm_safetensors_read_f32(&st, bmfm_safetensors_find(&st, "x"), o), BMFM_OK);
    assert_true(o[0] == 1.5f && o[1] == -2.0f);
    assert_int_equal(bmfm_safetensors_read_f32(&st, bmfm_safetensors_find(&st, "y"), o), BMFM_OK);
    assert_true(o[0] == 1.5f && o[1] == 5.9604644775390625e-08f);
    bmfm_safetensors_close(&st);
}

static void expect_open_error(const char *header, size_t data_len, const char *needle) {
    static char zeros[64];
    const char *path = tu_scratch("bad.safetensors");
    write_raw(path, header, zeros, data_len);
    bmfm_safetensors st;
    assert_int_not_equal(bmfm_safetensors_open(&st, path), BMFM_OK);
    if (!strstr(bmfm_error_message(), needle)) fail_msg("message '%s' lacks '%s'", bmfm_error_message(), needle);
}

static void test_corrupt_headers(void **state) {
    (void)state;
    expect_open_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", 16, "tensor w: 12 bytes for 4");
    expect_open_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "tensor w: data_offsets");
    expect_open_error("{\"w\":{\"dtype\":\"Q4\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, "tensor w: unknown dtype Q4");
    expect_open_error("{\"w\":{\"shape\":[4],\"data_offsets\":[0,16]}}", 16, "tensor w: needs dtype");
    expect_open_error("not json", 0, "header is not a JSON object");
    const char *path = tu_scratch("short.safetensors");
    FILE *f = fopen(path, "wb");
    fputs("abc", f);
    fclose(f);
    bmfm_safetensors st;
    assert_int_not_equal(bmfm_safetensors_open(&st, path), BMFM_OK);
    assert_non_null(strstr(bmfm_error_message(), "too short"));
    /* a header length beyond the file */
    f = fopen(path, "wb");
    uint64_t big = 1 << 20;
    fwrite(&big, 8, 1, f);
    fputs("{}", f);
    fclose(f);
    assert_int_not_equal(bmfm_safetensors_open(&st, path), BMFM_OK);
    assert_non_null(strstr(bmfm_error_message(), "exceeds the file"));
    /* integer tensors open but are refused as floats, naming the tensor */
    int64_t iv[2] = {1, 2};
    write_raw(path, "{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", iv, sizeof iv);
    assert_int_equal(bmfm_safetensors_open(&st, path), BMFM_OK);
    float o[2];
    assert_int_not_equal(bmfm_safetensors_read_f32(&st, bmfm_safetensors_find(&st, "ids"), o), BMFM_OK);
    assert_non_null(strstr(bmfm_error_message(), "tensor ids has dtype I64"));
    bmfm_safetensors_close(&st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_metadata),
        cmocka_unit_test(test_half_precision_converted),
        cmocka_unit_test(test_corrupt_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
