#!/usr/bin/env python3
"""llama_ref.py - PyTorch oracle of the BMFM-RNA v2 bidirectional LLaMA encoder
and its heads, written from bmfm_reference.md (sections 2.6, 3.1, 3.2, 4.1,
4.2, 4.5, 4.6), for the C parity tests (tests/test_model.c) and the encoder
benchmark (bench/encoder_torch.py imports it).

    llama_ref.py make OUTDIR --variant 47m|32m [--seed S]
        writes OUTDIR/model/{config.json, model.safetensors,
        checkpoint_metadata.json} with random weights (released tensor names),
        a padded batch of cells of mixed lengths, runs forward + backward, and
        writes OUTDIR/ref.safetensors: inputs (packed), every hidden state,
        embeddings, head outputs, losses and all parameter gradients.
    llama_ref.py corrupt MODELDIR OUTDIR missing|shape|dtype|extra
        copies a model directory with one broken tensor.

The model runs padded with a key-padding mask (additive finfo.min), the C
engine packed; the dump is packed (real tokens only) so both compare row by
row. Safetensors are read/written with numpy + json (no safetensors module).
"""
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------- safetensors
DT = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def st_write(path, tensors, dtypes=None):
    dtypes = dtypes or {}
    hdr, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, arr in tensors.items():
        dt = dtypes.get(name, "F32")
        a = np.ascontiguousarray(np.asarray(arr, dtype=DT[dt]))
        b = a.tobytes()
        hdr[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def st_read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data[b:e], dtype=DT[v["dtype"]]).reshape(v["shape"]).copy()
    return out


# ---------------------------------------------------------------- the model
def mlp_width(C):
    return (int(2 * 4 * C / 3) + 255) // 256 * 256


class Cfg:
    def __init__(self, C, NL, NH, V, n_special, variant):
        self.C, self.NL, self.NH, self.V, self.n_special = C, NL, NH, V, n_special
        self.F = mlp_width(C)
        self.NB = 48
        self.basis_scale = 0.01
        self.variant = variant
        self.wced = variant == "47m"
        self.mlm = variant in ("32m", "mlp")
        self.mlp_encoder = variant == "mlp"  # v1 "mlp_with_special_token_embedding"
        self.H1 = 128
        self.pad = 2
        if variant == "47m":  # raw [CLS_k] routing, no GRL
            self.labels = [("cell_type_ontology_term_id", 5, 1, 0.0), ("tissue", 4, 2, 0.0), ("sex", 3, 4, 0.0)]
            self.n_prepend = 5
        else:  # pooler heads, GRL on donor_id (32m; "mlp" = the same with the v1 MLP encoder)
            self.labels = [("cell_type_ontology_term_id", 5, None, 0.0), ("donor_id", 6, None, 1.0)]
            self.n_prepend = 1


def param_shapes(c):
    P = "model."
    E = P + "core.encoder.embeddings."
    X = E + "expressions_embeddings."
    s = {E + "genes_embeddings.weight": (c.V, c.C)}
    if c.mlp_encoder:
        s[X + "special_token_embeddings.weight"] = (c.n_special + 1, c.H1)
        s[X + "dense_1.weight"] = (c.H1, 1)
        s[X + "dense_1.bias"] = (c.H1,)
        s[X + "dense_2.weight"] = (c.C, c.H1)
        s[X + "dense_2.bias"] = (c.C,)
    else:
        s[X + "special_token_embeddings.weight"] = (c.n_special + 1, c.C)
        s[X + "basis"] = (c.NB,)
        s[X + "dense.weight"] = (c.C, 2 * c.NB)
    s[E + "LayerNorm.weight"] = (c.C,)
    s[E + "LayerNorm.bias"] = (c.C,)
    for l in range(c.NL):
        b = P + "core.encoder.blocks.%d." % l
        s[b + "attn.c_attn.weight"] = (3 * c.C, c.C)
        s[b + "attn.proj.weight"] = (c.C, c.C)
        if l > 0:
            s[b + "rms_1.scale"] = (c.C,)
        s[b + "rms_2.scale"] = (c.C,)
        s[b + "mlp.c_fc1.weight"] = (c.F, c.C)
        s[b + "mlp.c_fc2.weight"] = (c.F, c.C)
        s[b + "mlp.c_proj.weight"] = (c.C, c.F)
    s[P + "core.pooler.dense.weight"] = (c.C, c.C)
    s[P + "core.pooler.dense.bias"] = (c.C,)
    H = P + "cls.predictions.predictions."
    s[H + "transform.dense.weight"] = (c.C, c.C)
    s[H + "transform.dense.bias"] = (c.C,)
    s[H + "transform.LayerNorm.weight"] = (c.C,)
    s[H + "transform.LayerNorm.bias"] = (c.C,)
    D = H + "decoder.field_decoders.expressions_"
    if c.wced:
        s[D + "wced.weight"] = (2 * c.V, c.C)
        s[D + "wced.bias"] = (2 * c.V,)
    if c.mlm:
        for k in ("regression", "is_zero"):
            s[D + k + ".weight"] = (1, c.C)
            s[D + k + ".bias"] = (1,)
    for name, k, _, grl in c.labels:
        sub = "decoder.1" if grl else "decoder"
        L = P + "cls.label_predictions.predictions.label_decoders.%s.%s." % (name, sub)
        s[L + "weight"] = (k, c.C)
        s[L + "bias"] = (k,)
    return s


