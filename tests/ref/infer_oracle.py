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

  make GENES_JSON H5AD MODEL_DIR VARIANT [C NL NH]
      A model directory with random weights and the released tensor names
      (tests/ref/llama_ref.py, small sizes), the vocabulary of the gene list
      in tokenizers/genes/tokenizer.json with the checkpoint's post-processor
      template, and checkpoint_metadata.json whose label_dict names the
      classes (the ontology head's classes are the sorted CL ids of H5AD).
      VARIANT 47m: [CLS_0..3] prepended, heads read positions 1, 2, 4;
      32m: heads read the pooler. Default sizes C=64, 2 layers, 4 heads
      (384 12 12 is the released 47M/32M encoder).

  subset H5AD OUT N
      The first N cells of H5AD (benchmarks).

  bench_torch MODEL_DIR H5AD MAXLEN NCELLS BATCH [THREADS]
      Cells/s of the reference behaviour: the first NCELLS cells, padded to
      MAXLEN, encoder + pooler + label heads in PyTorch eager (the field
      decoders, which the reference also evaluates at every position, are
      left out, which favours PyTorch).

  embed MODEL_DIR H5AD OUTDIR MAXLEN [LAYER]
      Reference embeddings: nonzero genes in var order, kept when in the
      model's vocab (exact match), normalized in float64, padded to MAXLEN
      with [PAD], forward through llama_ref, pooled as the reference's
      get_embeddings_from_outputs (first_token, mean_pooling, pooling_layer,
      index 1 and 2), plus every label head's logits. Cells without a kept
      gene are dropped, as the reference does; rows.bin lists the kept rows.

  variants H5AD OUTDIR
      Derived inputs for row-alignment and bad-input tests: empty_rows.h5ad
      (rows 5, 17 and 100 keep only genes outside the vocabulary),
      no_overlap.h5ad, no_x.h5ad, lognorm.h5ad (X = log1p(CP10k),
      layers["counts"] = the raw counts).

  readback H5AD KEY OUTFILE
      python anndata reads an output file; obsm[KEY] goes to OUTFILE (float32).

  check_annotate H5AD LOGITS_BIN INPUT
      Checks the obs/obsm columns `bmfm annotate` wrote against the
      reference logits of the ontology head (argmax leaf, probabilities).

  pyapi MODEL_DIR H5AD REFDIR MAXLEN
      The Python module: bmfm.inference(adata, ...) fills obsm and obs in
      place; compared with the reference embeddings and logits in REFDIR.
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


def _llama_ref():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import llama_ref

    return llama_ref


def cmd_make(genes_json, h5ad, mdir, variant, C=64, NL=2, NH=4, seed=3):
    import anndata as ad

    lr = _llama_ref()
    vocab = load_vocab_from_list(genes_json)
    V = len(vocab)
    c = lr.Cfg(C, NL, NH, V, 36, variant)
    cl_ids = sorted(set(map(str, ad.read_h5ad(h5ad, backed="r").obs["cell_type_ontology_term_id"])))
    if variant == "47m":
        c.labels = [("cell_type_ontology_term_id", len(cl_ids), 1, 0.0), ("tissue", 4, 2, 0.0), ("sex", 3, 4, 0.0)]
    else:
        c.labels = [("cell_type_ontology_term_id", len(cl_ids), None, 0.0), ("donor_id", 6, None, 1.0)]
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(mdir, "tokenizers", "genes"), exist_ok=True)
    lr.st_write(os.path.join(mdir, "model.safetensors"), lr.random_params(c, rng))
    cfg = lr.config_json(c)
    for lc in cfg["label_columns"]:
        if lc["label_column_name"] == "cell_type_ontology_term_id":
            lc["label_ontology"] = "celltypeont"
    json.dump(cfg, open(os.path.join(mdir, "config.json"), "w"), indent=2)
    label_dict = {}
    for name, k, _, _ in c.labels:
        names = cl_ids if name == "cell_type_ontology_term_id" else ["%s_%d" % (name, i) for i in range(k)]
        label_dict[name] = {v: i for i, v in enumerate(names)}
    meta = {"hyper_parameters": {"label_dict": label_dict},
            "trainer_config": {"pooling_method": 1 if variant == "47m" else "pooling_layer"}}
    json.dump(meta, open(os.path.join(mdir, "checkpoint_metadata.json"), "w"), indent=2)
    prefix = ["[CLS]"] + ["[CLS_%d]" % i for i in range(c.n_prepend - 1)]
    tok = os.path.join(mdir, "tokenizers", "genes", "tokenizer.json")
    cmd_vocab(genes_json, tok)
    t = json.load(open(tok))
    sp = lambda x: {"SpecialToken": {"id": x, "type_id": 0}}
    t["post_processor"] = {"type": "TemplateProcessing",
                           "single": [sp(x) for x in prefix] + [{"Sequence": {"id": "A", "type_id": 0}}, sp("[SEP]")],
                           "pair": [], "special_tokens": {x: {"id": x, "ids": [vocab[x]], "tokens": [x]}
                                                          for x in prefix + ["[SEP]"]}}
    json.dump(t, open(tok, "w"))


