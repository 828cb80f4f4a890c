#!/usr/bin/env python3
"""encoder_torch.py - the PyTorch eager side of bench/encoder: the oracle model
of tests/ref/llama_ref.py at the released 47M configuration (C=384, 12 layers,
12 heads, V=19321, WCED head, five label heads on [CLS_k]), B cells of T
tokens, fp32. Prints "torch infer_s=<s> train_s=<s>" (best of --iters after
one warm-up; process CPU time with one thread, wall time otherwise).

    encoder_torch.py --T 512 --B 4 --threads 1 --iters 2
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import llama_ref as R  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", type=int, default=512)
    ap.add_argument("--B", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    clock = time.process_time if a.threads == 1 else time.perf_counter
    c = R.Cfg(384, 12, 12, 19321, 36, "47m")
    c.labels = [("cell_type_ontology_term_id", 580, 1, 0.0), ("tissue", 200, 2, 0.0), ("tissue_general", 50, 2, 0.0),
                ("donor_id", 1000, 3, 0.0), ("sex", 3, 4, 0.0)]
    rng = np.random.default_rng(1)
    P = {k: torch.tensor(v, requires_grad=not k.endswith(".basis")) for k, v in R.random_params(c, rng).items()}
    B, T = a.B, a.T
    ids = rng.integers(38, c.V, size=(B, T))
    expr = rng.uniform(0.1, 8.0, size=(B, T)).astype(np.float32)
    expr[rng.random((B, T)) < 0.2] = 0
    ids[:, 0], expr[:, 0] = 3, -4
    for k in range(4):
        ids[:, 1 + k], expr[:, 1 + k] = 5 + k, -(6 + k)
    ids[:, -1], expr[:, -1] = 1, -2
    ids, expr = torch.tensor(ids), torch.tensor(expr)
    mask = torch.ones(B, T, dtype=torch.int64)
    wt = torch.tensor(np.where(rng.random((B, c.V)) < 0.7, 0.0, rng.random((B, c.V)) * 5).astype(np.float32))
    wt[:, :38] = -100
    labels = {n: torch.tensor(rng.integers(0, k, size=B)) for n, k, _, _ in c.labels}

    def timed(fn):
        best = 1e30
        for it in range(a.iters + 1):
            t = clock()
            fn()
            t = clock() - t
            if it:
                best = min(best, t)
        return best

    def infer():
        with torch.no_grad():
            c.wced = False
            R.forward(c, P, ids, expr, mask)
            c.wced = True

    def train():
        for p in P.values():
            p.grad = None
        out = R.forward(c, P, ids, expr, mask, wced_all_positions=False)  # as the C engine: [CLS] only
        loss = R.mse_ignore_zero(out["wced"][:, 0::2], wt) + R.is_zero_bce(out["wced"][:, 1::2], wt)
        for n, _, _, _ in c.labels:
            loss = loss + F.cross_entropy(out["logits"][n], labels[n])
        (loss / 7).backward()

    ti = timed(infer)
    tt = timed(train)
    print("torch infer_s=%.6f train_s=%.6f" % (ti, tt))


if __name__ == "__main__":
    main()