def random_params(c, rng):
    """Random but well-scaled weights: nonzero biases, norms near 1."""
    out = {}
    for name, shape in param_shapes(c).items():
        if name.endswith(".basis"):
            b0 = np.float32(2 * math.pi * c.basis_scale)
            out[name] = np.array([b0 * np.float32(2.0 ** k) for k in range(c.NB)], dtype=np.float32)
        elif "embeddings.weight" in name and "LayerNorm" not in name:
            w = rng.standard_normal(shape).astype(np.float32)
            w[c.pad] = 0
            out[name] = w
        elif name.endswith(".scale") or name.endswith("LayerNorm.weight"):
            out[name] = (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        elif name.endswith(".bias"):
            out[name] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            bound = 1 / math.sqrt(shape[1])
            out[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
    return out


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.alpha * g, None


def forward(c, P, gene_ids, expr, mask, wced_all_positions=True):
    """Padded forward. Returns a dict of tensors (hidden states, heads).
    wced_all_positions: decode every position as the reference does (only
    position 0 is used); False decodes position 0 only (the benchmark)."""
    E = "model.core.encoder.embeddings."
    X = E + "expressions_embeddings."
    B, L = gene_ids.shape
    # multifield embedding: gene table + ScaleAdapt expression encoder
    e_gene = F.embedding(gene_ids, P[E + "genes_embeddings.weight"], padding_idx=c.pad)
    special = expr <= 0
    idx = torch.where(expr == 0, torch.full_like(expr, c.n_special), -(expr.to(torch.int64).to(expr.dtype) + 1))
    idx = torch.where(special, idx, torch.zeros_like(idx)).to(torch.int64)
    spec = F.embedding(idx, P[X + "special_token_embeddings.weight"], padding_idx=c.pad)
    if c.mlp_encoder:  # continuous: dense_2(lrelu(lrelu(dense_1(x)))); special: dense_2(lrelu(E128[idx]))
        h1 = F.leaky_relu(F.leaky_relu(expr.unsqueeze(-1) @ P[X + "dense_1.weight"].T + P[X + "dense_1.bias"], 0.01), 0.01)
        h1 = torch.where(special.unsqueeze(-1), F.leaky_relu(spec, 0.01), h1)
        enc = h1 @ P[X + "dense_2.weight"].T + P[X + "dense_2.bias"]
    else:
        f = expr.unsqueeze(-1) * P[X + "basis"]  # float32 product, as the reference
        feat = torch.cat([torch.sin(f), torch.cos(f)], dim=-1)
        cont = feat @ P[X + "dense.weight"].T
        enc = torch.where(special.unsqueeze(-1), spec, cont)
    e = e_gene + enc
    h = F.layer_norm(e, (c.C,), P[E + "LayerNorm.weight"], P[E + "LayerNorm.bias"], eps=1e-12)
    hidden = [h]
    HS = c.C // c.NH
    amask = ((1.0 - mask.to(torch.float32)) * torch.finfo(torch.float32).min)[:, None, None, :]

    def rms(x, s):
        return s * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))

    for l in range(c.NL):
        b = "model.core.encoder.blocks.%d." % l
        a = h if l == 0 else rms(h, P[b + "rms_1.scale"])
        qkv = a @ P[b + "attn.c_attn.weight"].T
        q, k, v = qkv.split(c.C, dim=-1)
        q, k, v = (t.view(B, L, c.NH, HS).transpose(1, 2) for t in (q, k, v))
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(HS) + amask, dim=-1) @ v
        att = att.transpose(1, 2).reshape(B, L, c.C)
        h = h + att @ P[b + "attn.proj.weight"].T
        m = rms(h, P[b + "rms_2.scale"])
        h = h + (F.silu(m @ P[b + "mlp.c_fc1.weight"].T) * (m @ P[b + "mlp.c_fc2.weight"].T)) @ P[b + "mlp.c_proj.weight"].T
        hidden.append(h)
    z = h
    out = {"hidden": hidden, "z": z}
    out["pool"] = torch.tanh(z[:, 0] @ P["model.core.pooler.dense.weight"].T + P["model.core.pooler.dense.bias"])
    H = "model.cls.predictions.predictions."

    def transform(x):
        t = F.gelu(x @ P[H + "transform.dense.weight"].T + P[H + "transform.dense.bias"])
        return F.layer_norm(t, (c.C,), P[H + "transform.LayerNorm.weight"], P[H + "transform.LayerNorm.bias"], eps=1e-12)

    D = H + "decoder.field_decoders.expressions_"
    if c.wced:  # the reference decodes every position; only position 0 is used
        t = transform(z if wced_all_positions else z[:, :1])
        o = t @ P[D + "wced.weight"].T + P[D + "wced.bias"]
        out["wced"] = o[:, 0]
    if c.mlm:
        t = transform(z)
        out["mlm_reg"] = (t @ P[D + "regression.weight"].T + P[D + "regression.bias"])[..., 0]
        out["mlm_iz"] = (t @ P[D + "is_zero.weight"].T + P[D + "is_zero.bias"])[..., 0]
    out["logits"] = {}
    for name, k, dec, grl in c.labels:
        x = z[:, dec] if dec is not None else out["pool"]
        sub = "decoder.1" if grl else "decoder"
        if grl:
            x = GradReverse.apply(x, grl)
        L_ = "model.cls.label_predictions.predictions.label_decoders.%s.%s." % (name, sub)
        out["logits"][name] = x @ P[L_ + "weight"].T + P[L_ + "bias"]
    return out


