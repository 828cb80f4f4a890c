#!/bin/sh
# Train the bundled default model (models/default) with our own engine, exactly
# as shipped: configs/tiny_hs32.yaml (hidden 96, 4 blocks of 3 heads of 32),
# WCED on every raw-count shared file (at most 2,000 cells of each), HCE over the
# Cell Ontology types observed in the two files with CL ids, at weight 2.
#   scripts/train_default_model.sh [OUT_DIR]      (default models/default)
# Needs BMFM_SHARED_DATA (default /work/shared/data) and a built ./bmfm.
# Deterministic for the seed and step count, except that --max-minutes 22 stops
# the run early on a slow machine (the shipped run: see docs/training.md).
# The log goes to OUT_DIR.log.
set -eu
D=${BMFM_SHARED_DATA:-/work/shared/data}
OUT=${1:-models/default}
H=$D/h5ad
DATA=$H/bmfm_cellxgene_placenta_220.h5ad,$H/bmfm_zheng68k_165.h5ad,$H/harmony_kang_pbmc_ctrl_stim_2000.h5ad,$H/scvi_pbmc_5k_protein_v3_200.h5ad,$H/scvi_pbmc_10k_protein_v3_200.h5ad,$H/scvijl_pbmc8k_7480x200.h5ad
nice -n 10 ./bmfm pretrain --config configs/tiny_hs32.yaml \
    --data "$DATA" \
    --vocab "$D/genes/bmfm_protein_coding_genes.json" \
    --label-column cell_type_ontology_term_id \
    --ontology "$D/ontology/cl-basic_2022-12-15.obo" \
    --max-cells-per-file 2000 \
    --label-weight 2 \
    --steps 900 \
    --warmup 50 \
    --threads 2 \
    --inference-model \
    --max-minutes 22 \
    --checkpoint-every 100 \
    --val-every 300 \
    --out "$OUT" 2>&1 | tee "$OUT.log"
