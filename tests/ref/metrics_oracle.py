"""metrics_oracle.py - reference values for tests/test_eval_metrics.c.

Independent Python implementations of the scib metric suite as metrics.md
describes it (B1 connectivities re-implemented in numpy, since neither scanpy
nor umap is packaged), with sklearn for NMI/ARI/silhouette/PCA/OLS, scipy for
components and the incomplete gamma, leidenalg (scanpy's default flavor) and
python-igraph for Leiden.

usage: metrics_oracle.py OUTDIR [--harmony CSV.GZ]
Writes, per fixture F: F_X.f32 (n x d, may hold NaN rows), F_lab.i32 (-1 =
missing), F_bat.i32, optional F_pre.f32, and on the cleaned cells: F_knn_idx.i32,
F_knn_dist.f32 (15 NN), F_conn_{indptr.i64,indices.i32,data.f64}, F_sil.f64,
F_ca.i32/F_cb.i32 (two labelings for NMI/ARI) and F_ref.txt ("key value" lines).
"""
import gzip
import os
import sys

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.special import gammaincc
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_samples


def knn_exact(X, k):
    X = X.astype(np.float64)
    sq = (X * X).sum(1)
    D2 = sq[:, None] + sq[None, :] - 2 * X @ X.T
    # direct differences for accuracy (small n only)
    D2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1) if X.shape[0] <= 800 else np.maximum(D2, 0)
    n = X.shape[0]
    np.fill_diagonal(D2, -1.0)  # self first
    idx = np.lexsort((np.broadcast_to(np.arange(n), (n, n)), D2), axis=1)[:, :k]
    d = np.sqrt(np.maximum(np.take_along_axis(D2, idx, 1), 0)).astype(np.float32)
    d[:, 0] = 0
    return idx.astype(np.int32), d


def smooth_knn_dist(dist, k):
    n = dist.shape[0]
    target = np.log2(k)
    rho = np.zeros(n, np.float32)
    sigma = np.zeros(n)
    mean_all = dist.astype(np.float64).mean()
    for i in range(n):
        di = dist[i]
        nz = di[di > 0]
        if nz.shape[0] >= 1:
            rho[i] = nz[0]
        lo, hi, mid = 0.0, np.inf, 1.0
        for _ in range(64):
            dd = (di[1:] - rho[i]).astype(np.float64)
            psum = np.where(dd > 0, np.exp(-(dd / mid)), 1.0).sum()
            if abs(psum - target) < 1e-5:
                break
            if psum > target:
                hi = mid
                mid = (lo + hi) / 2
            else:
                lo = mid
                mid = mid * 2 if hi == np.inf else (lo + hi) / 2
        mi = di.astype(np.float64).mean()
        if rho[i] > 0:
            mid = max(mid, 1e-3 * mi)
        else:
            mid = max(mid, 1e-3 * mean_all)
        sigma[i] = mid
    return sigma, rho


def connectivities(idx, dist):
    n, k = idx.shape
    sigma, rho = smooth_knn_dist(dist, k)
    rows, cols, vals = [], [], []
    for i in range(n):
        for j in range(k):
            c = idx[i, j]
            if c == i:
                continue
            dd = dist[i, j] - rho[i]
            w = 1.0 if (dd <= 0 or sigma[i] == 0) else np.exp(-(float(dd) / sigma[i]))
            rows.append(i)
            cols.append(c)
            vals.append(w)
    A = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
    At = A.T.tocsr()
    W = A + At - A.multiply(At)
    W = W.tocsr()
    W.eliminate_zeros()
    W.sort_indices()
    return W


def asw_batch(X, lab, bat):
    means = []
    for g in np.unique(lab):
        m = lab == g
        nb = len(np.unique(bat[m]))
        if nb == 1 or nb == m.sum():
            continue
        s = silhouette_samples(X[m], bat[m])
        means.append(np.mean(1 - np.abs(s)))
    return np.mean(means) if means else np.nan


def isolated_asw(sil, lab, bat):
    labs = np.unique(lab)
    nb = np.array([len(np.unique(bat[lab == g])) for g in labs])
    thr = nb.min()
    if thr == len(np.unique(bat)):
        return np.nan
    s = (sil + 1) / 2
    return np.mean([s[lab == g].mean() for g, c in zip(labs, nb) if c <= thr])


