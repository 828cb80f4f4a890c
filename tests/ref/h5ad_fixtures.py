"""h5ad_fixtures.py - generate the .h5ad fixtures of tests/test_h5ad.c.

usage: h5ad_fixtures.py OUTDIR SHARED_H5AD_DIR

Good files (read back and compared with h5ad_dump.py):
  csc.h5ad        bmfm_zheng68k_165 with X stored as CSC (anndata writes it)
  wide.h5ad       hand-made CSR: int64 data, int64 indices/indptr, unsorted
                  indices, a duplicate entry and explicit zeros; obs with
                  nullable-integer, nullable-boolean, fixed-length byte string
                  and bool columns, a numeric index
  h5sparse.h5ad   pre-0.7 sparse group: h5sparse_format/h5sparse_shape attributes
  empty.h5ad      0 cells x 5 genes (anndata writes it)
Bad files (each must fail with an error naming file, field and problem):
  bad_*.h5ad, not_hdf5.h5ad, truncated.h5ad
"""
import os
import shutil
import sys

import anndata
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp


def sattr(obj, key, val):
    obj.attrs.create(key, val, dtype=h5py.string_dtype())


def strings(g, name, vals):
    d = g.create_dataset(name, data=np.array(vals, dtype=object), dtype=h5py.string_dtype())
    sattr(d, "encoding-type", "string-array")
    sattr(d, "encoding-version", "0.2.0")
    return d


def frame(f, name, index):
    g = f.create_group(name)
    sattr(g, "encoding-type", "dataframe")
    sattr(g, "encoding-version", "0.2.0")
    sattr(g, "_index", "_index")
    g.attrs["column-order"] = np.array([], dtype=np.float64)
    strings(g, "_index", index)
    return g


def tiny(path, data, indices, indptr, shape, n_obs_names=None, fmt="csr_matrix", data_dtype=None):
    """A minimal modern CSR file; arguments are written as given (may be invalid)."""
    with h5py.File(path, "w") as f:
        sattr(f, "encoding-type", "anndata")
        sattr(f, "encoding-version", "0.1.0")
        x = f.create_group("X")
        sattr(x, "encoding-type", fmt)
        sattr(x, "encoding-version", "0.1.0")
        x.attrs["shape"] = np.array(shape, dtype=np.int64)
        if data_dtype is not None:
            x.create_dataset("data", data=np.array(data, dtype=object), dtype=data_dtype)
        else:
            x.create_dataset("data", data=np.array(data, dtype=np.float32))
        x.create_dataset("indices", data=np.array(indices, dtype=np.int32))
        x.create_dataset("indptr", data=np.array(indptr, dtype=np.int32))
        n_obs = shape[0] if n_obs_names is None else n_obs_names
        frame(f, "obs", [f"c{i}" for i in range(n_obs)])
        frame(f, "var", [f"g{i}" for i in range(shape[1])])


