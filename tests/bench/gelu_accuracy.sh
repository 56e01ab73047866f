#!/usr/bin/env bash
set -u
# gelu_accuracy.sh — what --gelu tanh (an erf GELU computed in its tanh form, in the GEMM's
# epilogue) costs in accuracy under --precision bf16, on a real model (GPU host, runtime sourced,
# repository root): MODEL (a BERT-family checkpoint; all-MiniLM-L6-v2 rounded to BF16 by
# st_bf16.py fits a call), its input: MODEL/input.h5 where st_bf16.py wrote one, else --text TEXT
# (jobs/demo_corpus.txt); or a ViT with IMAGES (a directory of PNGs). Runs fp32, bf16 --gelu exact
# and bf16 --gelu tanh with --save-attention (the explicit path) and with per-head scalars only
# (the fused path), and prints each bf16 run's largest difference to fp32: attention
# probabilities, /stats and (ViT) /vision.
MODEL=${MODEL:?a model directory}
TEXT=${TEXT:-jobs/demo_corpus.txt}
if [ -n "${IMAGES:-}" ]; then IN=(--images "$IMAGES"); elif [ -f "$MODEL/input.h5" ]; then IN=(--input "$MODEL/input.h5");
else IN=(--text "$TEXT"); fi
BIN=${ATTNSCOPE:-build-cuda/attnscope}
DIR=${DIR:-/tmp/gelu_acc}
mkdir -p "$DIR"
# (bf16:f32s: the float32 residual stream of before, ATTNSCOPE_F32_STREAM=1, for comparison)
for v in fp32:exact bf16:exact bf16:tanh bf16:f32s; do
  p=${v%%:*}; g=${v#*:}; tag=$p-$g; env=""
  [ "$g" = f32s ] && { env="ATTNSCOPE_F32_STREAM=1"; g=exact; }
  env $env "$BIN" run --model "$MODEL" "${IN[@]}" --out "$DIR/att_$tag.h5" --overwrite --quiet --save-attention \
    --precision "$p" --gelu "$g" 2>&1 | grep -E "rror" | head -2
  env $env "$BIN" run --model "$MODEL" "${IN[@]}" --out "$DIR/scal_$tag.h5" --overwrite --quiet \
    --precision "$p" --gelu "$g" 2>&1 | grep -E "rror" | head -2
done
MODEL="$MODEL" DIR="$DIR" python3 - <<'PY'
import os, h5py, numpy as np
d = os.environ["DIR"]
def stats(f):
    return {k: f["stats/" + k][:] for k in f["stats"] if f["stats/" + k].ndim == 3}
for kind in ("att", "scal"):
    ref = h5py.File(f"{d}/{kind}_fp32-exact.h5")
    for g in ("exact", "tanh", "f32s"):
        f = h5py.File(f"{d}/{kind}_bf16-{g}.h5")
        line = f"bf16 {'--gelu ' + g if g != 'f32s' else 'f32 stream':12s} ({'explicit path' if kind == 'att' else 'fused path   '}) vs fp32:"
        if kind == "att":
            line += f" attention {np.abs(f['attention'][:].astype(np.float64) - ref['attention'][:]).max():.3g};"
        s, r = stats(f), stats(ref)
        line += " " + ", ".join(f"{k} {np.abs(s[k] - r[k]).max():.2g}" for k in ("entropy", "distance", "attn_cls", "attn_sep", "locality") if k in s)
        if "vision" in f and kind == "scal":
            line += "; /vision " + ", ".join(f"{k} {np.abs(f['vision/' + k][:] - ref['vision/' + k][:]).max():.2g}"
                                            for k in ("cls_attention", "rollout", "distance_px", "locality2d") if k in f["vision"])
        print(line)
# the peer's own bf16 error on the same model and ids (a BERT with input.h5): transformers eager in
# bf16 against eager in fp32 (TF32 off), entropy and distance per head as /stats defines them
if not os.path.exists(os.environ["MODEL"] + "/input.h5"):
    raise SystemExit
import torch
from transformers import AutoModel
torch.backends.cuda.matmul.allow_tf32 = False
inp = h5py.File(os.environ["MODEL"] + "/input.h5")
ids = torch.tensor(inp["input_ids"][:], dtype=torch.long).cuda()
mask = torch.tensor(inp["attention_mask"][:], dtype=torch.long).cuda()
n = mask.sum(1).cpu().numpy()
def hf_stats(dtype):
    m = AutoModel.from_pretrained(os.environ["MODEL"], attn_implementation="eager", dtype=dtype).cuda().eval()
    ent, dist = [], []
    with torch.no_grad():
        for b in range(0, len(ids), 64):
            att = m(input_ids=ids[b:b + 64], attention_mask=mask[b:b + 64], output_attentions=True).attentions
            a = torch.stack(att, 1).double().cpu().numpy()       # (B, layers, heads, T, T)
            for k in range(a.shape[0]):
                L = n[b + k]
                p = a[k, :, :, :L, :L]
                ent.append(-(p * np.log(np.where(p > 0, p, 1))).sum(-1).mean(-1))
                dist.append((p * np.abs(np.arange(L)[:, None] - np.arange(L)[None, :])).sum(-1).mean(-1))
    return np.array(ent), np.array(dist)
e32, d32 = hf_stats(torch.float32)
e16, d16 = hf_stats(torch.bfloat16)
ours = h5py.File(f"{d}/scal_fp32-exact.h5")
print(f"transformers eager bf16 vs its fp32: entropy {np.abs(e16 - e32).max():.2g}, distance {np.abs(d16 - d32).max():.2g}")
print(f"attnscope fp32 (fused) vs transformers fp32: entropy {np.abs(ours['stats/entropy'][:] - e32).max():.2g}, "
      f"distance {np.abs(ours['stats/distance'][:] - d32).max():.2g}")
for g in ("exact", "tanh", "f32s"):
    f = h5py.File(f"{d}/scal_bf16-{g}.h5")
    print(f"attnscope bf16 {g} (fused) vs transformers fp32: entropy {np.abs(f['stats/entropy'][:] - e32).max():.2g}, "
          f"distance {np.abs(f['stats/distance'][:] - d32).max():.2g}")
PY
