#!/usr/bin/env bash
# Run the benchmarks (full-size configurations; minutes). Each program prints
# its own figures and ratios measured in this run; copy them into
# bench/RESULTS.md with the date and machine.
set -u
cd "$(dirname "$0")/.."
export BMFM_SHARED_DATA="${BMFM_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
echo "# bmfm benchmarks, $(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
status=0
for b in build/bench/*; do
    [ -x "$b" ] || continue
    case "$b" in *.o|*.d) continue ;; esac
    echo "## $(basename "$b")"
    "$b" || status=1
done
for s in bench/*.sh; do
    [ "$(basename "$s")" = run_bench.sh ] && continue
    echo "## $(basename "$s")"
    bash "$s" || status=1
done
exit $status
