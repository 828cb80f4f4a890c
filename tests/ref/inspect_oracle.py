"""Oracle for `bmfm inspect --json` (test_inspect): anndata's view of each file.

usage: inspect_oracle.py OUTDIR FILE.h5ad...   writes OUTDIR/<basename>.json with
n_obs, n_vars, layers, obsm keys, has_raw, var column names, and per obs column:
kind (categorical / string / numeric / bool), n_categories (categorical),
n_distinct (string), value counts of the 5 most frequent values.
"""
import json, os, sys, warnings
import anndata as ad
import pandas as pd

warnings.filterwarnings("ignore")
out = sys.argv[1]
for path in sys.argv[2:]:
    a = ad.read_h5ad(path)
    cols = {}
    for c in a.obs.columns:
        s = a.obs[c]
        d = {}
        if isinstance(s.dtype, pd.CategoricalDtype):
            d["kind"] = "categorical"
            d["n_categories"] = len(s.cat.categories)
        elif s.dtype == bool:
            d["kind"] = "bool"
        elif pd.api.types.is_numeric_dtype(s):
            d["kind"] = "numeric"
        else:
            d["kind"] = "string"
            d["n_distinct"] = int(s.nunique(dropna=True))
        if d["kind"] in ("categorical", "string"):
            vc = s.astype(object).value_counts(dropna=True)
            d["top_counts"] = sorted((int(x) for x in vc.values), reverse=True)[:5]
            d["top_value"] = str(vc.index[0]) if len(vc) else None
            d["n_missing"] = int(s.isna().sum())
        cols[c] = d
    res = {
        "n_obs": int(a.n_obs), "n_vars": int(a.n_vars),
        "layers": sorted(a.layers.keys()), "obsm": sorted(a.obsm.keys()),
        "has_raw": a.raw is not None,
        "var_columns": list(a.var.columns), "obs_columns": cols,
        "var_names_head": [str(x) for x in a.var_names[:3]],
    }
    json.dump(res, open(os.path.join(out, os.path.basename(path) + ".json"), "w"), indent=1)