def model_cfg(mdir):
    """A llama_ref.Cfg from a model directory's config.json."""
    lr = _llama_ref()
    cfg = json.load(open(os.path.join(mdir, "config.json")))
    n_special = cfg["fields"][1]["num_special_tokens"]
    variant = "47m" if "wced" in (cfg["fields"][1]["decode_modes"] or {}) else "32m"
    c = lr.Cfg(cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["vocab_size"],
               n_special, variant)
    c.labels = [(lc["label_column_name"], lc["n_unique_values"], lc["decode_from"],
                 lc["gradient_reversal_coefficient"] or 0.0) for lc in cfg["label_columns"]]
    c.wced = c.mlm = False  # field decoders play no part in embeddings or label logits (and the
    return lr, c            # reference's all-position WCED projection would dominate the run)


def cmd_embed(mdir, h5ad, outdir, maxlen, layer=None, batch=8):
    import torch

    os.makedirs(outdir, exist_ok=True)
    lr, c = model_cfg(mdir)
    tok = json.load(open(os.path.join(mdir, "tokenizers", "genes", "tokenizer.json")))
    vocab = tok["model"]["vocab"]
    single = tok["post_processor"]["single"]
    prefix = [vocab[x["SpecialToken"]["id"]] for x in single[:-2]]
    sep = vocab["[SEP]"]
    P = {k: torch.tensor(v) for k, v in lr.st_read(os.path.join(mdir, "model.safetensors")).items()}
    a, X = read_csr(h5ad, layer)
    m = var_map(list(a.var_names), vocab)
    rows, seqs = [], []
    for i in range(X.shape[0]):
        lo, hi = X.indptr[i], X.indptr[i + 1]
        r = cell_sequence(X.indices[lo:hi], X.data[lo:hi], m, maxlen, "var", prefix, sep)
        if r is not None:  # the reference drops cells without counts left
            rows.append(i)
            seqs.append(r)
    outs = {k: [] for k in ("first_token", "mean_pooling", "pooling_layer", "index1", "index2")}
    logits = {name: [] for name, _, _, _ in c.labels}
    with torch.no_grad():
        for b0 in range(0, len(seqs), batch):
            part = seqs[b0:b0 + batch]
            B = len(part)
            ids = np.full((B, maxlen), c.pad, dtype=np.int64)   # padding="max_length"
            ex = np.full((B, maxlen), -(c.pad + 1.0), dtype=np.float32)
            mask = np.zeros((B, maxlen), dtype=np.int64)
            for b, (i_, e_) in enumerate(part):
                ids[b, :len(i_)] = i_
                ex[b, :len(e_)] = e_
                mask[b, :len(i_)] = 1
            o = lr.forward(c, P, torch.tensor(ids), torch.tensor(ex), torch.tensor(mask))
            z = o["z"]
            outs["first_token"].append(z[:, 0].numpy())
            m1 = torch.tensor(mask, dtype=torch.float32)
            m1[:, 0] = 0
            outs["mean_pooling"].append(((z * m1[..., None]).sum(1) / m1.sum(1, keepdim=True)).numpy())
            outs["pooling_layer"].append(o["pool"].numpy())
            outs["index1"].append(z[:, 1].numpy())
            outs["index2"].append(z[:, 2].numpy())
            for name in logits:
                logits[name].append(o["logits"][name].numpy())
    np.asarray(rows, dtype=np.int64).tofile(f"{outdir}/rows.bin")
    for k, v in outs.items():
        np.concatenate(v).astype(np.float32).tofile(f"{outdir}/{k}.bin")
    for k, v in logits.items():
        np.concatenate(v).astype(np.float32).tofile(f"{outdir}/logits.{k}.bin")