def mse_ignore_zero(pred, y):
    valid = (y != -100) & (y != 0)
    return ((pred - y) ** 2 * valid).sum() / (valid.sum() + 1e-6)


def is_zero_bce(logit, y):
    valid = y != -100
    l = F.binary_cross_entropy_with_logits(logit, (y == 0).float(), reduction="none")
    return (l * valid).sum() / (valid.sum() + 1e-6)


# ---------------------------------------------------------------- the batch
def make_batch(c, rng, lengths):
    B, L = len(lengths), max(lengths)
    gene_ids = np.full((B, L), c.pad, dtype=np.int64)
    expr = np.full((B, L), -(c.pad + 1), dtype=np.float32)  # the collator pads with -(PAD+1)
    mask = np.zeros((B, L), dtype=np.int64)
    mlm_target = np.full((B, L), -100.0, dtype=np.float32)
    prepend = [3] + [5 + k for k in range(c.n_prepend - 1)]  # [CLS], [CLS_0..]
    for b, n in enumerate(lengths):
        n_genes = n - len(prepend) - 1
        genes = rng.choice(np.arange(38, c.V), size=n_genes, replace=False)
        counts = rng.integers(0, 40, size=n_genes).astype(np.float64)
        counts[rng.random(n_genes) < 0.25] = 0
        S = counts.sum()
        vals = np.log1p(counts / (S + 1) * 1e4).astype(np.float32)
        ids = prepend + list(genes) + [1]
        ex = [-(t + 1.0) for t in prepend] + list(vals) + [-2.0]
        gene_ids[b, :n] = ids
        expr[b, :n] = ex
        mask[b, :n] = 1
        if c.mlm:  # mask ~40% of gene positions with [MASK] (-5), predict the original value
            for j in range(len(prepend), n - 1):
                if rng.random() < 0.4:
                    mlm_target[b, j] = expr[b, j]
                    expr[b, j] = -5.0
    wced_target = np.full((B, c.V), -100.0, dtype=np.float32)
    for b, n in enumerate(lengths):
        known = rng.random(c.V) < 0.7
        known[:38] = False
        wced_target[b, known] = 0.0
        nz = known & (rng.random(c.V) < 0.3)
        wced_target[b, nz] = rng.uniform(0.1, 8, nz.sum()).astype(np.float32)
        for j in range(len(prepend), n - 1):  # the input genes carry their value
            g = gene_ids[b, j]
            wced_target[b, g] = max(expr[b, j], 0.0)
    labels = {}
    for name, k, _, _ in c.labels:
        y = rng.integers(0, k, size=B)
        y[rng.random(B) < 0.2] = -100
        labels[name] = y
    return gene_ids, expr, mask, mlm_target, wced_target, labels


