#!/usr/bin/env python3
"""eval_python.py - the Python reference implementation of `bmfm baseline pca` +
`bmfm eval --probe`, timed step by step, for bench/eval_bench.sh.

scanpy/scib are not installable here, so this is what a user would run with
the Debian stack: numpy/pandas (scanpy's normalize/log1p/HVG formulas, as in
tests/ref/pca_oracle.py), sklearn (PCA arpack, brute kNN, silhouette, NMI/ARI,
LogisticRegression, KNeighborsClassifier), a numpy re-implementation of the
UMAP connectivities, leidenalg (scanpy's default Leiden flavor) for the
resolution scan, scipy for components and the chi2 tail, numpy for PCR, and LISI/kBET from tests/ref/metrics_oracle.py (the metric
engine's oracle: scib-metrics' LISI, kBET per label with scib's component rules).

usage:
  eval_python.py make-kang OUT.h5ad REPLICAS      # resampled raw-count file
  eval_python.py make-pbmc8k OUT.h5ad              # scvijl pbmc8k + pseudo batch
  eval_python.py baseline IN.h5ad N_HVG            # time the PCA baseline
  eval_python.py suite IN.h5ad KEY LABEL BATCH     # time the metric suite + probe
Prints "step seconds" lines and a "total" line, and the metric values.
"""
import os
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "ref"))

T = {}


def tick(name, t0):
    T[name] = time.perf_counter() - t0
    print("step %-22s %8.3f s" % (name, T[name]), flush=True)
    return time.perf_counter()


def make_kang(out, reps):
    import anndata
    a = anndata.read_h5ad("%s/h5ad/harmony_kang_pbmc_ctrl_stim_2000.h5ad" % os.environ["BMFM_SHARED_DATA"])
    rng = np.random.default_rng(0)
    X = a.X.tocsr()
    blocks, obs = [], []
    for r in range(reps):  # binomial thinning keeps the data counts, not copies
        Y = X.copy()
        Y.data = rng.binomial(Y.data.astype(np.int64), 0.9).astype(np.float32)
        Y.eliminate_zeros()
        blocks.append(Y)
        obs.append(a.obs.assign(replica=str(r)).set_index(a.obs_names + "-%d" % r))
    import pandas as pd
    b = anndata.AnnData(sp.vstack(blocks).tocsr(), obs=pd.concat(obs), var=a.var)
    b.write_h5ad(out)


def make_pbmc8k(out):
    import anndata
    a = anndata.read_h5ad("%s/h5ad/scvijl_pbmc8k_7480x200.h5ad" % os.environ["BMFM_SHARED_DATA"])
    # pbmc8k has no batch; a deterministic pseudo batch exercises the batch metrics (timing only)
    a.obs["pseudo_batch"] = np.where(np.arange(a.n_obs) % 2 == 0, "a", "b")
    a.obs["cell_type"] = a.obs["cell_type"].astype(str)
    a.write_h5ad(out)


def baseline(path, n_hvg):
    import anndata
    import pca_oracle as po
    from sklearn.decomposition import PCA
    t = time.perf_counter()
    a = anndata.read_h5ad(path)
    X = sp.csr_matrix(a.X, dtype=np.float32)
    t = tick("read", t)
    tot = np.asarray(X.sum(axis=1, dtype=np.float64)).ravel()
    target = float(np.median(tot[tot > 0]))
    X.data = (X.data / np.repeat(tot / target, np.diff(X.indptr))).astype(np.float32)
    X.data = np.log1p(X.data)
    t = tick("normalize+log1p", t)
    sel = po.hvg(X, n_hvg, "seurat")
    t = tick("hvg", t)
    D = X[:, sel].toarray()
    Z = PCA(n_components=50, svd_solver="arpack", random_state=0).fit_transform(D)
    t = tick("pca", t)
    print("total %.3f s (%d cells, %d HVGs)" % (sum(T.values()), X.shape[0], sel.sum()))


def knn(X, k):
    from sklearn.neighbors import NearestNeighbors
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(X)
    d, i = nn.kneighbors(X)
    return i, d.astype(np.float32)


def connectivities(idx, dist):
    n, k = idx.shape
    target = np.log2(k)
    rho = np.array([r[r > 0][0] if np.any(r > 0) else 0 for r in dist], np.float64)
    lo, hi, mid = np.zeros(n), np.full(n, np.inf), np.ones(n)
    done = np.zeros(n, bool)
    dd = dist[:, 1:].astype(np.float64) - rho[:, None]
    for _ in range(64):
        psum = np.where(dd > 0, np.exp(-dd / mid[:, None]), 1.0).sum(1)
        done |= np.abs(psum - target) < 1e-5
        up = (psum > target) & ~done
        dn = (psum <= target) & ~done
        hi[up] = mid[up]
        mid[up] = (lo[up] + hi[up]) / 2
        lo[dn] = mid[dn]
        mid[dn] = np.where(np.isinf(hi[dn]), mid[dn] * 2, (lo[dn] + hi[dn]) / 2)
        if done.all():
            break
    mean_all = dist.mean()
    sigma = np.where(rho > 0, np.maximum(mid, 1e-3 * dist.mean(1)), np.maximum(mid, 1e-3 * mean_all))
    w = np.where(dist - rho[:, None] <= 0, 1.0, np.exp(-(dist - rho[:, None]) / sigma[:, None]))
    w[idx == np.arange(n)[:, None]] = 0
    A = sp.csr_matrix((w.ravel(), idx.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))
    W = A + A.T - A.multiply(A.T)
    W.eliminate_zeros()
    return W.tocsr()


