#!/usr/bin/env bash
set -u
# Per-kernel GPU time of one ViT-B/16 vision batch (B images, default 128; PREC default fp32) with
# every /vision output, under Nsight Compute (base clocks: the shares count, not the times). GPU
# host, runtime sourced, repo root. ATTNSCOPE (build-cuda/attnscope).
B=${B:-128}; PREC=${PREC:-fp32}; BIN=${ATTNSCOPE:-build-cuda/attnscope}
[ -f /dev/shm/vitb1/config.json ] || python3 tests/bench/vision_peer.py --save /dev/shm/vitb1 --images "$B" | tail -1
timeout 300 ncu --metrics gpu__time_duration.sum --print-summary per-kernel --csv \
  "$BIN" run --model /dev/shm/vitb1 --input /dev/shm/vitb1/pixels.h5 --out /tmp/n.h5 --overwrite --batch "$B" \
  --max-tokens $((B * 197)) --precision "$PREC" --quiet --topk 0 --no-key-importance > /tmp/ncu.csv 2>/tmp/ncu.err
tail -2 /tmp/ncu.err
python3 - <<'PY'
import csv, collections
rows = list(csv.reader(open("/tmp/ncu.csv")))
hdr = next((i for i, r in enumerate(rows) if "Kernel Name" in r), None)
if hdr is None:
    print(open("/tmp/ncu.csv").read()[:2000]); raise SystemExit
h = rows[hdr]; ki = h.index("Kernel Name"); inv = h.index("Invocations") if "Invocations" in h else None
mi = h.index("Metric Name"); av = h.index("Average") if "Average" in h else h.index("Metric Value")
tot, calls = collections.Counter(), collections.Counter()
for r in rows[hdr + 1:]:
    if len(r) <= max(ki, mi, av) or r[mi] != "gpu__time_duration.sum": continue
    n = int(r[inv]) if inv is not None else 1
    tot[r[ki][:100]] += float(r[av].replace(",", "")) * n
    calls[r[ki][:100]] += n
s = sum(tot.values())
for k, v in tot.most_common(24): print(f"{v/1e6:9.3f} ms {100*v/s:5.1f}% {calls[k]:5d} calls  {k}")
print(f"total {s/1e6:.3f} ms")
PY
