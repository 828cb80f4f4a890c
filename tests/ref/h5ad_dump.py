"""h5ad_dump.py - oracle for tests/test_h5ad.c: what python anndata sees in an .h5ad.

usage: h5ad_dump.py FILE MATRIX OUT.json
  MATRIX: X, raw, or a layer name.

Writes shape, X encoding and dtype (from h5py), obs/var columns with their kind
and category count, sampled names and column values, layers, obsm shapes and
sums, and per-row sums (float64 over the float32 values) and nonzero counts of
the chosen matrix after dropping explicit zeros and summing duplicates.
"""
import json
import sys

import anndata
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp


def kind(series):
    dt = series.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return "categorical", len(dt.categories)
    if pd.api.types.is_bool_dtype(dt):
        return "bool", 0
    if pd.api.types.is_integer_dtype(dt):
        return "int", 0
    if pd.api.types.is_float_dtype(dt):
        return "float", 0
    return "string", 0


def sample_rows(n):
    return sorted({i for i in (0, 1, n // 2, n - 1) if 0 <= i < n})


def frame(df):
    out = []
    rows = sample_rows(len(df))
    for name in df.columns:
        k, ncat = kind(df[name])
        vals = []
        for i in rows:
            v = df[name].iloc[i]
            if k in ("categorical", "string"):
                vals.append(None if pd.isna(v) else str(v))
            else:
                vals.append(None if pd.isna(v) else float(v))
        out.append({"name": name, "kind": k, "n_categories": ncat, "rows": rows, "values": vals})
    return out


def names(index):
    rows = sample_rows(len(index))
    return {"rows": rows, "names": [str(index[i]) for i in rows]}


def main():
    path, matrix, out = sys.argv[1], sys.argv[2], sys.argv[3]
    a = anndata.read_h5ad(path)
    var = a.var
    if matrix == "X":
        m, loc = a.X, "X"
    elif matrix == "raw":
        m, loc, var = a.raw.X, "raw/X", a.raw.var
    else:
        m, loc = a.layers[matrix], "layers/" + matrix
    with h5py.File(path, "r") as f:
        obj = f[loc]
        if isinstance(obj, h5py.Dataset):
            enc, dtype = "dense", str(obj.dtype)
        else:
            e = obj.attrs.get("encoding-type", obj.attrs.get("h5sparse_format", ""))
            e = e.decode() if isinstance(e, bytes) else str(e)
            enc, dtype = ("csc" if "csc" in e else "csr"), str(obj["data"].dtype)
    m = sp.csr_matrix(m).astype(np.float32)
    m.sum_duplicates()
    m.eliminate_zeros()
    m = m.astype(np.float64)
    res = {
        "n_obs": int(m.shape[0]),
        "n_vars": int(m.shape[1]),
        "encoding": enc,
        "dtype": dtype,
        "nnz_total": int(m.nnz),
        "row_sums": [float(x) for x in np.asarray(m.sum(axis=1)).ravel()],
        "row_nnz": [int(x) for x in np.diff(m.indptr)],
        "obs_columns": frame(a.obs),
        "var_columns": frame(var),
        "obs_names": names(a.obs_names),
        "var_names": names(var.index),
        "layers": sorted(a.layers.keys()),
        "has_raw": a.raw is not None,
        "obsm_keys": sorted(a.obsm.keys()),
        "obsm": {k: [int(v.shape[0]), int(v.shape[1] if v.ndim > 1 else 1), float(np.asarray(v, dtype=np.float64).sum())]
                 for k, v in a.obsm.items() if isinstance(v, np.ndarray)},
    }
    with open(out, "w") as fh:
        json.dump(res, fh)


if __name__ == "__main__":
    main()