def graph_conn(W, lab):
    vals = []
    for g in np.unique(lab):
        m = np.flatnonzero(lab == g)
        _, cl = connected_components(W[m][:, m], connection="strong")
        vals.append(np.bincount(cl).max() / len(m))
    return np.mean(vals)


def lisi(idx, dist, cat, perplexity):
    n = idx.shape[0]
    logU = np.log(perplexity)
    out = np.zeros(n)
    ncat = cat.max() + 1
    for i in range(n):
        D = dist[i, 1:].astype(np.float64)
        I = idx[i, 1:]

        def hb(beta):
            P = np.exp(-D * beta)
            s = P.sum()
            if s == 0:
                return 0.0, np.zeros_like(P)
            H = np.log(s) + beta * (D * P).sum() / s
            return H, P / s

        beta, bmin, bmax = 1.0, -np.inf, np.inf
        H, P = hb(beta)
        Hd = H - logU
        t = 0
        while t < 50 and abs(Hd) >= 1e-5:
            if Hd > 0:
                bmin = beta
                beta = beta * 2 if np.isinf(bmax) else (beta + bmax) / 2
            else:
                bmax = beta
                beta = beta / 2 if np.isinf(bmin) else (beta + bmin) / 2
            H, P = hb(beta)
            Hd = H - logU
            t += 1
        if H == 0:
            out[i] = -1
            continue
        b = np.bincount(cat[I], weights=P, minlength=ncat)
        out[i] = 1 / (b * b).sum()
    return out


def kbet(X, W50, lab, bat, alpha=0.05):
    scores = []
    for g in np.unique(lab):
        m = np.flatnonzero(lab == g)
        bsub = bat[m]
        ub, bc = np.unique(bsub, return_counts=True)
        if len(m) < 10 or len(ub) < 2:
            continue
        k0 = int(min(70, max(10, np.floor(np.mean(bc) / 4))))
        nc, cl = connected_components(W50[m][:, m], connection="strong")
        if nc == 1:
            keep = m
        else:
            cs = np.bincount(cl)
            keep = m[cs[cl] >= 3 * k0]
            if len(keep) / len(m) < 0.75:
                scores.append(0.0)
                continue
        bk = bat[keep]
        ubk = np.unique(bk)
        if len(ubk) < 2:
            scores.append(0.0)
            continue
        idx, _ = knn_exact(X[keep], min(k0 + 1, len(keep)))
        codes = np.searchsorted(ubk, bk)
        freq = np.bincount(codes) / len(keep)
        obs = np.stack([np.bincount(codes[r], minlength=len(ubk)) for r in idx])
        exp_ = freq * idx.shape[1]
        chi2 = ((obs - exp_) ** 2 / exp_).sum(1)
        p = gammaincc((len(ubk) - 1) / 2, chi2 / 2)
        scores.append(np.mean(p >= alpha))
    return np.mean(scores) if scores else np.nan


def pcr(X, bat):
    n_comps = min(50, *X.shape)
    pca = PCA(n_components=n_comps, svd_solver="full")
    Xp = pca.fit_transform(X.astype(np.float64))
    var = pca.explained_variance_
    # OLS PC ~ 1 + one-hot(batch). scib fits sklearn LinearRegression on the full
    # (rank-deficient) one-hot; on the harmony embedding that solve is off by up
    # to 2e-3 in one PC's R^2, so we fit the same model with a full-rank design.
    D = np.column_stack([np.ones(len(bat)), np.eye(bat.max() + 1)[bat][:, 1:]])
    r2 = []
    for i in range(n_comps):
        y = Xp[:, i]
        coef = np.linalg.lstsq(D, y, rcond=None)[0]
        res = y - D @ coef
        r2.append(max(0, 1 - (res @ res) / ((y - y.mean()) @ (y - y.mean()))))
    return float(np.sum(np.array(r2) * var) / var.sum())


