"""Write a 10x Genomics matrix directory from an .h5ad (oracle fixture for test_mtx).

usage: make_10x.py IN.h5ad OUTDIR [--plain] [--legacy] [--max-cells N]
Genes x cells MatrixMarket via scipy.io.mmwrite (integer field when the
values are integers), features.tsv (id, name, type) or legacy genes.tsv
(id, name), barcodes.tsv; gzipped unless --plain. Also writes
OUTDIR.rows.npz-free check data: OUTDIR/../<name>.dense.txt is not written;
the C test compares against the h5ad itself.
"""
import gzip, os, shutil, sys
import anndata as ad
import numpy as np
import scipy.io, scipy.sparse as sp

args = sys.argv[1:]
plain = "--plain" in args
legacy = "--legacy" in args
maxc = None
if "--max-cells" in args:
    maxc = int(args[args.index("--max-cells") + 1])
pos = [a for i, a in enumerate(args) if not a.startswith("--") and (i == 0 or args[i - 1] != "--max-cells")]
src, out = pos[0], pos[1]
a = ad.read_h5ad(src)
if maxc:
    a = a[:maxc].copy()
X = sp.csr_matrix(a.X)
X.eliminate_zeros()
os.makedirs(out, exist_ok=True)
isint = bool(np.all(X.data == np.round(X.data)))
M = X.T.tocoo()
if isint:
    M = sp.coo_matrix((M.data.astype(np.int64), (M.row, M.col)), shape=M.shape)
mpath = os.path.join(out, "matrix.mtx")
scipy.io.mmwrite(mpath, M, field="integer" if isint else "real", precision=9)  # 9 digits round-trip float32
ids = [f"ENSG{i:011d}" for i in range(a.n_vars)]
names = list(a.var_names)
fname = "genes.tsv" if legacy else "features.tsv"
with open(os.path.join(out, fname), "w") as f:
    for i, n in zip(ids, names):
        f.write(f"{i}\t{n}\n" if legacy else f"{i}\t{n}\tGene Expression\n")
with open(os.path.join(out, "barcodes.tsv"), "w") as f:
    for b in a.obs_names:
        f.write(f"{b}\n")
if not plain:
    for n in ("matrix.mtx", fname, "barcodes.tsv"):
        p = os.path.join(out, n)
        with open(p, "rb") as fi, gzip.open(p + ".gz", "wb") as fo:
            shutil.copyfileobj(fi, fo)
        os.remove(p)
print(a.n_obs, a.n_vars, X.nnz)
