#!/usr/bin/env bash
set -u
# Accuracy of every --precision against the peer (GPU host, runtime sourced, repo root; needs
# /tmp/bb from `peer.py --save /tmp/bb`): 8 sequences of 512 tokens of the bench's bert-base,
# attnscope --save-attention in each precision vs transformers eager fp32 (TF32 off) on the
# same GPU; prints the max abs error of the probabilities and of the entropy per head. Then the
# per-head scalars of runs that store none of the probabilities (--topk 0 --no-key-importance:
# the fused kernel under bf16) against the same scalars computed from transformers' probabilities.
# A precision "P:G" runs --precision P --gelu G (bf16:tanh: the GELU in the GEMM's epilogue).
# ATTNSCOPE: the binary (build-cuda/attnscope).
PRECS=${PRECS:-"fp32 fp32-sgemm tf32 bf16 bf16:tanh"}
BIN=${ATTNSCOPE:-build-cuda/attnscope}
python3 - <<'PY'
import h5py, numpy as np
ids = h5py.File("/tmp/bb/input_L512.h5")["input_ids"][:8]
with h5py.File("/tmp/bb/acc_L512.h5", "w") as f:
    f["input_ids"] = ids; f["attention_mask"] = np.ones(ids.shape, np.int32)
PY
for pg in $PRECS; do
  prec=${pg%%:*}; gelu=$([ "$pg" = "$prec" ] && echo exact || echo ${pg#*:})
  "$BIN" run --model /tmp/bb --input /tmp/bb/acc_L512.h5 --out /tmp/bb/acc_$pg.h5 --batch 8 --quiet \
    --save-attention --precision $prec --gelu $gelu 2>&1 | grep -E 'error|wrote' | head -2
  "$BIN" run --model /tmp/bb --input /tmp/bb/acc_L512.h5 --out /tmp/bb/acc_${pg}_scal.h5 --batch 8 --quiet \
    --topk 0 --no-key-importance --precision $prec --gelu $gelu 2>&1 | grep -E 'error' | head -2
done
PRECS="$PRECS" python3 - <<'PY'
import os, h5py, numpy as np, torch
from transformers import AutoModel
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
m = AutoModel.from_pretrained("/tmp/bb", attn_implementation="eager", torch_dtype=torch.float32).cuda().eval()
ids = torch.tensor(h5py.File("/tmp/bb/acc_L512.h5")["input_ids"][:], dtype=torch.long).cuda()
with torch.no_grad():
    att = torch.stack(m(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True).attentions, 1)
ref = att.double().cpu().numpy()                      # (N, layers, heads, L, L)
ent = -(ref * np.log(np.where(ref > 0, ref, 1))).sum(-1).mean(-1)
print(f"reference: transformers eager fp32 (TF32 off), {ref.shape}, max p {ref.max():.3g}")
for prec in os.environ["PRECS"].split():
    f = h5py.File(f"/tmp/bb/acc_{prec}.h5")
    # /attention is stored without padding: sample i's [L, H, n, n] block from /attention_offset[i]
    flat, off, n = f["attention"], f["attention_offset"][:], f["samples/length"][:]
    a = np.stack([flat[o:o + ref[0].size].reshape(ref.shape[1:]) for o in off]).astype(np.float64)
    assert (n == ref.shape[-1]).all()
    e = np.abs(a - ref).max()
    es = np.abs(f["stats/entropy"][:] - ent).max()
    print(f"{prec:11s} attention max abs err {e:.3g}, entropy (mean over queries) max abs err {es:.3g}")
# the scalars from the probabilities, as stats.h defines them (every sample is 512 real tokens)
L = ref.shape[-1]
d = np.abs(np.arange(L)[:, None] - np.arange(L)[None, :])
w = int(h5py.File(f"/tmp/bb/acc_{os.environ['PRECS'].split()[0]}_scal.h5")["stats"].attrs["window"])
want = {"entropy": ent, "entropy_norm": ent / np.log(L), "distance": (ref * d).sum(-1).mean(-1),
        "locality": (ref * (d <= w)).sum(-1).mean(-1), "attn_cls": ref[..., 0].mean(-1),
        "attn_self": np.diagonal(ref, axis1=-2, axis2=-1).mean(-1),
        "attn_prev": np.concatenate([np.zeros(ref.shape[:-2] + (1,)), np.diagonal(ref, -1, -2, -1)], -1).mean(-1),
        "attn_next": np.concatenate([np.diagonal(ref, 1, -2, -1), np.zeros(ref.shape[:-2] + (1,))], -1).mean(-1),
        "sink_importance": ref[..., 0].mean(-1)}
for prec in os.environ["PRECS"].split():
    f = h5py.File(f"/tmp/bb/acc_{prec}_scal.h5")
    errs = ", ".join(f"{k} {np.abs(f['stats/' + k][:] - v).max():.2g}" for k, v in want.items())
    print(f"{prec:11s} scalars only (max abs err): {errs}")
PY