def leiden_scan(W, lab, flavor, seed=0):
    import igraph as ig
    best = (-1, None, None, None)
    if flavor == "leidenalg":
        import leidenalg
        s, t = W.nonzero()
        g = ig.Graph(directed=True)
        g.add_vertices(W.shape[0])
        g.add_edges(list(zip(s, t)))
        w = np.asarray(W[s, t]).ravel().astype(np.float64)
    else:
        Wu = sp.triu(W, 1).tocoo()
        g = ig.Graph(n=W.shape[0], edges=list(zip(Wu.row, Wu.col)), directed=False)
        w = Wu.data.astype(np.float64)
    for r in [2 * x / 10 for x in range(1, 11)]:
        if flavor == "leidenalg":
            part = leidenalg.find_partition(g, leidenalg.RBConfigurationVertexPartition, weights=w,
                                            resolution_parameter=r, n_iterations=-1, seed=seed)
            memb = np.array(part.membership)
        else:
            import random
            ig.set_random_number_generator(random.Random(seed))
            memb = np.array(g.community_leiden(objective_function="modularity", weights=w, resolution_parameter=r,
                                               n_iterations=2).membership)
        nmi = normalized_mutual_info_score(lab, memb)
        if nmi > best[0]:
            best = (nmi, adjusted_rand_score(lab, memb), r, len(np.unique(memb)))
    return best


def write(out, name, arr, dtype):
    np.ascontiguousarray(arr, dtype=dtype).tofile(os.path.join(out, name))


def fixture(out, name, X, lab, bat, pre=None):
    ref = {}
    write(out, f"{name}_X.f32", X, np.float32)
    write(out, f"{name}_lab.i32", lab, np.int32)
    write(out, f"{name}_bat.i32", bat, np.int32)
    if pre is not None:
        write(out, f"{name}_pre.f32", pre, np.float32)
    ok = np.isfinite(X).all(1) & (lab >= 0) & (bat >= 0)
    if pre is not None:
        ok &= np.isfinite(pre).all(1)
    ref["n_raw"] = X.shape[0]
    ref["n_used"] = int(ok.sum())
    X = X[ok].astype(np.float32)
    Xd = X.astype(np.float64)
    lab = np.unique(lab[ok], return_inverse=True)[1]
    bat = np.unique(bat[ok], return_inverse=True)[1]
    write(out, f"{name}_clean_X.f32", X, np.float32)
    write(out, f"{name}_clean_lab.i32", lab, np.int32)
    write(out, f"{name}_clean_bat.i32", bat, np.int32)
    idx90, d90 = knn_exact(X, 90)
    write(out, f"{name}_knn_idx.i32", idx90[:, :15], np.int32)
    write(out, f"{name}_knn_dist.f32", d90[:, :15], np.float32)
    W = connectivities(idx90[:, :15], d90[:, :15])
    write(out, f"{name}_conn_indptr.i64", W.indptr, np.int64)
    write(out, f"{name}_conn_indices.i32", W.indices, np.int32)
    write(out, f"{name}_conn_data.f64", W.data, np.float64)
    W50 = connectivities(idx90[:, :50], d90[:, :50])
    sil = silhouette_samples(Xd, lab)
    write(out, f"{name}_sil.f64", sil, np.float64)
    ref["asw_label"] = (sil.mean() + 1) / 2
    ref["asw_batch"] = asw_batch(Xd, lab, bat)
    ref["isolated_asw"] = isolated_asw(sil, lab, bat)
    ref["graph_conn"] = graph_conn(W, lab)
    ref["ilisi"] = (np.nanmedian(lisi(idx90, d90, bat, 30)) - 1) / (bat.max())
    L = lab.max() + 1
    ref["clisi"] = (L - np.nanmedian(lisi(idx90, d90, lab, 30))) / (L - 1)
    ref["kbet"] = kbet(X, W50, lab, bat)
    ref["pcr"] = pcr(X, bat)
    if pre is not None:
        ref["pcr_pre"] = pcr(pre[ok].astype(np.float32), bat)
        ref["pcr_comparison"] = max(0.0, (ref["pcr_pre"] - ref["pcr"]) / ref["pcr_pre"])
    rng = np.random.default_rng(7)
    ca = rng.integers(0, 7, X.shape[0])
    cb = np.where(rng.random(X.shape[0]) < 0.6, lab, rng.integers(0, 9, X.shape[0]))
    write(out, f"{name}_ca.i32", ca, np.int32)
    write(out, f"{name}_cb.i32", cb, np.int32)
    ref["n_labels"] = lab.max() + 1
    ref["nmi_ab"] = normalized_mutual_info_score(ca, cb)
    ref["ari_ab"] = adjusted_rand_score(ca, cb)
    ref["nmi_lb"] = normalized_mutual_info_score(lab, cb)
    ref["ari_lb"] = adjusted_rand_score(lab, cb)
    # Partitions depend on the optimiser and its RNG: the reference is the
    # median over seeds 0..4 of each implementation's scan (metrics.md B2.6).
    for flavor in ("leidenalg", "igraph"):
        runs = np.array([leiden_scan(W, lab, flavor, seed) for seed in range(5)], dtype=float)
        ref[f"{flavor}_nmi"], ref[f"{flavor}_ari"] = np.median(runs[:, 0]), np.median(runs[:, 1])
        ref[f"{flavor}_res"], ref[f"{flavor}_ncl"] = runs[0, 2], runs[0, 3]
        ref[f"{flavor}_nmi_min"], ref[f"{flavor}_nmi_max"] = runs[:, 0].min(), runs[:, 0].max()
    with open(os.path.join(out, f"{name}_ref.txt"), "w") as f:
        for k, v in ref.items():
            f.write(f"{k} {float(v):.17g}\n")


