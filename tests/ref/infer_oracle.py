"""infer_oracle.py - the reference inference preprocessing (bmfm_reference.md
sections 0, 1.2, 2.2, 2.3, 6.1), written independently in numpy, and the
reference forward through tests/ref/llama_ref.py on the padded batch.

Subcommands (all write raw little-endian arrays into OUTDIR, one file per
array, so the C tests read them without a parser):

  tokenize H5AD GENES_JSON OUTDIR MAXLEN ORDER NPREFIX
      The CSR of X (int64 indptr, int32 indices, float32 data), the var ->
      token map of a vocabulary made of the 38 protein_coding specials plus the
      gene list (ids 38.. in list order), and the expected sequences: per cell
      its length, token ids and expression values (ORDER = var | sorted).

  vocab GENES_JSON OUTFILE
      Writes that vocabulary as a HF WordLevel tokenizer.json.

  embed MODEL_DIR H5AD OUTDIR MAXLEN POOLING [LAYER]
      Reference embeddings: nonzero genes in var order, kept when in the
      model's vocab (exact match), normalized in float64, padded to MAXLEN
      with [PAD], forward through llama_ref, pooled as the reference's
      get_embeddings_from_outputs; plus every label head's logits.
"""
import json
import os
import sys

import numpy as np

SPECIALS = ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"] + [f"[CLS_{i}]" for i in range(31)] + ["[S]", "[T]"]


def load_vocab_from_list(genes_json):
    genes = json.load(open(genes_json))
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for g in genes:
        if g not in vocab:
            vocab[g] = len(vocab)
    return vocab


def read_csr(h5ad, layer=None):
    import anndata as ad
    import scipy.sparse as sp

    a = ad.read_h5ad(h5ad)
    X = a.layers[layer] if layer else a.X
    X = sp.csr_matrix(X)
    X.sort_indices()
    return a, X


def cell_sequence(idx, vals, var_to_token, maxlen, order, prefix, sep):
    """One cell, as the reference collator builds it."""
    toks, cnts = [], []
    pos = {}
    for j, v in zip(idx, vals):
        t = var_to_token[j]
        if t < 0 or v == 0:
            continue
        if t in pos:
            cnts[pos[t]] += float(v)
        else:
            pos[t] = len(toks)
            toks.append(t)
            cnts.append(float(v))
    if not toks:
        return None
    cnts = np.asarray(cnts, dtype=np.float64)
    toks = np.asarray(toks, dtype=np.int64)
    if order == "sorted":
        perm = sorted(range(len(toks)), key=lambda i: -cnts[i])  # Python sort is stable
        toks, cnts = toks[perm], cnts[perm]
    S = cnts.sum() + 1.0
    x = np.log1p(cnts / S * 10000).astype(np.float32)
    room = maxlen - len(prefix) - 1
    toks, x = toks[:room], x[:room]
    ids = np.concatenate([np.asarray(prefix), toks, [sep]]).astype(np.int32)
    ex = np.concatenate([-(np.asarray(prefix, dtype=np.float32) + 1), x,
                         [-(sep + 1.0)]]).astype(np.float32)
    return ids, ex


def prefix_ids(vocab, nprefix):
    return [vocab["[CLS]"]] + [vocab[f"[CLS_{i}]"] for i in range(nprefix - 1)]


def var_map(var_names, vocab):
    return np.asarray([vocab.get(g, -1) for g in var_names], dtype=np.int32)


def cmd_tokenize(h5ad, genes_json, outdir, maxlen, order, nprefix):
    os.makedirs(outdir, exist_ok=True)
    vocab = load_vocab_from_list(genes_json)
    a, X = read_csr(h5ad)
    m = var_map(list(a.var_names), vocab)
    X.indptr.astype(np.int64).tofile(f"{outdir}/indptr.bin")
    X.indices.astype(np.int32).tofile(f"{outdir}/indices.bin")
    X.data.astype(np.float32).tofile(f"{outdir}/data.bin")
    m.tofile(f"{outdir}/var_to_token.bin")
    prefix = prefix_ids(vocab, nprefix)
    lens, ids, ex = [], [], []
    for i in range(X.shape[0]):
        lo, hi = X.indptr[i], X.indptr[i + 1]
        r = cell_sequence(X.indices[lo:hi], X.data[lo:hi], m, maxlen, order, prefix, vocab["[SEP]"])
        if r is None:
            lens.append(0)
            continue
        lens.append(len(r[0]))
        ids.append(r[0])
        ex.append(r[1])
    np.asarray([X.shape[0], X.shape[1]], dtype=np.int64).tofile(f"{outdir}/shape.bin")
    np.asarray(lens, dtype=np.int64).tofile(f"{outdir}/lens.bin")
    np.concatenate(ids).astype(np.int32).tofile(f"{outdir}/ids.bin")
    np.concatenate(ex).astype(np.float32).tofile(f"{outdir}/expr.bin")


def cmd_vocab(genes_json, outfile):
    vocab = load_vocab_from_list(genes_json)
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}
                         for i, t in enumerate(SPECIALS)],
        "normalizer": None,
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
    }
    os.makedirs(os.path.dirname(outfile) or ".", exist_ok=True)
    json.dump(tok, open(outfile, "w"))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "tokenize":
        cmd_tokenize(args[0], args[1], args[2], int(args[3]), args[4], int(args[5]))
    elif cmd == "vocab":
        cmd_vocab(args[0], args[1])
    else:
        sys.exit(f"unknown subcommand {cmd}")
