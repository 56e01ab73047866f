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
python3 - <<'PY'
import csv, collections
rows = list(csv.reader(open("/tmp/ncu.csv")))
hdr = next((i for i, r in enumerate(rows) if "Kernel Name" in r), None)
if hdr is None:
    print(open("/tmp/ncu.csv").read()[:2000]); raise SystemExit
h = rows[hdr]; ki = h.index("Kernel Name"); inv = h.index("Invocations") if "Invocations" in h else None
mi = h.index("Metric Name"); av = h.index("Average") if "Average" in h else h.index("Metric Value")
tot = collections.Counter()
for r in rows[hdr + 1:]:
    if len(r) <= max(ki, mi, av) or r[mi] != "gpu__time_duration.sum": continue
    n = int(r[inv]) if inv is not None else 1
    val = float(r[av].replace(",", ""))
    tot[r[ki][:90]] += val * n
s = sum(tot.values())
for k, v in tot.most_common(20): print(f"{v/1e6:9.3f} ms {100*v/s:5.1f}%  {k}")
print(f"total {s/1e6:.3f} ms")
PY
