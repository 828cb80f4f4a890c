#!/usr/bin/env bash
# Run the benchmarks with the arguments bench/RESULTS.md was measured with
# (full-size configurations; tens of minutes on 2 cores). Each program prints
# its own figures and the ratios measured in this run; copy them into
# bench/RESULTS.md with the date, the machine and the load.
#   THREADS (default 1) threads for every engine.
# bench/eval_metrics (metric engine alone) needs the fixtures that
# tests/test_eval_metrics writes; run it by hand as RESULTS.md shows.
set -u
cd "$(dirname "$0")/.."
export BMFM_SHARED_DATA="${BMFM_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
D="$BMFM_SHARED_DATA"
T="${THREADS:-1}"
echo "# bmfm benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
run() {
    echo "## $*"
    "$@" || status=1
}
mkdir -p build/bench_data
big=build/bench_data/kang_100k.h5ad
[ -f "$big" ] || /usr/bin/python3 bench/make_big_h5ad.py "$D/h5ad/harmony_kang_pbmc_ctrl_stim_2000.h5ad" "$big" 100000
run build/bench/h5ad_stream "$D/h5ad/harmony_kang_pbmc_ctrl_stim_2000.h5ad" X 1024
run build/bench/h5ad_stream "$big" X 1024
run build/bench/nn_kernels "$T" 1
run build/bench/encoder "$T" 3
run env BMFM_BENCH_THREADS="$T" bash bench/infer.sh
run bash bench/eval_bench.sh "$T"
exit $status
