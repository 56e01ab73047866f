#!/usr/bin/env python3
"""attn_layer_peer.py — one attention layer of the peer alone, on the GPU host (PyTorch): the SDPA
backends (flash, memory-efficient, cuDNN) and eager softmax(QKᵀ)V with P kept (what
output_attentions costs), timed with CUDA events over 200 calls after 10 warm-up calls, random bf16
q, k, v of shape (B, H, T, D). The yardstick for the fused kernel and the vision pass of one layer
(`ncu` of attn_fused_kernel + attn_vision_kernel, BENCHMARKS.md run 39).
  python3 tests/bench/attn_layer_peer.py [B H T D]      (default 128 12 197 64: ViT-B/16's layer)"""
import sys
import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend

B, H, T, D = (int(a) for a in sys.argv[1:5]) if len(sys.argv) >= 5 else (128, 12, 197, 64)
torch.manual_seed(0)
q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))


def timeit(f, n=200):
    for _ in range(10):
        f()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(n):
        f()
    e.record()
    torch.cuda.synchronize()
    return s.elapsed_time(e) / n * 1e3


def eager():
    p = torch.softmax((q @ k.transpose(-1, -2)) * D ** -0.5, dim=-1, dtype=torch.float32).to(q.dtype)
    return p @ v, p


shape = f"B={B}, H={H}, T={T}, D={D}, bf16"
for name, be in [("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                 ("cudnn", SDPBackend.CUDNN_ATTENTION)]:
    try:
        with sdpa_kernel(be):
            print(f"SDPA {name}: {timeit(lambda: F.scaled_dot_product_attention(q, k, v)):.1f} us a layer ({shape})")
    except RuntimeError as ex:
        print(f"SDPA {name}: not available ({str(ex).splitlines()[0][:80]})")
print(f"eager softmax(QK^T)V with P kept: {timeit(eager):.1f} us a layer ({shape})")
