"""Measure the bundled model's cell embeddings on shared files it never saw.

usage: /usr/bin/python3 scripts/eval_default_model.py SHARED_DATA MODEL_DIR RANDOM_MODEL_DIR SCRATCH [sorted]
For each evaluation file: `bmfm embed` with the model and with a randomly
initialised model of the same architecture (same seed, 0 steps), and PCA(50)
of the log-normalized matrix; on each embedding the label ASW (scib: Euclidean
silhouette on the cell-type labels, rescaled (s+1)/2) and the linear probe of
bmfm_reference.md 7.2 (StandardScaler -> LogisticRegression, StratifiedKFold(5,
shuffle, random_state=42), classes with < 10 cells dropped, mean macro F1).
Prints a Markdown table. RANDOM_MODEL_DIR "-" leaves out the random-init and
PCA rows (they do not depend on the trained weights). A fifth argument "short"
measures the sorted and the random order (seed 0) at max-length 128 instead of
sorted/128 and var/1024 (the var order at 1024 tokens costs most of the time on
a loaded machine; the model is trained on random orders of 128 tokens).

Then the cell-type head: `bmfm annotate --order O --max-length 128` (O = sorted
and random with seed 0, the order the model is trained on) on the
two labelled files the model was trained on (95% of their cells were training
cells, so this measures fit, not generalization): exact leaf agreement of
bmfm_pred_cell_type_ontology_term_id with the file's CL ids, the number of
distinct calls and the share of the most frequent call.
"""
import collections
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
ORDERS = (("sorted", "128"), ("random", "128")) if sys.argv[5:6] == ["short"] else (("sorted", "128"), ("var", "1024"))
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
        for order, ml in ORDERS:
            e = embed(path, mdl, f"{name}.{os.path.basename(mdl)}.{order}", ["--order", order, "--max-length", ml])
            rows.append((f"{label}, [CLS], {order} order, max-length {ml}", e))
    for desc, E in rows:
        asw, f1 = metrics(E, y)
        print(f"| {name} | {col} ({len(np.unique(y))}) | {desc} | {E.shape[1]} | {asw:.3f} | {f1:.3f} |", flush=True)

ANNOTATE = ["h5ad/bmfm_zheng68k_165.h5ad", "h5ad/bmfm_cellxgene_placenta_220.h5ad"]
COL = "cell_type_ontology_term_id"
print()
print("| file (trained on) | model | order | leaf agreement | distinct calls | most frequent call |")
print("|---|---|---|---|---|---|")
for rel in ANNOTATE:
    path = os.path.join(data, rel)
    name = os.path.basename(rel)
    for mdl, order in [(m, o) for m in [model] + ([] if random_model == "-" else [random_model])
                       for o in ("sorted", "random")]:
        out = os.path.join(scratch, f"{name}.{os.path.basename(mdl)}.{order}.annot.h5ad")
        subprocess.run(["./bmfm", "annotate", path, "-m", mdl, "-o", out, "-q", "--no-embedding",
                        "--ontology", os.path.join(data, "ontology/cl-basic_2022-12-15.obo"),
                        "--order", order, "--max-length", "128"], check=True)
        obs = anndata.read_h5ad(out).obs
        truth = np.asarray(obs[COL]).astype(str)
        pred = np.asarray(obs["bmfm_pred_" + COL]).astype(str)
        top, n_top = collections.Counter(pred).most_common(1)[0]
        agree = int((truth == pred).sum())
        print(f"| {name} | {mdl} | {order} | {agree}/{len(pred)} = {agree / len(pred):.3f} "
              f"| {len(set(pred))} (truth {len(set(truth))}) | {top} {n_top}/{len(pred)} |", flush=True)
