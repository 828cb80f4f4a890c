"""Oracle for the gene resolver and coverage report (test_vocab, test_inspect).

usage: gene_coverage.py FILE.h5ad VOCAB OUT.json [--var-column COL] [--table-dir DIR] [--exact] [--top N]
VOCAB: a JSON list of genes, or a HF tokenizer.json. Semantics (independent
re-implementation of src/data/vocab.c): exact symbol match to non-special
tokens, then case-insensitive (ambiguous upper-case forms never match);
Ensembl ids (more than 8 of the first 10 names look like ENSG/ENSMUSG + digit)
are first mapped to symbols with the CELLxGENE table, version suffix removed.
Coverage: per cell, sum of positive values on matched genes / sum of positive
values; cells with no positive value are left out.
"""
import glob, gzip, json, re, sys
import anndata as ad
import numpy as np
import scipy.sparse as sp

args = sys.argv[1:]
def opt(name, default=None):
    if name in args:
        i = args.index(name)
        v = args[i + 1]
        del args[i:i + 2]
        return v
    return default
col = opt("--var-column")
table_dir = opt("--table-dir")
top_n = int(opt("--top", "10"))
exact_only = "--exact" in args
if exact_only:
    args.remove("--exact")
path, vocab_path, out = args

v = json.load(open(vocab_path))
if isinstance(v, list):
    tokens = {t: i for i, t in enumerate(v)}
    special = set()
else:
    tokens = dict(v["model"]["vocab"])
    for a in v.get("added_tokens", []):
        tokens.setdefault(a["content"], a["id"])
    special = {t for t in tokens if len(t) >= 3 and t.startswith("[") and t.endswith("]")}
    special |= {a["content"] for a in v.get("added_tokens", []) if a.get("special")}
upper = {}
for t, i in sorted(tokens.items(), key=lambda x: x[1]):
    if t in special:
        continue
    u = t.upper()
    if u in upper and upper[u] != i:
        upper[u] = None
    else:
        upper.setdefault(u, i)

a = ad.read_h5ad(path)
names = [str(x) for x in (a.var[col] if col else a.var_names)]
ens_re = re.compile(r"^(ENSG|ENSMUSG)\d")
look = names[:10]
ensembl = len(look) > 0 and sum(bool(ens_re.match(n)) for n in look) * 10 > len(look) * 8
unknown = 0
if ensembl:
    first = next(n for n in names if ens_re.match(n))
    species = "mus_musculus" if first.startswith("ENSMUSG") else "homo_sapiens"
    tpath = glob.glob(f"{table_dir}/cellxgene_genes_{species}*.csv*")[0]
    table = {}
    for line in gzip.open(tpath, "rt"):
        f = line.rstrip("\n").split(",")
        table.setdefault(f[0].split(".")[0], f[1])
    sym = []
    for n in names:
        s = table.get(n.split(".")[0])
        unknown += s is None
        sym.append(s)
else:
    sym = names
ids, how = [], []
for s in sym:
    if s is not None and s in tokens and s not in special:
        ids.append(tokens[s]); how.append("exact")
    elif s is not None and not exact_only and upper.get(s.upper()) is not None:
        ids.append(upper[s.upper()]); how.append("case")
    else:
        ids.append(-1); how.append("none")
ids = np.array(ids)
X = sp.csr_matrix(a.X, dtype=np.float64)
Xp = X.copy()
Xp.data[Xp.data < 0] = 0
tot = np.asarray(Xp.sum(axis=1)).ravel()
cov = np.asarray(Xp[:, ids >= 0].sum(axis=1)).ravel()
ok = tot > 0
frac = cov[ok] / tot[ok]
gene_tot = np.asarray(Xp.sum(axis=0)).ravel()
un = [g for g in range(len(names)) if ids[g] < 0 and gene_tot[g] > 0]
un.sort(key=lambda g: (-gene_tot[g], g))
from collections import Counter
cnt = Counter(int(i) for i in ids if i >= 0)
dups = {i: c for i, c in cnt.items() if c > 1}
res = {
    "n_genes": len(names), "ensembl": bool(ensembl), "ensembl_unknown": unknown,
    "matched": int((ids >= 0).sum()), "exact": how.count("exact"), "case_insensitive": how.count("case"),
    "unmatched": int((ids < 0).sum()),
    "cells": int(a.n_obs), "empty_cells": int((~ok).sum()),
    "mean": float(frac.mean()) if len(frac) else 0.0, "median": float(np.median(frac)) if len(frac) else 0.0,
    "min": float(frac.min()) if len(frac) else 0.0, "max": float(frac.max()) if len(frac) else 0.0,
    "total": float(tot.sum()), "covered": float(cov.sum()),
    "top_unmatched": [str(a.var_names[g]) for g in un[:top_n]],
    "top_totals": [float(gene_tot[g]) for g in un[:top_n]],
    "dup_vocab_genes": len(dups), "dup_dataset_genes": int(sum(dups.values())),
}
json.dump(res, open(out, "w"), indent=1)