def cmd_variants(h5ad, outdir, genes_json):
    import anndata as ad
    import scipy.sparse as sp

    os.makedirs(outdir, exist_ok=True)
    vocab = load_vocab_from_list(genes_json)
    a = ad.read_h5ad(h5ad)
    X = sp.csr_matrix(a.X).tolil()
    invocab = np.asarray([g in vocab for g in a.var_names])
    for r in (5, 17, 100):
        row = X[r].toarray().ravel()
        row[invocab] = 0
        X[r] = row
    b = a.copy()
    b.X = sp.csr_matrix(X, dtype=np.float32)
    b.X.eliminate_zeros()
    b.write_h5ad(f"{outdir}/empty_rows.h5ad")
    c = a.copy()
    c.var_names = ["NOTAGENE%d" % i for i in range(c.n_vars)]
    c.write_h5ad(f"{outdir}/no_overlap.h5ad")
    d = ad.AnnData(obs=a.obs.copy(), var=a.var.copy())
    d.write_h5ad(f"{outdir}/no_x.h5ad")
    e = a.copy()
    C = sp.csr_matrix(a.X, dtype=np.float64)
    s = np.asarray(C.sum(1)).ravel()
    L = sp.diags(1e4 / s) @ C
    L.data = np.log1p(L.data)
    e.layers["counts"] = sp.csr_matrix(a.X, dtype=np.float32)
    e.X = sp.csr_matrix(L, dtype=np.float32)
    e.write_h5ad(f"{outdir}/lognorm.h5ad")


def cmd_bench_torch(mdir, h5ad, maxlen, ncells, batch, threads=0):
    import time

    import torch

    if threads > 0:
        torch.set_num_threads(threads)

    lr, c = model_cfg(mdir)
    tok = json.load(open(os.path.join(mdir, "tokenizers", "genes", "tokenizer.json")))
    vocab = tok["model"]["vocab"]
    single = tok["post_processor"]["single"]
    prefix = [vocab[x["SpecialToken"]["id"]] for x in single[:-2]]
    P = {k: torch.tensor(v) for k, v in lr.st_read(os.path.join(mdir, "model.safetensors")).items()}
    a, X = read_csr(h5ad)
    m = var_map(list(a.var_names), vocab)
    seqs = []
    for i in range(min(ncells, X.shape[0])):
        lo, hi = X.indptr[i], X.indptr[i + 1]
        r = cell_sequence(X.indices[lo:hi], X.data[lo:hi], m, maxlen, "var", prefix, vocab["[SEP]"])
        if r is not None:
            seqs.append(r)
    ntok = sum(len(s[0]) for s in seqs)
    t0 = time.time()
    with torch.no_grad():
        for b0 in range(0, len(seqs), batch):
            part = seqs[b0:b0 + batch]
            ids = np.full((len(part), maxlen), c.pad, dtype=np.int64)
            ex = np.full((len(part), maxlen), -(c.pad + 1.0), dtype=np.float32)
            mask = np.zeros((len(part), maxlen), dtype=np.int64)
            for b, (i_, e_) in enumerate(part):
                ids[b, :len(i_)], ex[b, :len(e_)], mask[b, :len(i_)] = i_, e_, 1
            lr.forward(c, P, torch.tensor(ids), torch.tensor(ex), torch.tensor(mask))
    dt = time.time() - t0
    print(f"torch_cells {len(seqs)} real_tokens {ntok} seconds {dt:.2f} cells_per_s {len(seqs) / dt:.3f} "
          f"threads {torch.get_num_threads()}")


def cmd_readback(h5ad, key, outfile):
    import anndata as ad

    a = ad.read_h5ad(h5ad)
    np.ascontiguousarray(a.obsm[key], dtype=np.float32).tofile(outfile)


def softmax(z):
    z = z.astype(np.float64)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def cmd_check_annotate(h5ad, logits_bin, inp):
    import anndata as ad

    a = ad.read_h5ad(h5ad)
    src = ad.read_h5ad(inp)
    classes = sorted(set(map(str, src.obs["cell_type_ontology_term_id"])))
    z = np.fromfile(logits_bin, dtype=np.float32).reshape(a.n_obs, len(classes))
    p = softmax(z)
    col = "bmfm_pred_cell_type_ontology_term_id"
    want = [classes[k] for k in p.argmax(1)]
    got = list(map(str, a.obs[col]))
    assert got == want, "leaf calls differ"
    assert a.obs[col].dtype.name == "category"
    assert np.allclose(a.obs[col + "_prob"], p.max(1), rtol=1e-5, atol=1e-6)
    P = a.obsm[col + "_probs"]
    assert P.shape == p.shape and np.allclose(P, p, rtol=1e-5, atol=1e-6)
    for suffix in ("_name", "_greedy", "_call", "_call_name", "_level2", "_coarse"):
        assert col + suffix in a.obs, col + suffix
    names = set(map(str, a.obs[col + "_name"]))
    assert all(not n.startswith("CL:") for n in names), names  # every leaf id has a name in cl-basic
    cp = np.asarray(a.obs[col + "_call_prob"], dtype=np.float64)
    called = a.obs[col + "_call"].notna().to_numpy()
    assert np.all(cp[called] >= 0.3 - 1e-6) and np.all(np.isnan(cp[~called]))
    coarse = set(a.obs[col + "_coarse"].dropna().astype(str))
    assert coarse <= {"T cell", "monocyte"}, coarse
    for head in ("tissue", "sex"):
        v = set(map(str, a.obs["bmfm_pred_" + head]))
        assert all(x.startswith(head + "_") for x in v), v
    assert a.obsm["X_bmfm"].shape == (a.n_obs, 64)  # the checkpoint's pooling_method (index 1)
    print("annotate output ok:", len(names), "leaf names,", called.sum(), "cells called at tau 0.3")


