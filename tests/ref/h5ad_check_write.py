"""h5ad_check_write.py - oracle for the h5ad writer test: python anndata reads
what bmfm wrote and everything else is unchanged.

usage: h5ad_check_write.py ORIG OUT EXPDIR

EXPDIR holds what the C test wrote: meta.txt ("obsm_key rows cols cat_col
num_col uns_key" on one line), obsm.f32 (row-major float32), codes.i32,
cats.txt (one UTF-8 category per line), num.f64, uns.txt. Prints the first
mismatch and exits 1, or prints OK.
"""
import os
import sys

import anndata
import numpy as np
import scipy.sparse as sp


def same_matrix(x, y):
    if sp.issparse(x) != sp.issparse(y):
        return False
    if sp.issparse(x):
        return x.shape == y.shape and (x != y).nnz == 0
    return np.array_equal(np.asarray(x), np.asarray(y))


def main():
    orig, out, exp = sys.argv[1:4]
    meta = open(os.path.join(exp, "meta.txt"), encoding="utf-8").read().split()
    key, rows, cols, cat_col, num_col, uns_key = meta[0], int(meta[1]), int(meta[2]), meta[3], meta[4], meta[5]
    emb = np.fromfile(os.path.join(exp, "obsm.f32"), dtype=np.float32).reshape(rows, cols)
    codes = np.fromfile(os.path.join(exp, "codes.i32"), dtype=np.int32)
    cats = open(os.path.join(exp, "cats.txt"), encoding="utf-8").read().split("\n")[:-1]
    num = np.fromfile(os.path.join(exp, "num.f64"), dtype=np.float64)
    uns = open(os.path.join(exp, "uns.txt"), encoding="utf-8").read()

    a0 = anndata.read_h5ad(orig)
    a1 = anndata.read_h5ad(out)
    errors = []
    got = a1.obsm[key]
    if got.dtype != np.float32 or not np.array_equal(got, emb):
        errors.append(f"obsm[{key}] differs (dtype {got.dtype})")
    c = a1.obs[cat_col]
    if str(c.dtype) != "category":
        errors.append(f"obs[{cat_col}] is {c.dtype}, not category")
    elif list(c.cat.categories) != cats or not np.array_equal(c.cat.codes.values.astype(np.int32), codes):
        errors.append(f"obs[{cat_col}] categories/codes differ: {list(c.cat.categories)}")
    n = a1.obs[num_col].values
    if n.dtype != np.float64 or not np.array_equal(n, num, equal_nan=True):
        errors.append(f"obs[{num_col}] differs (dtype {n.dtype})")
    if a1.uns.get(uns_key) != uns:
        errors.append(f"uns[{uns_key}] = {a1.uns.get(uns_key)!r}, expected {uns!r}")
    # everything else unchanged
    if not same_matrix(a0.X, a1.X):
        errors.append("X changed")
    if list(a0.obs_names) != list(a1.obs_names) or list(a0.var_names) != list(a1.var_names):
        errors.append("names changed")
    old_cols = [k for k in a0.obs.columns if k not in (cat_col, num_col)]
    if list(a1.obs.columns) != old_cols + [cat_col, num_col]:
        errors.append(f"obs columns are {list(a1.obs.columns)}, expected {old_cols + [cat_col, num_col]}")
    for k in old_cols:
        if not a0.obs[k].equals(a1.obs[k]):
            errors.append(f"obs[{k}] changed")
    if not a0.var.equals(a1.var):
        errors.append("var changed")
    for k, v in a0.obsm.items():
        if k != key and not same_matrix(v, a1.obsm[k]):
            errors.append(f"obsm[{k}] changed")
    if not set(a0.uns.keys()) <= set(a1.uns.keys()):
        errors.append("uns keys lost")
    for k in a0.layers.keys():
        if not same_matrix(a0.layers[k], a1.layers[k]):
            errors.append(f"layers[{k}] changed")
    if (a0.raw is None) != (a1.raw is None):
        errors.append("raw appeared or vanished")
    elif a0.raw is not None:
        if not same_matrix(a0.raw.X, a1.raw.X) or list(a0.raw.var_names) != list(a1.raw.var_names):
            errors.append("raw changed")
    if errors:
        print("; ".join(errors))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
