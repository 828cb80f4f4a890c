"""make_big_h5ad.py - a large .h5ad for bench/h5ad_stream.c, resampled from a
shared file (the shared files are all < 10k cells).

usage: /usr/bin/python3 bench/make_big_h5ad.py SRC.h5ad OUT.h5ad N_CELLS [csr|csc|gzip]

Rows of SRC's X are drawn with replacement (seed 0); obs keeps the drawn
rows' columns with unique names. csr (default) writes X uncompressed, gzip
writes CSR with gzip (as CELLxGENE files are), csc stores X as CSC.
"""
import sys

import anndata
import numpy as np
import scipy.sparse as sp


def main():
    src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else "csr"
    a = anndata.read_h5ad(src)
    idx = np.random.default_rng(0).integers(0, a.n_obs, size=n)
    b = a[idx].copy()
    b.obs_names = [f"cell{i}" for i in range(n)]
    b.X = sp.csc_matrix(b.X) if mode == "csc" else sp.csr_matrix(b.X)
    b.write_h5ad(out, compression="gzip" if mode == "gzip" else None)
    print(f"{out}: {b.n_obs} x {b.n_vars}, nnz {b.X.nnz}")


if __name__ == "__main__":
    main()
