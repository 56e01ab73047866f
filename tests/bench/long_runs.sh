#!/usr/bin/env bash
set -u
# Long runs (1,024,000 tokens each, 5-10 s) on the GPU host: the bench tokens repeated 25 times, so
# that the GPU is at full clock for most of the run (short runs start at idle clocks). PRECS, MODES
# (scal: --topk 0 --no-key-importance; all) and PEER_DTYPES (fp32, bf16, fp32,bf16 or none) choose.
python3 tests/bench/peer.py --model bert-base --save /tmp/bb --save-only --shapes 64x128,16x512 --batches 5 2>&1 | tail -1
python3 - <<'PY'
import h5py, numpy as np
for L, rep in ((128, 25), (512, 25)):
    ids = h5py.File(f"/tmp/bb/input_L{L}.h5")["input_ids"][:]
    with h5py.File(f"/tmp/bb/long_L{L}.h5", "w") as f:
        f["input_ids"] = np.tile(ids, (rep, 1)); f["attention_mask"] = np.ones((ids.shape[0] * rep, L), np.int32)
    print(L, ids.shape[0] * rep, "samples")
PY
nvidia-smi --query-gpu=clocks.sm,clocks.max.sm --format=csv
for L in 128 512; do
  B=$([ $L = 128 ] && echo 64 || echo 16)
  for prec in ${PRECS:-fp32 tf32}; do
    for mode in ${MODES:-scal all}; do
      extra=$([ $mode = scal ] && echo "--topk 0 --no-key-importance" || echo "")
      echo "== long L=$L $prec $mode"
      build-cuda/attnscope run --model /tmp/bb --input /tmp/bb/long_L$L.h5 --out /tmp/long.h5 --batch $B --max-tokens $((B*L)) --quiet --precision $prec $extra 2>&1 | grep -E 'wrote'
      rm -f /tmp/long.h5
    done
  done
done
[ "${PEER_DTYPES:-fp32}" = none ] || python3 tests/bench/peer.py --model bert-base --dtypes ${PEER_DTYPES:-fp32} --shapes 64x128,16x512 --pipelines P0,P1 --batches 20 2>&1 | grep -E 'P[01] '
