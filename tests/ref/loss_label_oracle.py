"""loss_label_oracle.py - PyTorch oracle for src/nn/loss_label.c.

Usage: loss_label_oracle.py IN.bin OUT.bin

IN.bin (little-endian): int64 B, int64 K, float32 gamma, float32 logits[B*K],
float32 target[B*(K+1)] (HCE multi-hot + flag), int64 labels[B] (CE/focal,
-100 = ignore).
OUT.bin: for hce, ce, focal in that order: float64 loss (float32 torch),
float64 loss (float64 torch), float32 grad[B*K] (float32), float64 grad[B*K]
(float64). Gradients are d loss / d logits by autograd.

The formulas are copied from the reference, not from the C code:
bmfm_targets/training/metrics/metric_functions.py (hce_loss with its
weighted_logsumexp, focal_loss) and focal_loss_torch.FocalLoss.forward.
"""
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F


def weighted_logsumexp(x, weights, dim):
    max_x, _ = torch.max(x, dim=dim, keepdim=True)
    sum_exp = torch.sum(weights * torch.exp(x - max_x), dim=dim)
    return torch.log(sum_exp) + max_x.squeeze(dim)


def hce_loss(logits, labels):
    flag = labels[..., -1]
    labels = labels[..., :-1]
    labels = labels - flag[..., None] + 1.0
    return -torch.mean((weighted_logsumexp(logits, labels, -1) - torch.logsumexp(logits, dim=-1)) * flag)


def focal_loss(logits, target, gamma):
    # metric_functions.focal_loss: softmax then FocalLoss(gamma, ignore_index=-100, eps=finfo.eps)
    x = torch.softmax(logits, dim=-1)
    eps = torch.finfo(torch.float32).eps  # the reference runs in float32; keep it for the float64 run too
    mask = target == -100
    t = target * (~mask)
    onehot = F.one_hot(t, num_classes=x.shape[-1])
    pt = (onehot * x).sum(dim=-1) * ~mask
    nll = (-torch.log(eps + pt)).masked_fill(mask, 0)
    loss = torch.ones(target.shape[0], dtype=x.dtype) * (1 - pt) ** gamma * nll
    return loss.sum() / (~mask).sum()


def run(fn, logits, dtype):
    z = torch.tensor(logits, dtype=dtype, requires_grad=True)
    loss = fn(z)
    loss.backward()
    return float(loss.detach()), z.grad.detach().numpy()


def main():
    raw = open(sys.argv[1], "rb").read()
    B, K = struct.unpack_from("<qq", raw, 0)
    (gamma,) = struct.unpack_from("<f", raw, 16)
    off = 20
    logits = np.frombuffer(raw, "<f4", B * K, off).reshape(B, K)
    off += 4 * B * K
    target = np.frombuffer(raw, "<f4", B * (K + 1), off).reshape(B, K + 1)
    off += 4 * B * (K + 1)
    labels = np.frombuffer(raw, "<i8", B, off)
    fns = [
        lambda z: hce_loss(z, torch.tensor(target, dtype=z.dtype)),
        lambda z: F.cross_entropy(z, torch.tensor(labels), ignore_index=-100),
        lambda z: focal_loss(z, torch.tensor(labels), float(gamma)),
    ]
    with open(sys.argv[2], "wb") as f:
        for fn in fns:
            l32, g32 = run(fn, logits, torch.float32)
            l64, g64 = run(fn, logits.astype(np.float64), torch.float64)
            f.write(struct.pack("<dd", l32, l64))
            f.write(g32.astype("<f4").tobytes())
            f.write(g64.astype("<f8").tobytes())


if __name__ == "__main__":
    main()
