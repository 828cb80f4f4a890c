#!/usr/bin/env python3
"""encoder_torch.py - the PyTorch eager side of bench/encoder: the oracle model
of tests/ref/llama_ref.py at the released 47M configuration (C=384, 12 layers,
12 heads, V=19321, WCED head, five label heads on [CLS_k]), fp32.

Cells have the token counts of --lengths (default: --B cells of --T tokens);
PyTorch runs them padded to the longest with a key-padding mask. Two
baselines, best of --iters after one warm-up (process CPU time with one
thread, wall time otherwise):

- same work ("torch"): inference = encoder + label heads; training step =
  forward with the WCED decoder at [CLS] only (as the C engine), WCED + label
  losses, backward.
- the reference's behaviour ("ref", bmfm_reference.md 2.2 and 4.1):
  inference pads every cell to max_length (1024, a multiple of 16); the
  training step pads to the longest cell rounded up to 16 (v2 pretraining,
  padding "longest") and computes the V x 2 WCED projection at every
  position (only position 0 enters the loss). The reference inference here
  runs encoder + label heads only (no WCED at all positions), so its ratio is
  a lower bound.

Prints "torch infer_s=<s> train_s=<s> ref_infer_s=<s> ref_train_s=<s>".

    encoder_torch.py --T 512 --B 4 --threads 1 --iters 2
    encoder_torch.py --lengths 512,700,600 --threads 1 --iters 2 [--no-ref]
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

MAX_LENGTH = 1024  # the reference's inference padding (DataModule default)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", type=int, default=512)
    ap.add_argument("--B", type=int, default=4)
    ap.add_argument("--lengths", default="")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--no-ref", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    clock = time.process_time if a.threads == 1 else time.perf_counter
    lengths = [int(x) for x in a.lengths.split(",")] if a.lengths else [a.T] * a.B
    c = R.Cfg(384, 12, 12, 19321, 36, "47m")
    c.labels = [("cell_type_ontology_term_id", 580, 1, 0.0), ("tissue", 200, 2, 0.0), ("tissue_general", 50, 2, 0.0),
                ("donor_id", 1000, 3, 0.0), ("sex", 3, 4, 0.0)]
    rng = np.random.default_rng(1)
    P = {k: torch.tensor(v, requires_grad=not k.endswith(".basis")) for k, v in R.random_params(c, rng).items()}
    B = len(lengths)

    def make(L):  # cells padded to L tokens: [CLS] [CLS_0..3] genes [SEP] [PAD]...
        g = np.full((B, L), 2, dtype=np.int64)
        x = np.full((B, L), -3.0, dtype=np.float32)
        mask = np.zeros((B, L), dtype=np.int64)
        for b, n in enumerate(lengths):
            g[b, :n] = rng.integers(38, c.V, size=n)
            x[b, :n] = rng.uniform(0.1, 8.0, size=n)
            x[b, :n][rng.random(n) < 0.2] = 0
            g[b, 0], x[b, 0] = 3, -4
            for k in range(4):
                g[b, 1 + k], x[b, 1 + k] = 5 + k, -(6 + k)
            g[b, n - 1], x[b, n - 1] = 1, -2
            mask[b, :n] = 1
        return torch.tensor(g), torch.tensor(x), torch.tensor(mask)

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

    def infer(batch):
        with torch.no_grad():
            c.wced = False
            R.forward(c, P, *batch)
            c.wced = True

    def train(batch, all_positions):
        for p in P.values():
            p.grad = None
        out = R.forward(c, P, *batch, wced_all_positions=all_positions)
        loss = R.mse_ignore_zero(out["wced"][:, 0::2], wt) + R.is_zero_bce(out["wced"][:, 1::2], wt)
        for n, _, _, _ in c.labels:
            loss = loss + F.cross_entropy(out["logits"][n], labels[n])
        (loss / 7).backward()

    longest = max(lengths)
    same = make(longest)
    ti = timed(lambda: infer(same))
    tt = timed(lambda: train(same, False))
    rti = rtt = 0.0
    if not a.no_ref:
        ref_inf = make(max(MAX_LENGTH, (longest + 15) // 16 * 16))
        rti = timed(lambda: infer(ref_inf))
        del ref_inf
        ref_train = make((longest + 15) // 16 * 16)
        rtt = timed(lambda: train(ref_train, True))
    print("torch infer_s=%.6f train_s=%.6f ref_infer_s=%.6f ref_train_s=%.6f" % (ti, tt, rti, rtt))


if __name__ == "__main__":
    main()
