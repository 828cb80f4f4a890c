"""AdamW + grad-norm clipping oracle for tests/test_train.c (torch.optim.AdamW).

usage: adamw_oracle.py OUT.bin
Four tensors as in a model's table: a Linear weight [6,4] (decay group), an
embedding [5,4] and an RMSNorm scale [4] (no decay), and a buffer [3] that is
not a parameter (the ScaleAdapt basis: never updated). Five steps with seeded
gradients, clip_grad_norm_(0.5) on the parameters, betas (0.9, 0.99),
eps 1e-8, weight decay 0.1 on the first group, lr per step from the Hugging Face
linear schedule (warmup 2, 5 steps total, peak 1e-2).
OUT.bin (float32): p0[51], then per step: grads[51] (as given, before clipping),
lr, grad norm, params after the step[51].
"""
import sys
import numpy as np
import torch

rng = np.random.default_rng(7)
shapes = [(6, 4), (5, 4), (4,), (3,)]
init = [rng.normal(size=s).astype(np.float32) for s in shapes]
init[2] = np.ones(4, dtype=np.float32) + 0.1 * init[2]
params = [torch.nn.Parameter(torch.tensor(x)) for x in init[:3]]
buffer = torch.tensor(init[3])
opt = torch.optim.AdamW([{"params": [params[0]], "weight_decay": 0.1},
                         {"params": params[1:], "weight_decay": 0.0}],
                        lr=1e-2, betas=(0.9, 0.99), eps=1e-8)
warmup, total, peak = 2, 5, 1e-2


def factor(s):
    if s < warmup:
        return s / max(1, warmup)
    return max(0.0, (total - s) / max(1, total - warmup))


out = [np.concatenate([x.ravel() for x in init])]
for step in range(total):
    grads = [rng.normal(scale=0.3 * (k + 1), size=s).astype(np.float32) for k, s in enumerate(shapes)]
    for p, g in zip(params, grads[:3]):
        p.grad = torch.tensor(g)
    norm = torch.nn.utils.clip_grad_norm_(params, 0.5)
    lr = peak * factor(step)
    for gr in opt.param_groups:
        gr["lr"] = lr
    opt.step()
    out.append(np.concatenate([g.ravel() for g in grads]))
    out.append(np.array([lr, float(norm)], dtype=np.float32))
    out.append(np.concatenate([p.detach().numpy().ravel() for p in params] + [buffer.numpy()]))
np.concatenate(out).astype(np.float32).tofile(sys.argv[1])