def config_json(c):
    fields = [
        {"field_name": "genes", "vocab_size": c.V, "pretrained_embedding": None, "vocab_update_strategy": "static",
         "is_masked": False, "is_input": True, "decode_modes": None, "tokenization_strategy": "tokenize",
         "num_special_tokens": c.n_special, "encoder_kwargs": None},
        {"field_name": "expressions", "vocab_size": None, "pretrained_embedding": None,
         "vocab_update_strategy": "static", "is_masked": c.mlm, "is_input": True,
         "decode_modes": ({"wced": {"vocab_field": "genes", "logit_outputs": ["mse", "is_zero_bce"]}} if c.wced
                          else {"regression": {}, "is_zero": {}}),
         "tokenization_strategy": "continuous_value_encoder", "num_special_tokens": c.n_special,
         "encoder_kwargs": ({"kind": "mlp_with_special_token_embedding", "zero_as_special_token": True}
                            if c.mlp_encoder else
                            {"kind": "scale_adapt", "n_sin_basis": c.NB, "basis_scale": c.basis_scale,
                             "trainable": False, "zero_as_special_token": True})},
    ]
    labels = [{"label_column_name": n, "task_group": None, "is_stratification_label": False,
               "is_regression_label": False, "is_multilabel": False, "classifier_depth": 1,
               "gradient_reversal_coefficient": (g if g else None), "n_unique_values": k,
               "silent_label_values": None, "multilabel_str_sep": "|", "label_ontology": None,
               "decode_from": d} for n, k, d, g in c.labels]
    return {"architectures": ["BiomedRnaForSequenceEmbedding"], "model_type": "scllama", "hidden_size": c.C,
            "num_hidden_layers": c.NL, "num_attention_heads": c.NH, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
            "hidden_dropout_prob": 0.0, "attention": "torch", "pad_token_id": c.pad, "max_position_embeddings": 512,
            "position_embedding_type": None, "classifier_pooling": "cls", "num_memory_tokens": 0,
            "vocab_size": c.V, "checkpoint": None, "fields": fields, "label_columns": labels}


