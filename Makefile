# bmfm - build, setup, tests.
#
#   make setup   install every Debian package the project needs (idempotent)
#   make         build ./bmfm, ./libbmfm.a and ./libbmfm.so
#   make test    build and run the whole test suite (ends with "N passed, N failed")
#   make asan    the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench   benchmarks (full-size configurations; slow)
#
# Sources are found by wildcard: a new src/<layer>/<module>.c, cli/<cmd>.c or
# tests/test_<module>.c is picked up without editing this file.

BUILD   ?= build
PKGS    := hdf5 openblas igraph libcjson yaml-0.1 zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
# -fno-math-errno: nothing reads errno after a math call, and without it gcc
# keeps every sqrt scalar (a branch to the errno path), e.g. the silhouette's
# 56M distances; IEEE sqrt is correctly rounded, so results are unchanged.
CFLAGS  += -Itests/util -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
           -fPIC -fopenmp -fno-math-errno -D_GNU_SOURCE -Iinclude -Isrc $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS += -fopenmp $(EXTRA_LDFLAGS)
LDLIBS  += $(PKG_LIBS) -lmvec -lm -lpthread
# The bmfm executable links HDF5 and igraph statically: their shared builds
# pull in ~45 more shared libraries (curl, gnutls, krb5, ICU, libxml2, ...)
# whose loading and relocation took 20-30 ms at the start of every command on
# the 2-core VM (`bmfm --version`: 0.03-0.04 s -> 0.01 s). Only the archive
# members bmfm calls are linked; those need szip (libaec) and ARPACK.
BIN_LDLIBS := $(filter-out -lhdf5 -ligraph,$(PKG_LIBS)) -Wl,-Bstatic -lhdf5 -ligraph -Wl,-Bdynamic \
              -lsz -larpack -lmvec -lm -lpthread

LIB_SRC  := $(sort $(wildcard src/*/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_UTIL_SRC := $(sort $(wildcard tests/util/*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_UTIL_OBJ := $(TEST_UTIL_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

ifeq ($(BUILD),build)
OUT_PREFIX :=
else
OUT_PREFIX := $(BUILD)/
endif
BIN      := $(OUT_PREFIX)bmfm
STATIC   := $(OUT_PREFIX)libbmfm.a
SHARED   := $(OUT_PREFIX)libbmfm.so

.PHONY: all setup test asan bench clean tests-build
.SECONDARY:
all: $(BIN) $(STATIC) $(SHARED)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN): $(CLI_OBJ) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(STATIC) $(BIN_LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_UTIL_OBJ) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_UTIL_OBJ) $(STATIC) $(LDLIBS) -lcmocka

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

tests-build: all $(TEST_BIN)

test: tests-build
	@BMFM_BIN=$(abspath $(BIN)) BMFM_BUILD=$(abspath $(BUILD)) BMFM_LIB=$(abspath $(SHARED)) \
	    bash tests/run_tests.sh $(TEST_BIN)

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    EXTRA_LDFLAGS="-fsanitize=address,undefined" test

bench: all $(BENCH_BIN)
	bash bench/run_bench.sh

setup:
	@bash scripts/setup.sh

clean:
	rm -rf build build-asan bmfm libbmfm.a libbmfm.so

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d) $(TEST_UTIL_OBJ:.o=.d)
