#!/usr/bin/env bash
# eval_bench.sh - `bmfm baseline pca` + `bmfm eval --probe` against the Python
# stack doing the same work (bench/eval_python.py), in the same run, with
# wall time and peak RSS (GNU time) of each. Inputs (made here, under build/bench/):
#   kang8k.h5ad   harmony Kang ctrl/stim 2000 x 9015 raw counts, 4 binomially
#                 thinned replicas -> 8000 x 9015 (baseline PCA, 3000 HVGs)
#   pbmc8k.h5ad   scvijl pbmc8k 7480 x 200 raw counts (the largest shared file),
#                 cell_type labels, a deterministic pseudo batch (timing only)
# usage: bench/eval_bench.sh [THREADS]   (default 2; run with nice on shared machines)
# Then, when build/bench/eval_steps is built, every metric function alone on
# one thread (same pbmc8k embedding).
set -eu
cd "$(dirname "$0")/.."
export BMFM_SHARED_DATA="${BMFM_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
PY=/usr/bin/python3
THREADS="${1:-2}"
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
B=build/bench
mkdir -p $B
[ -f $B/kang8k.h5ad ] || $PY bench/eval_python.py make-kang $B/kang8k.h5ad 4
[ -f $B/pbmc8k.h5ad ] || $PY bench/eval_python.py make-pbmc8k $B/pbmc8k.h5ad
measure() { # label, command...: prints wall seconds and peak RSS
    local label=$1
    shift
    /usr/bin/time -f "$label: wall %e s, cpu %U s user + %S s sys, peak RSS %M KB" "$@" > $B/last.out 2> $B/last.err || { cat $B/last.err; exit 1; }
    grep -E "^(step|total|values)|obsm|^embedding|^X_pca" $B/last.out || true
    grep -E "^bmfm eval: " $B/last.err | sed "s/^/  /" || true
    grep -E "wall .* peak RSS" $B/last.err
}
echo "# eval bench, $(date -u +%Y-%m-%dT%H:%MZ), threads $THREADS, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "## baseline PCA: kang8k 8000 x 9015 counts, 3000 HVGs, 50 PCs"
measure "bmfm baseline pca" ./bmfm baseline pca $B/kang8k.h5ad -o $B/kang8k_pca.h5ad --threads $THREADS -q
measure "python baseline" $PY bench/eval_python.py baseline $B/kang8k.h5ad 3000
echo "## eval suite + probe: pbmc8k 7480 cells, X_pca (50 PCs of 200 genes), label cell_type, pseudo batch"
./bmfm baseline pca $B/pbmc8k.h5ad -o $B/pbmc8k_pca.h5ad -q --threads $THREADS > /dev/null
measure "bmfm eval" ./bmfm eval $B/pbmc8k_pca.h5ad --embedding X_pca --label cell_type --batch pseudo_batch --probe --threads $THREADS
measure "python suite" $PY bench/eval_python.py suite $B/pbmc8k_pca.h5ad X_pca cell_type pseudo_batch
# each metric's own single-threaded time on the same embedding (the fixture
# is the pbmc8k X_pca, codes of cell_type and pseudo_batch)
if [ -x build/bench/eval_steps ]; then
    echo "## steps, one thread, best of 3 (build/bench/eval_steps $B/pbmc8k)"
    $PY -c "
import anndata, numpy as np, sys
a = anndata.read_h5ad(sys.argv[1])
np.asarray(a.obsm['X_pca'], np.float32).tofile(sys.argv[2] + '_clean_X.f32')
for col, suf in (('cell_type', 'lab'), ('pseudo_batch', 'bat')):
    a.obs[col].astype('category').cat.codes.values.astype(np.int32).tofile(sys.argv[2] + '_clean_' + suf + '.i32')
" $B/pbmc8k_pca.h5ad $B/pbmc8k
    OMP_NUM_THREADS=1 build/bench/eval_steps $B/pbmc8k 3
else
    echo "(build/bench/eval_steps not built: make build/bench/eval_steps for the per-step times)"
fi
