#!/usr/bin/env python3
"""gpu_attention.py — the whole binary on a GPU against the HF fixtures (GPU host: runtime sourced,
h5py; BUILD=dir of the CUDA build, default build-cuda). For each fixture model:
  1. `--save-attention --topk 3 --key-importance` (the explicit path: the probabilities are needed):
     the packed /attention against HF eager's attentions on every sample's valid block;
  2. the same without --save-attention (the fused kernel gives top-k and key importance): its
     /stats/topk_index equal to run 1's except at near ties, topk_weight, key_importance and the
     per-head scalars against run 1's.
Tolerances: attention 1e-5 abs (1e-4 with rotary embeddings), as the README's; fused vs explicit
2e-5 abs (3xTF32 on both paths, summed in another order). Exits non-zero on any failure; make
test does not run it (no GPU there). Prints what it compared."""
import os, subprocess, sys, tempfile
import numpy as np
import h5py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import att_read  # noqa: E402

BIN = os.path.join(os.environ.get("BUILD", os.path.join(ROOT, "build-cuda")), "attnscope")
BACKEND = os.environ.get("BACKEND", "cuda")      # (cpu: the same checks on the CPU backend)
FX = os.path.join(ROOT, "tests", "fixtures", "hf")
CASES = [("bert_tiny", "input_tiny.h5", "expected_bert_tiny.h5", 1e-5),
         ("gpt2_tiny", "input_decoder.h5", "expected_gpt2_tiny.h5", 1e-5),
         ("gpt2_hd64", "input_decoder.h5", "expected_gpt2_hd64.h5", 1e-5),
         ("llama_tiny", "input_decoder.h5", "expected_llama_tiny.h5", 1e-4),
         ("llama_hd128", "input_decoder.h5", "expected_llama_hd128.h5", 1e-4),
         ("qwen2_tiny", "input_decoder.h5", "expected_qwen2_tiny.h5", 1e-4),
         ("mistral_sw", "input_decoder.h5", "expected_mistral_sw.h5", 1e-4),
         ("vit_tiny", "input_vision.h5", "expected_vit_tiny.h5", 1e-5)]
failures = 0


def check(ok, what):
    global failures
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    failures += not ok
    return ok


def run(model, inp, out, *extra):
    cmd = [BIN, "run", "--model", os.path.join(FX, model), "--input", os.path.join(FX, inp), "--out", out,
           "--quiet", "--backend", BACKEND, *extra]
    p = subprocess.run(cmd, capture_output=True, text=True)
    return check(p.returncode == 0, f"{model}: {' '.join(['run', *extra])} exit {p.returncode} {p.stderr.strip()[-200:]}")


tmp = tempfile.mkdtemp(prefix="attnscope-gpu-")
for model, inp, exp, tol in CASES:
    if not os.path.isdir(os.path.join(FX, model)):
        check(False, f"{model}: fixture missing")
        continue
    a, b = os.path.join(tmp, f"{model}_explicit.h5"), os.path.join(tmp, f"{model}_fused.h5")
    vision = model.startswith("vit")
    tok = [] if vision else ["--topk", "3", "--key-importance"]
    if not run(model, inp, a, "--save-attention", *tok) or not run(model, inp, b, *tok):
        continue
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb, h5py.File(os.path.join(FX, exp), "r") as e:
        ref, lens = e["attentions"][()], fa["samples/length"][()]
        blocks = att_read.blocks(fa)
        err = max(float(np.abs(blk - ref[i][:, :, :n, :n]).max()) for i, (blk, n) in enumerate(zip(blocks, lens)))
        check(err <= tol and att_read.packed_size(fa) == fa["attention"].shape[0],
              f"{model}: packed /attention ({fa['attention'].shape[0]} values) vs HF eager: max abs {err:.3g} (tol {tol:g})")
        names = [n for n in fa["stats"] if n in fb["stats"] and n not in ("topk_index",)]
        d = max(float(np.abs(fa["stats"][n][()].astype(np.float64) - fb["stats"][n][()]).max()) for n in names)
        check(d <= 2e-5, f"{model}: fused run's /stats ({len(names)} datasets) vs the explicit run's: max abs {d:.3g} (tol 2e-5)")
        if tok:
            ia, ib = fa["stats/topk_index"][()], fb["stats/topk_index"][()]
            wa, wb = fa["stats/topk_weight"][()], fb["stats/topk_weight"][()]
            bad = int(((ia != ib) & ~(np.abs(wa - wb) <= 2e-5)).sum())
            check(bad == 0, f"{model}: fused top-k indices vs explicit: {int((ia != ib).sum())} differ, {bad} not at near ties")
print(f"gpu_attention: {failures} failure(s)")
sys.exit(1 if failures else 0)
