#!/usr/bin/env python3
"""ncu_summary.py CSV [TOP] — the per-kernel GPU time of an Nsight Compute run
(`ncu --metrics gpu__time_duration.sum --print-summary per-kernel --csv`): the TOP kernels by total
time (invocations x average), with their share and call count, and the total."""
import collections, csv, sys

rows = list(csv.reader(open(sys.argv[1])))
top = int(sys.argv[2]) if len(sys.argv) > 2 else 24
hdr = next((i for i, r in enumerate(rows) if "Kernel Name" in r), None)
if hdr is None:
    print(open(sys.argv[1]).read()[:2000])
    raise SystemExit
h = rows[hdr]
ki = h.index("Kernel Name")
inv = h.index("Invocations") if "Invocations" in h else None
mi = h.index("Metric Name")
av = h.index("Average") if "Average" in h else h.index("Metric Value")
tot, calls = collections.Counter(), collections.Counter()
for r in rows[hdr + 1:]:
    if len(r) <= max(ki, mi, av) or r[mi] != "gpu__time_duration.sum":
        continue
    n = int(r[inv]) if inv is not None else 1
    tot[r[ki][:100]] += float(r[av].replace(",", "")) * n
    calls[r[ki][:100]] += n
s = sum(tot.values())
for k, v in tot.most_common(top):
    print(f"{v/1e6:9.3f} ms {100*v/s:5.1f}% {calls[k]:5d} calls  {k}")
print(f"total {s/1e6:.3f} ms")