def main():
    out, shared = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)

    a = anndata.read_h5ad(os.path.join(shared, "bmfm_zheng68k_165.h5ad"))
    a.X = sp.csc_matrix(a.X)
    a.write_h5ad(os.path.join(out, "csc.h5ad"))

    # wide dtypes, unsorted / duplicate / zero entries; 4 x 6
    p = os.path.join(out, "wide.h5ad")
    with h5py.File(p, "w") as f:
        sattr(f, "encoding-type", "anndata")
        sattr(f, "encoding-version", "0.1.0")
        x = f.create_group("X")
        sattr(x, "encoding-type", "csr_matrix")
        sattr(x, "encoding-version", "0.1.0")
        x.attrs["shape"] = np.array([4, 6], dtype=np.int64)
        # row 0: cols 5,1,3 (unsorted); row 1: explicit zero at 2 and 4 -> only col 0;
        # row 2: empty; row 3: duplicate col 2 (3 + 4 = 7) and col 5
        x.create_dataset("data", data=np.array([5, 1, 3, 0, 9, 0, 3, 4, 2], dtype=np.int64))
        x.create_dataset("indices", data=np.array([5, 1, 3, 2, 0, 4, 2, 2, 5], dtype=np.int64))
        x.create_dataset("indptr", data=np.array([0, 3, 6, 6, 9], dtype=np.int64))
        obs = frame(f, "obs", ["10", "11", "12", "13"])
        ni = obs.create_group("nint")
        sattr(ni, "encoding-type", "nullable-integer")
        sattr(ni, "encoding-version", "0.1.0")
        ni.create_dataset("values", data=np.array([1, 2, 3, 4], dtype=np.int64))
        ni.create_dataset("mask", data=np.array([False, True, False, False]))
        nb = obs.create_group("nbool")
        sattr(nb, "encoding-type", "nullable-boolean")
        sattr(nb, "encoding-version", "0.1.0")
        nb.create_dataset("values", data=np.array([True, False, True, False]))
        nb.create_dataset("mask", data=np.array([False, False, True, False]))
        obs.create_dataset("fixed", data=np.array([b"alpha", b"be", b"gamma", b"d"], dtype="S5"))
        obs.create_dataset("flag", data=np.array([True, False, False, True]))
        obs.attrs["column-order"] = np.array(["nint", "nbool", "fixed", "flag"], dtype=object)
        frame(f, "var", [f"g{i}" for i in range(6)])
        om = f.create_group("obsm")
        sattr(om, "encoding-type", "dict")
        sattr(om, "encoding-version", "0.1.0")
        frame(om, "df", ["10", "11", "12", "13"])  # obsm stored as a dataframe: not read
        om.create_dataset("emb", data=np.arange(8, dtype=np.float64).reshape(4, 2))

    # pre-0.7 sparse layout
    p = os.path.join(out, "h5sparse.h5ad")
    with h5py.File(p, "w") as f:
        x = f.create_group("X")
        x.attrs["h5sparse_format"] = "csr"
        x.attrs["h5sparse_shape"] = np.array([2, 3])
        x.create_dataset("data", data=np.array([1.5, 2.5], dtype=np.float64))
        x.create_dataset("indices", data=np.array([2, 0], dtype=np.int32))
        x.create_dataset("indptr", data=np.array([0, 1, 2], dtype=np.int32))
        frame(f, "obs", ["a", "b"])
        frame(f, "var", ["x", "y", "z"])

    e = anndata.AnnData(X=sp.csr_matrix((0, 5), dtype=np.float32))
    e.var_names = [f"g{i}" for i in range(5)]
    e.write_h5ad(os.path.join(out, "empty.h5ad"))

    # bad files: 3 x 4
    ok = dict(data=[1, 2, 3, 4], indices=[0, 3, 1, 2], indptr=[0, 2, 3, 4], shape=[3, 4])
    tiny(os.path.join(out, "bad_indptr_len.h5ad"), **{**ok, "indptr": [0, 2, 4]})
    tiny(os.path.join(out, "bad_indptr_order.h5ad"), **{**ok, "indptr": [0, 3, 2, 4]})
    tiny(os.path.join(out, "bad_indptr_range.h5ad"), **{**ok, "indptr": [0, 9, 3, 4]})
    tiny(os.path.join(out, "bad_indptr_end.h5ad"), **{**ok, "indptr": [0, 2, 3, 3]})
    tiny(os.path.join(out, "bad_indices.h5ad"), **{**ok, "indices": [0, 3, 7, 2]})
    tiny(os.path.join(out, "bad_negindex.h5ad"), **{**ok, "indices": [0, -1, 1, 2]})
    tiny(os.path.join(out, "bad_nan.h5ad"), **{**ok, "data": [1, np.nan, 3, 4]})
    tiny(os.path.join(out, "bad_inf.h5ad"), **{**ok, "data": [1, 2, np.inf, 4]})
    tiny(os.path.join(out, "bad_dtype.h5ad"), **{**ok, "data": ["1", "2", "3", "4"]},
         data_dtype=h5py.string_dtype())
    tiny(os.path.join(out, "bad_shape.h5ad"), **ok, n_obs_names=5)
    tiny(os.path.join(out, "bad_encoding.h5ad"), **ok, fmt="awkward-array")
    tiny(os.path.join(out, "bad_missing_x.h5ad"), **ok)
    with h5py.File(os.path.join(out, "bad_missing_x.h5ad"), "a") as f:
        del f["X"]
    tiny(os.path.join(out, "bad_no_indptr.h5ad"), **ok)
    with h5py.File(os.path.join(out, "bad_no_indptr.h5ad"), "a") as f:
        del f["X/indptr"]
    with open(os.path.join(out, "not_hdf5.h5ad"), "w") as fh:
        fh.write("cell,gene,count\nc1,g1,3\n")
    src = os.path.join(shared, "harmony_kang_pbmc_ctrl_stim_2000.h5ad")
    size = os.path.getsize(src)
    with open(src, "rb") as fi, open(os.path.join(out, "truncated.h5ad"), "wb") as fo:
        fo.write(fi.read(size * 6 // 10))
    shutil.copy(src, os.path.join(out, "ok_copy.h5ad"))


if __name__ == "__main__":
    main()
