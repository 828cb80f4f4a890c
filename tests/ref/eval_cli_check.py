#!/usr/bin/env python3
"""eval_cli_check.py - interop check for `bmfm baseline pca` (tests/test_eval_cli.c).

Usage: eval_cli_check.py OUT.h5ad KEY ORACLE_PREFIX
Reads OUT.h5ad with python anndata (must succeed), checks that obsm[KEY] has
the shape of the oracle's PCA (pca_oracle.py ORACLE_PREFIX.pca/.txt) and equals
it up to the sign of each component (max error / component scale < 1e-4), and
that every obs column and X survived. Prints one line; exit 0 when all hold.
"""
import sys

import anndata
import numpy as np


def main():
    out, key, prefix = sys.argv[1:4]
    ad = anndata.read_h5ad(out)
    k = None
    for line in open(prefix + ".txt"):
        if line.startswith("n_comps"):
            k = int(line.split()[1])
    Z = np.fromfile(prefix + ".pca", dtype="<f8").reshape(ad.n_obs, k)
    P = np.asarray(ad.obsm[key], dtype=np.float64)
    if P.shape != Z.shape:
        print("shape", P.shape, "expected", Z.shape)
        return 1
    worst = 0.0
    for j in range(k):
        s = 1.0 if np.dot(P[:, j], Z[:, j]) >= 0 else -1.0
        worst = max(worst, np.max(np.abs(s * P[:, j] - Z[:, j])) / np.max(np.abs(Z[:, j])))
    print("anndata read %s: obsm[%s] %s, X %s, obs columns %s; worst scaled diff vs oracle %.3g"
          % (out, key, P.shape, ad.X.shape, list(ad.obs.columns), worst))
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
