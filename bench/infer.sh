#!/usr/bin/env bash
# infer.sh - `bmfm embed` throughput and peak RSS with the released 47M
# encoder configuration (C=384, 12 layers, 12 heads, 19,321-id vocabulary;
# random weights in the released layout, from tests/ref/infer_oracle.py),
# against the reference behaviour measured in the same run: PyTorch eager,
# every cell padded to max_length (tests/ref/infer_oracle.py bench_torch).
#
#   BMFM_BENCH_DATA   input (default: the largest shared data set by cells,
#                     scvijl_pbmc8k_7480x200.h5ad)
#   BMFM_BENCH_CELLS  cells embedded by bmfm (default 2000; 0 = all)
#   BMFM_BENCH_TORCH_CELLS  cells run through PyTorch (default 32)
#   BMFM_BENCH_MAXLEN max_length (default 1024, the reference default)
#   BMFM_BENCH_THREADS threads for both engines (default 1)
# OpenMP threads wait passively: on a shared, overloaded machine spinning
# barriers otherwise cost bmfm up to 5x (measured 3.9 vs 21 cells/s).
set -eu
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
cd "$(dirname "$0")/.."
DATA=${BMFM_BENCH_DATA:-${BMFM_SHARED_DATA:-../shared/data}/h5ad/scvijl_pbmc8k_7480x200.h5ad}
GENES=${BMFM_SHARED_DATA:-../shared/data}/genes/bmfm_protein_coding_genes.json
N=${BMFM_BENCH_CELLS:-2000}
NT=${BMFM_BENCH_TORCH_CELLS:-32}
L=${BMFM_BENCH_MAXLEN:-1024}
T=${BMFM_BENCH_THREADS:-1}
D=build/bench/infer
PY=/usr/bin/python3
mkdir -p "$D"
[ -f "$D/m47full/model.safetensors" ] ||
    $PY tests/ref/infer_oracle.py make "$GENES" "${BMFM_SHARED_DATA:-../shared/data}/h5ad/bmfm_zheng68k_165.h5ad" "$D/m47full" 47m 384 12 12
IN="$DATA"
if [ "$N" != 0 ]; then
    IN="$D/$(basename "$DATA" .h5ad)_first$N.h5ad"
    [ -f "$IN" ] || $PY tests/ref/infer_oracle.py subset "$DATA" "$IN" "$N"
fi
echo "input $(basename "$DATA") (first ${N/#0/all} cells), max_length $L, $T thread(s) each, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -v ./bmfm embed "$IN" -m "$D/m47full" -o "$D/out.h5ad" --max-length "$L" --threads "$T" -v 2>"$D/bmfm.log" || { cat "$D/bmfm.log"; exit 1; }
grep -E "cells ->|genes:" "$D/bmfm.log" | sed 's/^/bmfm: /' | sed 's/^bmfm: bmfm: /bmfm: /'
wall=$(grep "Elapsed (wall clock)" "$D/bmfm.log" | awk '{print $NF}')
rss=$(grep "Maximum resident set size" "$D/bmfm.log" | awk '{print $NF}')
cells=$($PY -c "import anndata as ad; print(ad.read_h5ad('$IN', backed='r').n_obs)")
secs=$($PY -c "w='$wall'.split(':'); print(sum(float(x)*60**i for i,x in enumerate(reversed(w))))")
bm=$($PY -c "print(f'{$cells/$secs:.2f}')")
echo "bmfm embed: $cells cells in ${secs}s wall (whole command: load, read, write) = $bm cells/s, peak RSS $((rss / 1024)) MiB"
# PyTorch with the setup its CPU tuning guides recommend (as bench/encoder):
# its OpenBLAS pool limited to T threads, jemalloc keeping freed pages
# (glibc malloc's fresh mmaps for large tensors cost it 2-5x on our VM)
TENV="OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T"
JE=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
[ -r "$JE" ] && [ -z "${BMFM_BENCH_TORCH_GLIBC_MALLOC:-}" ] &&
    TENV="$TENV LD_PRELOAD=$JE MALLOC_CONF=retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1"
echo "pytorch environment: $TENV"
tl=$(env $TENV $PY tests/ref/infer_oracle.py bench_torch "$D/m47full" "$IN" "$L" "$NT" 8 "$T")
echo "pytorch padded: $tl"
tc=$(echo "$tl" | sed 's/.*cells_per_s \([0-9.]*\).*/\1/')
$PY -c "print(f'ratio bmfm / pytorch padded = {$bm/$tc:.1f}x')"
