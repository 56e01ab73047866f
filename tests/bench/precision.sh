#!/usr/bin/env bash
set -u
# Precision comparison on the GPU host (runtime sourced, repo root): the peer in bf16, attnscope
# in fp32/tf32/bf16 on the same saved bert-base and tokens, and the /stats difference to fp32.
build-cuda/tests/test_backend_gpu 2>&1 | grep -E 'bf16|failure'
build-cuda/tests/test_attn_gpu 2>&1 | grep -E 'bf16|failure'
python3 tests/bench/peer.py --model bert-base --save /tmp/bb --save-only --shapes 64x128,16x512 --batches 5 2>&1 | tail -1
python3 tests/bench/peer.py --model bert-base --dtypes bf16 --shapes 64x128,16x512 --pipelines P0,P1 --batches 10 2>&1 | grep -E 'P[01] '
for L in 128 512; do
  B=$([ $L = 128 ] && echo 64 || echo 16)
  for prec in fp32 tf32 bf16; do
    for mode in scal all; do
      extra=$([ $mode = scal ] && echo "--topk 0 --no-key-importance" || echo "")
      echo "== L=$L B=$B $prec $mode"
      build-cuda/attnscope run --model /tmp/bb --input /tmp/bb/input_L$L.h5 --out /tmp/p_${L}_${prec}_${mode}.h5 --batch $B --max-tokens $((B*L)) --quiet --precision $prec $extra 2>&1 | grep -E 'wrote'
    done
  done
done
python3 - <<'PY'
import h5py, numpy as np
for L in (128, 512):
    ref = h5py.File(f"/tmp/p_{L}_fp32_all.h5")
    for prec in ("tf32", "bf16"):
        f = h5py.File(f"/tmp/p_{L}_{prec}_all.h5")
        errs = {n: float(np.abs(f["stats/" + n][:] - ref["stats/" + n][:]).max()) for n in ref["stats"] if ref["stats/" + n].ndim == 3}
        print(f"L={L} {prec} vs fp32, max abs diff of /stats:", ", ".join(f"{k} {v:.2g}" for k, v in sorted(errs.items())))
PY
echo "== memory-sized batches: --batch 4096 on L=512"
build-cuda/attnscope run --model /tmp/bb --input /tmp/bb/input_L512.h5 --out /tmp/big.h5 --batch 4096 --max-tokens 100000000 --quiet --topk 0 --no-key-importance 2>&1 | grep -E 'wrote|retry|memory'