def blobs():
    rng = np.random.default_rng(1)
    n_lab, d = 5, 10
    centres = rng.normal(0, 3, (n_lab, d))
    bshift = rng.normal(0, 0.7, (3, d))
    lab, bat = [], []
    for g in range(n_lab):
        for b in range(3):
            if g == 4 and b > 0:  # label 4 only in batch 0: isolated
                continue
            cnt = int(rng.integers(25, 60))
            lab += [g] * cnt
            bat += [b] * cnt
    lab, bat = np.array(lab), np.array(bat)
    X = centres[lab] + bshift[bat] * 0.5 + rng.normal(0, 1, (len(lab), d))
    pre = centres[lab] + bshift[bat] * 3 + rng.normal(0, 1, (len(lab), d))
    # a singleton label, two NaN rows, a missing label
    X = np.vstack([X, centres[0] + 5.0])
    pre = np.vstack([pre, centres[0] + 5.0])
    lab = np.append(lab, 5)
    bat = np.append(bat, 1)
    X[3, 2] = np.nan
    pre[10, 0] = np.nan
    lab[20] = -1
    return X.astype(np.float32), lab, bat, pre.astype(np.float32)


def overlap():
    """Overlapping blobs: the Leiden scan has a non-trivial optimum."""
    rng = np.random.default_rng(2)
    n_lab, d, n = 8, 12, 800
    centres = rng.normal(0, 0.8, (n_lab, d))
    lab = rng.integers(0, n_lab, n)
    bat = rng.integers(0, 2, n)
    bshift = rng.normal(0, 0.5, (2, d))
    X = centres[lab] + bshift[bat] + rng.normal(0, 1, (n, d))
    return X.astype(np.float32), lab, bat


def harmony(path):
    import csv
    with gzip.open(path, "rt") as f:
        rows = list(csv.reader(f))
    head = rows[0]
    ic, ib = head.index("cell_type"), head.index("dataset")
    pcs = [i for i, h in enumerate(head) if h.startswith("PC")]
    body = rows[1:]
    X = np.array([[float(r[i]) for i in pcs] for r in body], np.float32)
    lab = np.unique([r[ic] for r in body], return_inverse=True)[1]
    bat = np.unique([r[ib] for r in body], return_inverse=True)[1]
    return X, lab, bat


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    X, lab, bat, pre = blobs()
    fixture(out, "blobs", X, lab, bat, pre)
    X, lab, bat = overlap()
    fixture(out, "overlap", X, lab, bat)
    if "--harmony" in sys.argv:
        X, lab, bat = harmony(sys.argv[sys.argv.index("--harmony") + 1])
        fixture(out, "harmony", X, lab, bat)


if __name__ == "__main__":
    main()
