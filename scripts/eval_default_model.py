"""Measure the bundled model's cell embeddings on shared files it never saw.

usage: /usr/bin/python3 scripts/eval_default_model.py SHARED_DATA MODEL_DIR RANDOM_MODEL_DIR SCRATCH
For each evaluation file: `bmfm embed` with the model and with a randomly
initialised model of the same architecture (same seed, 0 steps), and PCA(50)
of the log-normalized matrix; on each embedding the label ASW (scib: Euclidean
silhouette on the cell-type labels, rescaled (s+1)/2) and the linear probe of
bmfm_reference.md 7.2 (StandardScaler -> LogisticRegression, StratifiedKFold(5,
shuffle, random_state=42), classes with < 10 cells dropped, mean macro F1).
Prints a Markdown table. RANDOM_MODEL_DIR "-" leaves out the random-init and
PCA rows (they do not depend on the trained weights).
"""
import os
import subprocess
import sys

import anndata
import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, silhouette_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

data, model, random_model, scratch = sys.argv[1:5]
FILES = [("h5ad/scgen_kang_pbmc_ifnb_valid_1975.h5ad", "cell_type"),
         ("h5ad/symphony_pbmcs_3tech_1200.h5ad", "cell_type")]


def probe_f1(X, y):
    keep = np.isin(y, [c for c in np.unique(y) if (y == c).sum() >= 10])
    X, y = X[keep], y[keep]
    f1s = []
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=42).split(X, y):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        clf.fit(X[tr], y[tr])
        f1s.append(f1_score(y[te], clf.predict(X[te]), average="macro"))
    return float(np.mean(f1s))


def metrics(X, y):
    return (silhouette_score(X.astype(np.float64), y) + 1) / 2, probe_f1(X, y)


def embed(path, mdl, tag, extra):
    out = os.path.join(scratch, tag + ".h5ad")
    subprocess.run(["./bmfm", "embed", path, "-m", mdl, "-o", out, "-q"] + extra, check=True)
    return anndata.read_h5ad(out).obsm["X_bmfm"]


print("| file | labels | embedding | dim | label ASW | probe macro F1 |")
print("|---|---|---|---|---|---|")
for rel, col in FILES:
    path = os.path.join(data, rel)
    ad = anndata.read_h5ad(path)
    y = np.asarray(ad.obs[col]).astype(str)
    name = os.path.basename(rel)
    X = ad.X.toarray() if hasattr(ad.X, "toarray") else np.asarray(ad.X)
    rows = [] if random_model == "-" else [("PCA(50) of the log-normalized X", PCA(50, random_state=0).fit_transform(X))]
    models = [(model, "bmfm default model")] + ([] if random_model == "-" else [(random_model, "same architecture, random init")])
    for mdl, label in models:
        for order, ml in (("sorted", "128"), ("var", "1024")):
            e = embed(path, mdl, f"{name}.{os.path.basename(mdl)}.{order}", ["--order", order, "--max-length", ml])
            rows.append((f"{label}, [CLS], {order} order, max-length {ml}", e))
    for desc, E in rows:
        asw, f1 = metrics(E, y)
        print(f"| {name} | {col} ({len(np.unique(y))}) | {desc} | {E.shape[1]} | {asw:.3f} | {f1:.3f} |", flush=True)
