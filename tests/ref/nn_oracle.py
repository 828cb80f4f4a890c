"""nn_oracle.py OUT.bin - PyTorch oracle for the kernels of src/nn.

Draws random inputs with a fixed seed, runs the PyTorch (float32) forward and
autograd backward of: linear, attention over right-padded cells with the
reference's additive key mask (finfo(float32).min on padded keys), LayerNorm
(eps 1e-12), LlamaRMSNorm (eps 1e-5), SwiGLU, exact GELU, tanh, and the
ScaleAdapt sin/cos features, and writes inputs and results as a list of
named float32 tensors: [int32 name_len][name][int64 count][count float32].
The attention tensors are written packed (padding rows dropped) so the C
kernels read them directly.
"""
import math
import struct
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(1234)
out = []


def put(name, t):
    out.append((name, t.detach().to(torch.float32).contiguous().reshape(-1)))


def grad_of(f, *xs):
    xs = [x.clone().requires_grad_(True) for x in xs]
    y = f(*xs)
    g = torch.randn_like(y)
    y.backward(g)
    return y, g, [x.grad for x in xs]


# linear
N, IN, OUT = 11, 13, 7
x, w, b = torch.randn(N, IN), torch.randn(OUT, IN), torch.randn(OUT)
y, g, (dx, dw, db) = grad_of(lambda x, w, b: F.linear(x, w, b), x, w, b)
for k, v in dict(lin_x=x, lin_w=w, lin_b=b, lin_y=y, lin_g=g, lin_dx=dx, lin_dw=dw, lin_db=db).items():
    put(k, v)

# layernorm
N, C = 9, 48
x, w, b = torch.randn(N, C) * 2 + 0.5, torch.randn(C), torch.randn(C)
y, g, (dx, dw, db) = grad_of(lambda x, w, b: F.layer_norm(x, (C,), w, b, 1e-12), x, w, b)
for k, v in dict(ln_x=x, ln_w=w, ln_b=b, ln_y=y, ln_g=g, ln_dx=dx, ln_dw=dw, ln_db=db).items():
    put(k, v)


# LlamaRMSNorm (HF): weight * (x * rsqrt(mean(x^2) + eps))
def rms(x, w):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + 1e-5))


x, w = torch.randn(N, C) * 1.5, torch.randn(C)
y, g, (dx, dw) = grad_of(rms, x, w)
for k, v in dict(rms_x=x, rms_w=w, rms_y=y, rms_g=g, rms_dx=dx, rms_dw=dw).items():
    put(k, v)

# swiglu, gelu, tanh
n = 4099
a, bb = torch.randn(n) * 4, torch.randn(n)
y, g, (da, db) = grad_of(lambda a, b: F.silu(a) * b, a, bb)
for k, v in dict(sw_a=a, sw_b=bb, sw_y=y, sw_g=g, sw_da=da, sw_db=db).items():
    put(k, v)
x = torch.randn(n) * 4
y, g, (dx,) = grad_of(lambda x: F.gelu(x), x)
for k, v in dict(ge_x=x, ge_y=y, ge_g=g, ge_dx=dx).items():
    put(k, v)
y, g, (dx,) = grad_of(torch.tanh, x)
for k, v in dict(th_y=y, th_g=g, th_dx=dx).items():
    put(k, v)

# attention over right-padded cells, as the reference model (SDPA path)
NH, HS = 3, 8
C = NH * HS
lens = [5, 1, 17, 9]
B, L = len(lens), max(lens)
mask = torch.zeros(B, L)
for i, t in enumerate(lens):
    mask[i, :t] = 1
qkv = torch.randn(B, L, 3 * C)


def attn(qkv):
    q, k, v = qkv.split(C, dim=2)
    q, k, v = (t.view(B, L, NH, HS).transpose(1, 2) for t in (q, k, v))
    amask = ((1.0 - mask) * torch.finfo(torch.float32).min)[:, None, None, :]
    s = q @ k.transpose(-2, -1) / math.sqrt(HS) + amask
    p = torch.softmax(s, dim=-1)
    return (p @ v).transpose(1, 2).reshape(B, L, C)


y, g, (dqkv,) = grad_of(attn, qkv)
keep = mask.reshape(-1).bool()
put("at_lens", torch.tensor(lens, dtype=torch.float32))
put("at_qkv", qkv.reshape(B * L, 3 * C)[keep])
put("at_y", y.reshape(B * L, C)[keep])
# gradients of padded query rows are not part of a packed batch: zero them
g = g * mask[:, :, None]
qq = qkv.clone().requires_grad_(True)
attn(qq).backward(g)
put("at_g", g.reshape(B * L, C)[keep])
put("at_dqkv", qq.grad.reshape(B * L, 3 * C)[keep])

# ScaleAdapt features: float32 product x*b_k, torch.sin/cos
basis = torch.tensor(2 * math.pi * 0.01, dtype=torch.float32) * (2.0 ** torch.arange(48, dtype=torch.float32))
xs = torch.cat([torch.rand(200) * 10, torch.rand(50) * 1e4, torch.tensor([1e-3, 1.0, 0.5, 7.25, 1234.5])])
arg = xs[:, None] * basis[None, :]
put("sa_basis", basis)
put("sa_x", xs)
put("sa_feat", torch.cat([torch.sin(arg), torch.cos(arg)], dim=1))

with open(sys.argv[1], "wb") as f:
    for name, t in out:
        nb = name.encode()
        f.write(struct.pack("<i", len(nb)) + nb + struct.pack("<q", t.numel()))
        f.write(t.numpy().astype("<f4").tobytes())