def cmd_pyapi(mdir, h5ad, refdir, maxlen):
    import anndata as ad
    import bmfm

    a = ad.read_h5ad(h5ad)
    obs_before = list(a.obs.columns)
    ret = bmfm.inference(a, checkpoint=mdir, pooling_method=["first_token", "mean_pooling", 2],
                         batch_size=4, max_length=maxlen)
    assert ret is a, "fills the AnnData in place and returns it"
    E = a.obsm["X_bmfm"]
    assert E.shape == (a.n_obs, 3 * 64) and E.dtype == np.float32
    for k, name in enumerate(["first_token", "mean_pooling", "index2"]):
        ref = np.fromfile(f"{refdir}/{name}.bin", dtype=np.float32).reshape(-1, 64)
        err = np.abs(E[:, 64 * k:64 * (k + 1)] - ref).max() / np.abs(ref).max()
        print(f"python {name}: max scaled err {err:.2e}")
        assert err <= 1e-5
    for head in ("cell_type_ontology_term_id", "tissue", "sex"):
        z = np.fromfile(f"{refdir}/logits.{head}.bin", dtype=np.float32).reshape(a.n_obs, -1)
        col = "bmfm_pred_" + head
        cats = list(a.obs[col].cat.categories)
        assert [cats.index(str(v)) for v in a.obs[col]] == list(z.argmax(1)), head
        assert np.allclose(a.obs[col + "_prob"], softmax(z).max(1), rtol=1e-5, atol=1e-6)
    assert obs_before == [c for c in a.obs.columns if not c.startswith("bmfm_pred_")]
    # a copy leaves the input alone; a dense layer goes through the same path
    b = ad.read_h5ad(h5ad)
    b.layers["dense"] = b.X.toarray()
    c = bmfm.inference(b, checkpoint=mdir, layer="dense", copy=True, embedding_key="E",
                       pooling_method="first_token", max_length=maxlen)
    assert "E" not in b.obsm and np.array_equal(c.obsm["E"], E[:, :64])
    try:
        bmfm.inference(b, checkpoint=mdir + "/nonexistent")
        raise AssertionError("no error for a missing model")
    except RuntimeError as e:
        assert "not a model directory" in str(e), e
    print("python api ok")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "tokenize":
        cmd_tokenize(args[0], args[1], args[2], int(args[3]), args[4], int(args[5]))
    elif cmd == "vocab":
        cmd_vocab(args[0], args[1])
    elif cmd == "make":
        sizes = [int(x) for x in args[4:7]] if len(args) >= 7 else [64, 2, 4]
        cmd_make(args[0], args[1], args[2], args[3], *sizes)
    elif cmd == "subset":
        import anndata as ad
        ad.read_h5ad(args[0])[: int(args[2])].copy().write_h5ad(args[1])
    elif cmd == "bench_torch":
        cmd_bench_torch(args[0], args[1], int(args[2]), int(args[3]), int(args[4]),
                        int(args[5]) if len(args) > 5 else 0)
    elif cmd == "embed":
        cmd_embed(args[0], args[1], args[2], int(args[3]), args[4] if len(args) > 4 else None)
    elif cmd == "variants":
        cmd_variants(args[0], args[1], args[2])
    elif cmd == "readback":
        cmd_readback(args[0], args[1], args[2])
    elif cmd == "check_annotate":
        cmd_check_annotate(args[0], args[1], args[2])
    elif cmd == "pyapi":
        cmd_pyapi(args[0], args[1], args[2], int(args[3]))
    else:
        sys.exit(f"unknown subcommand {cmd}")
