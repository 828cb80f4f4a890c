#!/usr/bin/env python3
"""probe_oracle.py - sklearn reference for src/eval/probe.c (tests/test_probe.c).

Usage: probe_oracle.py IN.bin OUT.txt
       probe_oracle.py dump IN.h5ad OBSM_KEY LABEL_COL OUT.bin
         (writes int64 n, int64 d, float32 obsm[KEY], int32 label codes (-1 missing),
          so the C test can make its folds for a real file's embedding)

IN.bin (little endian): int64 n, int64 d, int64 k_knn, float32 emb[n*d], int32 label[n],
int32 fold[n] (-1 = dropped). The folds are the ones bmfm_probe_folds() made, so
sklearn trains and tests on exactly the same cells. Per fold, as cz-benchmarks:
Pipeline[StandardScaler(with_mean=False), LogisticRegression()] and
[StandardScaler(with_mean=False), KNeighborsClassifier(k)], f1_score(average="macro")
and accuracy. Also a fit on all kept cells (scaled) whose objective
sum(log-loss) + 0.5*||W||^2 and coefficients are written for comparison.

OUT.txt lines: "lr_f1 <per fold...>", "lr_acc ...", "knn_f1 ...", "knn_acc ...",
"full_loss x", "full_rows r", "full_coef <r*(d+1) values, each row d weights then intercept>".
"""
import sys
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

warnings.filterwarnings("ignore")


def objective(clf, X, y):
    raw = X @ clf.coef_.T + clf.intercept_
    if raw.shape[1] == 1:
        r = raw[:, 0]
        t = (y == clf.classes_[1]).astype(float)
        loss = np.sum(np.logaddexp(0, r) - t * r)
    else:
        idx = np.searchsorted(clf.classes_, y)
        m = raw.max(axis=1, keepdims=True)
        lse = (m + np.log(np.exp(raw - m).sum(axis=1, keepdims=True)))[:, 0]
        loss = np.sum(lse - raw[np.arange(len(y)), idx])
    return loss + 0.5 * np.sum(clf.coef_ ** 2)


def dump(path, key, col, out):
    import anndata
    ad = anndata.read_h5ad(path)
    X = np.asarray(ad.obsm[key], dtype="<f4")
    codes = ad.obs[col].astype("category").cat.codes.values.astype("<i4")
    with open(out, "wb") as f:
        np.array(X.shape, dtype="<i8").tofile(f)
        X.tofile(f)
        codes.tofile(f)


def main():
    if sys.argv[1] == "dump":
        dump(*sys.argv[2:6])
        return
    buf = open(sys.argv[1], "rb").read()
    n, d, k = np.frombuffer(buf[:24], dtype="<i8")
    off = 24
    emb = np.frombuffer(buf[off:off + 4 * n * d], dtype="<f4").reshape(n, d).astype(np.float64)
    off += 4 * n * d
    lab = np.frombuffer(buf[off:off + 4 * n], dtype="<i4")
    off += 4 * n
    fold = np.frombuffer(buf[off:off + 4 * n], dtype="<i4")
    keep = fold >= 0
    out = {"lr_f1": [], "lr_acc": [], "knn_f1": [], "knn_acc": []}
    for f in sorted(set(fold[keep].tolist())):
        tr, te = keep & (fold != f), fold == f
        sc = StandardScaler(with_mean=False).fit(emb[tr])
        Xtr, Xte = sc.transform(emb[tr]), sc.transform(emb[te])
        lr = LogisticRegression().fit(Xtr, lab[tr])
        p = lr.predict(Xte)
        out["lr_f1"].append(f1_score(lab[te], p, average="macro"))
        out["lr_acc"].append(accuracy_score(lab[te], p))
        kn = KNeighborsClassifier(n_neighbors=int(k)).fit(Xtr, lab[tr])
        p = kn.predict(Xte)
        out["knn_f1"].append(f1_score(lab[te], p, average="macro"))
        out["knn_acc"].append(accuracy_score(lab[te], p))
    X = StandardScaler(with_mean=False).fit_transform(emb[keep])
    y = lab[keep]
    lr = LogisticRegression(tol=1e-8, max_iter=10000).fit(X, y)
    with open(sys.argv[2], "w") as fh:
        for key, v in out.items():
            fh.write(key + " " + " ".join("%.17g" % x for x in v) + "\n")
        fh.write("full_loss %.17g\n" % objective(lr, X, y))
        coef = np.hstack([lr.coef_, lr.intercept_[:, None]])
        fh.write("full_rows %d\n" % coef.shape[0])
        fh.write("full_coef " + " ".join("%.17g" % x for x in coef.ravel()) + "\n")


if __name__ == "__main__":
    main()
