#!/usr/bin/env python3
"""pca_oracle.py - numpy/sklearn reference for the PCA baseline (src/eval/pca.c, hvg.c).

scanpy is not installed, so its steps are re-implemented here from its source
(scanpy 1.9: pp.normalize_total, pp.log1p, pp.highly_variable_genes flavor
seurat / cell_ranger with n_top_genes, pp.scale, pp.pca arpack), with pandas
for the binning exactly as scanpy does it.

Usage: pca_oracle.py IN.h5ad OUT_PREFIX [--matrix X|raw] [--n-hvg N] [--flavor F]
                     [--n-comps K] [--scale] [--input auto|counts|log] [--dump-csr]
Writes OUT_PREFIX.txt (normalized, target, genes, variance, ratio),
OUT_PREFIX.pca (float64 n x k, row-major) and with --dump-csr OUT_PREFIX.csr
(int64 n, m, nnz, int64 indptr[n+1], int32 indices[nnz], float32 data[nnz]).
"""
import argparse
import warnings

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import PCA

warnings.filterwarnings("ignore")


def mean_var(X):
    # scanpy _get_mean_var: float64 accumulation, var * n/(n-1)
    n = X.shape[0]
    if sp.issparse(X):
        mean = np.asarray(X.sum(axis=0, dtype=np.float64)).ravel() / n
        msq = np.asarray(X.multiply(X).sum(axis=0, dtype=np.float64)).ravel() / n
    else:
        mean = X.mean(axis=0, dtype=np.float64)
        msq = np.multiply(X, X).mean(axis=0, dtype=np.float64)
    return mean, (msq - mean ** 2) * (n / (n - 1))


def hvg(logX, n_top, flavor):
    X = logX.copy()
    X = X.expm1() if sp.issparse(X) else np.expm1(X)
    mean, var = mean_var(X)
    mean[mean == 0] = 1e-12
    disp = var / mean
    if flavor == "seurat":
        disp[disp == 0] = np.nan
        disp = np.log(disp)
        mean = np.log1p(mean)
    df = pd.DataFrame({"means": mean, "dispersions": disp})
    if flavor == "seurat":
        df["mean_bin"] = pd.cut(df["means"], bins=20)
        g = df.groupby("mean_bin")["dispersions"]
        mb, sb = g.mean(), g.std(ddof=1)
        one = sb.isnull()
        sb[one.values] = mb[one.values].values
        mb[one.values] = 0
        df["dn"] = (df["dispersions"].values - mb[df["mean_bin"].values].values) / sb[df["mean_bin"].values].values
    else:
        from scipy.stats import norm as _n
        edges = np.r_[-np.inf, np.percentile(df["means"], np.arange(10, 105, 5)), np.inf]
        df["mean_bin"] = pd.cut(df["means"], edges, duplicates="drop")
        g = df.groupby("mean_bin")["dispersions"]
        med = g.median()
        mad = g.apply(lambda a: np.median(np.abs(a - np.median(a))) / _n.ppf(0.75))
        df["dn"] = (df["dispersions"].values - med[df["mean_bin"].values].values) / mad[df["mean_bin"].values].values
    dn = df["dn"].values
    d = dn[~np.isnan(dn)]
    d[::-1].sort()
    n_top = min(n_top, len(dn), d.size)
    cut = d[n_top - 1]
    return np.nan_to_num(dn) >= cut


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--matrix", default="X")
    ap.add_argument("--n-hvg", type=int, default=3000)
    ap.add_argument("--flavor", default="seurat")
    ap.add_argument("--n-comps", type=int, default=50)
    ap.add_argument("--scale", action="store_true")
    ap.add_argument("--input", default="auto")
    ap.add_argument("--dump-csr", action="store_true")
    a = ap.parse_args()
    ad = anndata.read_h5ad(a.inp)
    X = ad.raw.X if a.matrix == "raw" else ad.X
    X = sp.csr_matrix(X, dtype=np.float32)
    X.sort_indices()
    X.eliminate_zeros()
    n = X.shape[0]
    if a.dump_csr:
        with open(a.out + ".csr", "wb") as f:
            np.array([n, X.shape[1], X.nnz], dtype="<i8").tofile(f)
            X.indptr.astype("<i8").tofile(f)
            X.indices.astype("<i4").tofile(f)
            X.data.astype("<f4").tofile(f)
    counts = a.input == "counts" or (a.input == "auto" and np.all(X.data >= 0) and np.all(X.data == np.floor(X.data)))
    target = 0.0
    if counts:
        tot = np.asarray(X.sum(axis=1, dtype=np.float64)).ravel()
        target = float(np.median(tot[tot > 0]))
        tot[tot == 0] = 1
        f = tot / target
        X = X.copy()
        X.data = (X.data.astype(np.float64) / np.repeat(f, np.diff(X.indptr))).astype(np.float32)
        X.data = np.log1p(X.data)  # float32 ufunc
    if a.n_hvg > 0:
        sel = hvg(X, a.n_hvg, a.flavor)
    else:
        sel = np.ones(X.shape[1], bool)
    D = X[:, sel].toarray().astype(np.float32)
    if a.scale:
        m, v = mean_var(D)
        sd = np.sqrt(v)
        sd[sd == 0] = 1
        D = ((D - m) / sd).astype(np.float32)
        D[D > 10] = 10
    k = min(a.n_comps, min(D.shape) - 1)
    pca = PCA(n_components=k, svd_solver="arpack", random_state=0)
    Z = pca.fit_transform(D.astype(np.float64))
    with open(a.out + ".txt", "w") as fh:
        fh.write("normalized %d\n" % int(counts))
        fh.write("target %.17g\n" % target)
        fh.write("n_genes %d\n" % int(sel.sum()))
        fh.write("genes " + " ".join(str(i) for i in np.where(sel)[0]) + "\n")
        fh.write("n_comps %d\n" % k)
        fh.write("variance " + " ".join("%.17g" % x for x in pca.explained_variance_) + "\n")
        fh.write("ratio " + " ".join("%.17g" % x for x in pca.explained_variance_ratio_) + "\n")
    Z.astype("<f8").tofile(a.out + ".pca")


if __name__ == "__main__":
    main()