def cmd_make(outdir, variant, seed, C=64, NL=2, NH=4, V=300, lengths=None):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    c = Cfg(C, NL, NH, V, 36, variant)
    mdir = os.path.join(outdir, "model")
    os.makedirs(mdir, exist_ok=True)
    params = random_params(c, rng)
    st_write(os.path.join(mdir, "model.safetensors"), params)
    with open(os.path.join(mdir, "config.json"), "w") as f:
        json.dump(config_json(c), f, indent=2)
    label_dict = {n: {"%s_%d" % (n, i): i for i in range(k)} for n, k, _, _ in c.labels}
    with open(os.path.join(mdir, "checkpoint_metadata.json"), "w") as f:
        json.dump({"hyper_parameters": {"label_dict": label_dict}}, f, indent=2)

    lengths = lengths or [9, 23, 7, 16]
    gene_ids, expr, mask, mlm_target, wced_target, labels = make_batch(c, rng, lengths)
    P = {k: torch.tensor(v, requires_grad=not k.endswith(".basis")) for k, v in params.items()}
    out = forward(c, P, torch.tensor(gene_ids), torch.tensor(expr), torch.tensor(mask))
    # the loss of 4.6: sum_i w_i L_i / sum_i w_i
    terms = []
    if c.wced:
        y = torch.tensor(wced_target)
        terms += [(1.0, mse_ignore_zero(out["wced"][:, 0::2], y)), (1.0, is_zero_bce(out["wced"][:, 1::2], y))]
    if c.mlm:
        y = torch.tensor(mlm_target)
        terms += [(1.0, mse_ignore_zero(out["mlm_reg"], y)), (1.5, is_zero_bce(out["mlm_iz"], y))]
    for name, k, _, grl in c.labels:
        w = 0.05 if grl else 1.0
        terms.append((w, F.cross_entropy(out["logits"][name], torch.tensor(labels[name]), ignore_index=-100)))
    loss = sum(w * t for w, t in terms) / sum(w for w, _ in terms)
    loss.backward()

    real = mask.astype(bool)
    dump = {"in.gene_ids": gene_ids[real].astype(np.float32), "in.expr": expr[real],
            "in.cu_seqlens": np.concatenate([[0], np.cumsum(lengths)]).astype(np.float32),
            "in.mlm_target": mlm_target[real], "in.wced_target": wced_target}
    for name, _, _, _ in c.labels:
        dump["in.label." + name] = labels[name].astype(np.float32)
    for l, h in enumerate(out["hidden"]):
        dump["out.hidden.%d" % (l - 1)] = h.detach().numpy()[real]
    z = out["z"].detach().numpy()
    dump["out.first_token"] = z[:, 0]
    dump["out.pooler"] = out["pool"].detach().numpy()
    m1 = mask.copy()
    m1[:, 0] = 0  # mean_pooling: positions 1..L-1 of the real tokens
    dump["out.mean"] = (z * m1[..., None]).sum(1) / m1.sum(1, keepdims=True)
    if c.wced:
        dump["out.wced"] = out["wced"].detach().numpy()
    if c.mlm:
        dump["out.mlm_reg"] = out["mlm_reg"].detach().numpy()[real]
        dump["out.mlm_iz"] = out["mlm_iz"].detach().numpy()[real]
    for name in out["logits"]:
        dump["out.logits." + name] = out["logits"][name].detach().numpy()
    dump["loss.total"] = np.array([loss.item()], dtype=np.float32)
    for i, (w, t) in enumerate(terms):
        dump["loss.term.%d" % i] = np.array([t.item()], dtype=np.float32)
    for k, p in P.items():
        if p.grad is not None:
            dump["grad." + k] = p.grad.numpy()
    st_write(os.path.join(outdir, "ref.safetensors"), dump)


def cmd_corrupt(mdir, outdir, kind):
    if os.path.exists(outdir):
        shutil.rmtree(outdir)
    shutil.copytree(mdir, outdir)
    path = os.path.join(outdir, "model.safetensors")
    t = st_read(path)
    dtypes = {}
    if kind == "missing":
        del t["model.core.encoder.blocks.1.rms_1.scale"]
    elif kind == "shape":
        w = t["model.core.encoder.blocks.0.attn.proj.weight"]
        t["model.core.encoder.blocks.0.attn.proj.weight"] = w[:-1]
    elif kind == "dtype":
        t["model.core.pooler.dense.bias"] = t["model.core.pooler.dense.bias"].astype(np.int64)
        dtypes["model.core.pooler.dense.bias"] = "I64"
    elif kind == "extra":
        t["model.core.encoder.blocks.0.rms_1.scale"] = np.ones(t["model.core.pooler.dense.bias"].shape, np.float32)
    st_write(path, t, dtypes)


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "make":
        variant = a[a.index("--variant") + 1] if "--variant" in a else "47m"
        seed = int(a[a.index("--seed") + 1]) if "--seed" in a else 1
        cmd_make(a[1], variant, seed)
    elif a and a[0] == "corrupt":
        cmd_corrupt(a[1], a[2], a[3])
    else:
        sys.exit(__doc__)
