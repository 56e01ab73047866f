#!/usr/bin/env bash
# Two GPUs against one on a run of more than two minutes (GPU host with >= 2 GPUs, runtime sourced,
# repo root): bert-base fp32, per-head statistics (--topk 0 --no-key-importance keeps the output
# small), L=512. One rank on ONE_REP x 80 samples, two ranks on TWO_REP x 80 (defaults 1000 and
# 2000: ~41M and ~82M tokens, over two minutes each at ~335k tokens/s per GPU); compares tokens/s.
set -euo pipefail
bin=${ATTNSCOPE_BIN:-build-cuda/attnscope}
dir=${BENCH_OUT:-/tmp/bench2}
mkdir -p "$dir"
python3 tests/bench/peer.py --model bert-base --save "$dir/bb" --save-only --shapes 16x512 --batches 5 | tail -1
python3 - "$dir" <<'PY'
import h5py, numpy as np, sys
d = sys.argv[1]
ids = h5py.File(f"{d}/bb/input_L512.h5")["input_ids"][:]
import os
for name, rep in (("one", int(os.environ.get("ONE_REP", 1000))), ("two", int(os.environ.get("TWO_REP", 2000)))):
    with h5py.File(f"{d}/{name}.h5", "w") as f:
        f["input_ids"] = np.tile(ids, (rep, 1))
    print(name, ids.shape[0] * rep, "samples of 512 tokens")
PY
for n in 1 2; do
  inp=$([ $n = 1 ] && echo one || echo two)
  echo "== $n rank(s)"
  mpirun -n $n --bind-to none "$bin" run --model "$dir/bb" --input "$dir/$inp.h5" --out "$dir/out$n.h5" --batch 16 \
      --max-tokens 8192 --quiet --topk 0 --no-key-importance 2>&1 | grep -E 'rank|wrote'
  rm -f "$dir/out$n.h5"
done
