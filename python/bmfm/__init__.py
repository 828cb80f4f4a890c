"""bmfm - BMFM-RNA inference from Python, through libbmfm.so (no PyTorch).

    import anndata, bmfm
    adata = anndata.read_h5ad("cells.h5ad")
    bmfm.inference(adata, checkpoint="path/to/model_dir")
    adata.obsm["X_bmfm"], adata.obs["bmfm_pred_cell_type_ontology_term_id"]

The signature mirrors bmfm_targets.inference (bmfm_reference.md 6.1): the
AnnData is filled in place (or a copy with copy=True) and returned. The matrix
is handed to the C engine from Python memory (CSR), with no temporary file.
"""
import ctypes

import numpy as np

from . import _lib

__all__ = ["inference"]
__version__ = "0.1"

_BOOL_NORMALIZE = {True: -1, "auto": -1, None: -1, "raw": 1, "force": 1, False: 0}


def _csr(X):
    import scipy.sparse as sp

    if sp.issparse(X):
        X = X.tocsr()
    else:
        X = sp.csr_matrix(np.asarray(X))
    X.sum_duplicates()
    X.sort_indices()
    indptr = np.ascontiguousarray(X.indptr, dtype=np.int64)
    indices = np.ascontiguousarray(X.indices, dtype=np.int32)
    data = np.ascontiguousarray(X.data, dtype=np.float32)
    return X.shape, indptr, indices, data


def _pooling_text(p):
    if p is None:
        return None
    if isinstance(p, (list, tuple)):
        return ",".join(str(x) for x in p)
    return str(p)


def inference(adata, checkpoint, layer=None, embedding_key="X_bmfm",
              prediction_key_prefix="bmfm_pred_", batch_size=8, max_length=1024,
              limit_genes="protein_coding", device="cpu", copy=False, output_dir=None,
              pooling_method=None, log_normalize_transform=True, sequence_order="var",
              seed=0, threads=0, gene_list=None, probabilities=False, progress=False):
    """Embed the cells of `adata` with the model directory `checkpoint` and
    write adata.obsm[embedding_key] and, for every label head of the model,
    adata.obs[prediction_key_prefix + label] (+ "_prob"). Cells with no gene
    in the vocabulary get NaN rows (the reference drops them).

    log_normalize_transform: True (or "auto") normalizes raw counts as the
    released checkpoints expect and passes already log-normalized input
    through (detected from a sample of rows); "raw" forces normalization;
    False always passes values through.
    limit_genes: "protein_coding" (with gene_list = a protein-coding list,
    else the vocabulary, which for the released v2 models is that list) or
    "tokenizer". device, output_dir are accepted for signature compatibility.
    """
    L = _lib.lib()
    if copy:
        adata = adata.copy()
    X = adata.layers[layer] if layer is not None else adata.X
    if X is None:
        raise ValueError("bmfm.inference: the AnnData has no X" if layer is None else
                         f"bmfm.inference: no layer {layer!r}")
    (n_obs, n_vars), indptr, indices, data = _csr(X)
    names = [str(v).encode() for v in adata.var_names]
    c_names = (ctypes.c_char_p * len(names))(*names)

    opt = _lib.InferOptions()
    L.bmfm_infer_options_default(ctypes.byref(opt))
    opt.model_dir = str(checkpoint).encode()
    pt = _pooling_text(pooling_method)
    opt.pooling = pt.encode() if pt else None
    opt.order = str(sequence_order).encode()
    opt.gene_list = str(gene_list).encode() if (gene_list and limit_genes == "protein_coding") else None
    opt.max_length = int(max_length)
    opt.batch_size = int(batch_size)
    opt.seed = int(seed)
    opt.normalize = _BOOL_NORMALIZE[log_normalize_transform]
    opt.threads = int(threads)
    opt.predict = 1
    opt.want_probs = 1 if probabilities else 0
    opt.progress = 1 if progress else 0

    res = ctypes.c_void_p()
    P = ctypes.POINTER
    rc = L.bmfm_infer_csr(ctypes.byref(opt), n_obs, n_vars,
                          indptr.ctypes.data_as(P(ctypes.c_int64)),
                          indices.ctypes.data_as(P(ctypes.c_int32)),
                          data.ctypes.data_as(P(ctypes.c_float)), c_names, ctypes.byref(res))
    if rc != 0:
        raise RuntimeError("bmfm.inference: " + L.bmfm_error_message().decode(errors="replace"))
    try:
        rows, cols = ctypes.c_int64(), ctypes.c_int64()
        emb = L.bmfm_infer_result_embedding(res, ctypes.byref(rows), ctypes.byref(cols))
        adata.obsm[embedding_key] = np.ctypeslib.as_array(emb, shape=(rows.value, cols.value)).copy()
        _put_predictions(L, res, adata, prediction_key_prefix, n_obs, probabilities)
    finally:
        L.bmfm_infer_result_free(res)
    return adata


def _put_predictions(L, res, adata, prefix, n_obs, probabilities):
    import pandas as pd

    for h in range(L.bmfm_infer_result_n_heads(res)):
        k = ctypes.c_int64()
        names = ctypes.POINTER(ctypes.c_char_p)()
        codes = ctypes.POINTER(ctypes.c_int32)()
        prob = ctypes.POINTER(ctypes.c_float)()
        probs = ctypes.POINTER(ctypes.c_float)()
        label = L.bmfm_infer_result_head(res, h, ctypes.byref(k), ctypes.byref(names),
                                         ctypes.byref(codes), ctypes.byref(prob),
                                         ctypes.byref(probs)).decode()
        cats = [names[i].decode() for i in range(k.value)]
        c = np.ctypeslib.as_array(codes, shape=(n_obs,)).copy()
        col = prefix + label
        adata.obs[col] = pd.Categorical.from_codes(c, categories=pd.Index(cats).astype(str)) \
            if len(set(cats)) == len(cats) else [cats[i] if i >= 0 else None for i in c]
        adata.obs[col + "_prob"] = np.ctypeslib.as_array(prob, shape=(n_obs,)).astype(np.float64)
        if probabilities and probs:
            adata.obsm[col + "_probs"] = np.ctypeslib.as_array(probs, shape=(n_obs, k.value)).copy()
