#!/usr/bin/env bash
# Run every test binary given on the command line, each in its own process,
# and end with one summary line "N passed, N failed" counted over the cmocka
# test cases of all binaries. A binary that crashes counts as one failure.
set -u
passed=0
failed=0
failed_bins=()
export BMFM_SHARED_DATA="${BMFM_SHARED_DATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}"
# The shared data are inputs only: a test that writes into them (an in-place
# edit, an output path built from an input path) fails the run.
shared_state() { find "$BMFM_SHARED_DATA" -printf '%p %s %T@ %y\n' 2>/dev/null | sort | md5sum; }
shared_before=$(shared_state)
for bin in "$@"; do
    name=$(basename "$bin")
    log=$(mktemp)
    "$bin" >"$log" 2>&1
    rc=$?
    cat "$log"
    p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$log" | tail -1 | grep -oE '[0-9]+' | head -1)
    f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$log" | tail -1 | grep -oE '[0-9]+' | head -1)
    p=${p:-0}
    f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$f" -gt 0 ] && failed_bins+=("$name")
    rm -f "$log"
done
if [ "$(shared_state)" != "$shared_before" ]; then
    echo "the shared data under $BMFM_SHARED_DATA changed during the tests"
    failed=$((failed + 1))
    failed_bins+=("shared-data-guard")
fi
if [ ${#failed_bins[@]} -gt 0 ]; then
    echo "failing test programs: ${failed_bins[*]}"
fi
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
