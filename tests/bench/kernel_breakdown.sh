#!/usr/bin/env bash
set -u
# Per-kernel GPU time of one bert-base batch (B x L, default 64 x 128; PREC default fp32) under
# Nsight Compute (base clocks: the shares count, not the times). GPU host, runtime sourced, repo root.
L=${L:-128}; B=${B:-64}; PREC=${PREC:-fp32}
python3 tests/bench/peer.py --model bert-base --save /tmp/bb --save-only --shapes ${B}x$L --batches 5 2>&1 | tail -1
B=$B L=$L python3 - <<'PY'
import h5py, os
ids = h5py.File(f"/tmp/bb/input_L{os.environ['L']}.h5")["input_ids"][:int(os.environ["B"])]
with h5py.File("/tmp/bb/one.h5", "w") as f: f["input_ids"] = ids
PY
timeout 240 ncu --metrics gpu__time_duration.sum --print-summary per-kernel --csv \
  build-cuda/attnscope run --model /tmp/bb --input /tmp/bb/one.h5 --out /tmp/n.h5 --batch $B --max-tokens $((B*L)) --precision $PREC --quiet --topk 0 --no-key-importance > /tmp/ncu.csv 2>/tmp/ncu.err
tail -3 /tmp/ncu.err
python3 tests/bench/ncu_summary.py /tmp/ncu.csv 20
