#!/usr/bin/env python3
"""gpu_tma_parity.py — on a Hopper GPU (GPU host: runtime sourced, h5py; BUILD=dir of the CUDA
build, default build-cuda) the fused kernel's TMA + wgmma form against its mma.sync form
(ATTNSCOPE_NO_TMA=1): the same fixture runs, with the defaults and with --topk 3 --key-importance,
must write the same bits in every /stats dataset. gpt2_hd64 (heads of 64, causal) is the HF fixture
that takes the Hopper form; test_attn_gpu checks both forms against the CPU (run it with and
without ATTNSCOPE_NO_TMA=1). PRECISION (bf16) and BACKEND (cuda) as gpu_attention.py: BACKEND=cpu
PRECISION=fp32 runs the same comparison on the CPU, where both runs take one path. Exits non-zero
on any difference; make test does not run it (no GPU there). Prints what it compared."""
import os, subprocess, sys, tempfile
import numpy as np
import h5py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("BUILD", os.path.join(ROOT, "build-cuda")), "attnscope")
BACKEND = os.environ.get("BACKEND", "cuda")
PRECISION = os.environ.get("PRECISION", "bf16")
FX = os.path.join(ROOT, "tests", "fixtures", "hf")
failures = 0


def check(ok, what):
    global failures
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    failures += not ok
    return ok


def run(out, no_tma, *extra):
    env = dict(os.environ)
    env.pop("ATTNSCOPE_NO_TMA", None)
    if no_tma:
        env["ATTNSCOPE_NO_TMA"] = "1"
    cmd = [BIN, "run", "--model", os.path.join(FX, "gpt2_hd64"), "--input", os.path.join(FX, "input_decoder.h5"),
           "--out", out, "--overwrite", "--quiet", "--backend", BACKEND, "--precision", PRECISION, *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return check(p.returncode == 0, f"run {' '.join(extra) or '(defaults)'}{' ATTNSCOPE_NO_TMA=1' if no_tma else ''}: "
                                    f"exit {p.returncode} {p.stderr.strip()[-200:]}")


tmp = tempfile.mkdtemp(prefix="attnscope-tma-")
for extra in ([], ["--topk", "3", "--key-importance"]):
    a, b = os.path.join(tmp, "tma.h5"), os.path.join(tmp, "notma.h5")
    if not run(a, False, *extra) or not run(b, True, *extra):
        continue
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names = [n for n in fa["stats"] if isinstance(fa["stats"][n], h5py.Dataset)]
        check(len(names) > 0, f"{len(names)} /stats datasets written")
        for n in names:
            x, y = fa["stats"][n][()], fb["stats"][n][()]
            same = x.shape == y.shape and np.array_equal(x, y, equal_nan=True)
            d = "shape" if x.shape != y.shape else f"max abs {np.nanmax(np.abs(x.astype(float) - y.astype(float))):.3g}"
            check(same, f"{' '.join(extra) or 'defaults'}: /stats/{n} {x.shape} bit for bit ({d})")
print(f"gpu_tma_parity: {failures} failure(s)")
sys.exit(1 if failures else 0)