def leiden_scan(W, lab):
    import igraph as ig
    import leidenalg
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    C = W.tocoo()
    g = ig.Graph(n=W.shape[0], edges=list(zip(C.row.tolist(), C.col.tolist())), directed=True)
    g.es["weight"] = C.data.tolist()
    best = (-1, None, None)
    for r in [0.2 * i for i in range(1, 11)]:
        p = leidenalg.find_partition(g, leidenalg.RBConfigurationVertexPartition, weights="weight",
                                     resolution_parameter=r, n_iterations=-1, seed=0)
        m = np.array(p.membership)
        s = normalized_mutual_info_score(lab, m)
        if s > best[0]:
            best = (s, r, m)
    return best[0], adjusted_rand_score(lab, best[2]), best[1]


def suite(path, key, label, batch):
    import anndata
    from scipy.sparse.csgraph import connected_components
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, silhouette_samples, silhouette_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler
    t = time.perf_counter()
    a = anndata.read_h5ad(path)
    X = np.asarray(a.obsm[key], dtype=np.float32)
    lab = a.obs[label].astype("category").cat.codes.values.astype(np.int64)
    bat = a.obs[batch].astype("category").cat.codes.values.astype(np.int64)
    t = tick("read", t)
    idx, dist = knn(X, 15)
    W = connectivities(idx, dist)
    t = tick("knn+connectivities", t)
    nmi, ari, res = leiden_scan(W, lab)
    t = tick("leiden scan", t)
    sil = silhouette_samples(X, lab)  # = silhouette_score's samples, reused by isolated-label ASW
    asw = (np.mean(sil) + 1) / 2
    from metrics_oracle import isolated_asw
    iso = isolated_asw(sil, lab, bat)
    t = tick("silhouette+isolated", t)
    sb = []
    for c in np.unique(lab):
        m = lab == c
        if len(np.unique(bat[m])) < 2:
            continue
        s = np.abs(silhouette_samples(X[m], bat[m]))
        sb.append(np.mean(1 - s))
    asw_b = np.mean(sb)
    t = tick("batch silhouette", t)
    gc = []
    for c in np.unique(lab):
        m = np.where(lab == c)[0]
        _, comp = connected_components(W[m][:, m], connection="strong")
        gc.append(np.bincount(comp).max() / len(m))
    gc = np.mean(gc)
    t = tick("graph connectivity", t)
    i90, d90 = knn(X, 90)
    t = tick("knn90", t)
    from metrics_oracle import kbet, lisi  # the metric engine's oracle (same protocol as bmfm)
    lb = lisi(i90, d90, bat, 30)
    ll = lisi(i90, d90, lab, 30)
    nb, nl = bat.max() + 1, lab.max() + 1
    ilisi = (np.nanmedian(lb) - 1) / (nb - 1)
    clisi = (nl - np.nanmedian(ll)) / (nl - 1)
    t = tick("lisi", t)
    i50, d50 = knn(X, 50)
    kb = kbet(X, connectivities(i50, d50), lab, bat)
    t = tick("kbet", t)
    P = PCA(n_components=min(50, X.shape[1] - 1), svd_solver="arpack").fit(X)
    Z = P.transform(X)
    r2 = []
    for j in range(Z.shape[1]):
        z = Z[:, j]
        mb = np.bincount(bat, weights=z) / np.bincount(bat)
        r2.append(np.sum((mb[bat] - z.mean()) ** 2) / np.sum((z - z.mean()) ** 2))
    pcr = np.sum(np.array(r2) * P.explained_variance_) / np.sum(P.explained_variance_)
    t = tick("pcr", t)
    keep = np.isin(lab, np.where(np.bincount(lab) >= 10)[0])
    Xk, yk, bk = X[keep], lab[keep], bat[keep]

    def fit_eval(tr, te):  # both probes on one split, as bmfm's fit_eval
        sc = StandardScaler(with_mean=False).fit(Xk[tr])
        lr = LogisticRegression().fit(sc.transform(Xk[tr]), yk[tr])
        kn = KNeighborsClassifier(5).fit(sc.transform(Xk[tr]), yk[tr])
        return (f1_score(yk[te], lr.predict(sc.transform(Xk[te])), average="macro"),
                f1_score(yk[te], kn.predict(sc.transform(Xk[te])), average="macro"))

    f1s, f1k = zip(*[fit_eval(tr, te) for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(Xk, yk)])
    t = tick("probe (lr+knn, 5-fold)", t)
    # bmfm eval --probe with a batch column also runs leave-one-batch-out
    f1h = [fit_eval(np.flatnonzero(bk != b), np.flatnonzero(bk == b))[0] for b in np.unique(bk)
           if len(np.unique(yk[bk != b])) >= 2]
    t = tick("probe (leave-one-batch-out)", t)
    print("values NMI %.4f ARI %.4f ASW_label %.4f ASW_batch %.4f GC %.4f iLISI %.4f cLISI %.4f kBET %.4f "
          "PCR %.4f iso_ASW %.4f probe_F1 %.4f kNN_F1 %.4f heldout_F1 %.4f (res %.1f)"
          % (nmi, ari, asw, asw_b, gc, ilisi, clisi, kb, pcr, iso, np.mean(f1s), np.mean(f1k), np.mean(f1h), res))
    print("total %.3f s (%d cells, %d dims)" % (sum(T.values()), X.shape[0], X.shape[1]))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make-kang":
        make_kang(sys.argv[2], int(sys.argv[3]))
    elif cmd == "make-pbmc8k":
        make_pbmc8k(sys.argv[2])
    elif cmd == "baseline":
        baseline(sys.argv[2], int(sys.argv[3]))
    elif cmd == "suite":
        suite(*sys.argv[2:6])
