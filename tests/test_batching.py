#!/usr/bin/env python3
"""Batching by length: one long outlier among short samples must not pad its neighbours.

A run sorts each window of samples by length and closes a batch before its padding would pass
10% of its cells (B x T). Corpora: short samples (5-20 tokens) with a few outliers at the model's
limit (64 tokens of the HF fixture bert_tiny), bimodal lengths, and uniform lengths. Checks, for
each: the padding the run reports is at most 10% of the tokens it computed; the output equals a
run with --batch 1 (no padding at all) — bit for bit on the samples' rows, the statistics within
1e-6 of each statistic's largest value (other batch shapes may round differently); the file's sample order is the input order.
Exits non-zero on any failure."""
import os, re, subprocess, sys, tempfile
import numpy as np, h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary
from inputs import write_input

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "attnscope")
MODEL = os.path.join(ROOT, "tests/fixtures/hf/bert_tiny")
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
TMP = tempfile.mkdtemp(prefix="attnscope-batching-")


def run(inp, out, *extra):
    cmd = MPIRUN + ["-n", "2", "-x", "OMP_NUM_THREADS=1", BIN, "run", "--model", MODEL, "--input", inp, "--out", out] + [str(a) for a in extra]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        print(p.stdout[-1500:], p.stderr[-1500:])
    m = re.search(r"padding ([0-9.]+)% of (\d+) tokens computed", p.stdout)
    return p.returncode, (float(m.group(1)), int(m.group(2))) if m else (None, None)


r = np.random.default_rng(0)
cases = {
    "short + 4 outliers at 64": np.concatenate([r.integers(5, 21, 1200), [64] * 4]),
    "bimodal 6-10 / 50-64": np.concatenate([r.integers(6, 11, 600), r.integers(50, 65, 600)]),
    "uniform 3-64": r.integers(3, 65, 1200),
}
for name, lens in cases.items():
    r.shuffle(lens)
    inp = f"{TMP}/in.h5"
    write_input(inp, lens, seed=1)
    a, b = f"{TMP}/a.h5", f"{TMP}/b.h5"
    for f in (a, b):
        if os.path.exists(f): os.remove(f)
    rc, (pad, computed) = run(inp, a)
    rc1, _ = run(inp, b, "--batch", 1)
    tokens = int(lens.sum())
    check(rc == 0 and pad is not None and pad <= 10.0 and computed <= 1.1 * tokens,
          f"{name}: padding {pad}% of {computed} cells computed for {tokens} tokens (limit 10%)")
    if rc or rc1:
        continue
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        same = all(np.array_equal(fa[n][:], fb[n][:]) for n in ("samples/length", "samples/input_ids", "samples/source_row"))
        order = np.array_equal(fa["samples/length"][:], lens)
        d = max(float(np.abs(fa["stats/" + s][:].astype(np.float64) - fb["stats/" + s][:]).max()) /
                max(1.0, float(np.abs(fb["stats/" + s][:]).max())) for s in fa["stats"])
    check(same and order and d <= 1e-6, f"{name}: output == the unpadded run (--batch 1): samples identical {same}, "
          f"input order kept {order}, /stats max diff {d:.3g} relative to each statistic's largest value (tol 1e-6)")
sys.exit(summary())
