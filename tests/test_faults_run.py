#!/usr/bin/env python3
"""Faults injected into `attnscope run` with strace: failed writes and deaths in the middle of one.

Each rank runs under its own `strace -f` (its threads included: the writer thread does the
pwrites) with one fault at the K-th call: pwrite64 failing with ENOSPC or EIO (K early: while
rank 0 creates the file; later: the raw writes of the data), fdatasync failing with EIO, and
SIGKILL delivered at the K-th pwrite64. Each time: a non-zero exit; for a failed write exactly
one `attnscope:` error line, naming the file and the system's error text; nothing at the final
path; and the same command run again without the fault completes with output equal to an
uninterrupted run's, dataset by dataset, leaving nothing else beside it. Exits non-zero on any
failure."""
import os, shutil, subprocess, sys, tempfile
import numpy as np, h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import SLOW, STRACE_ENV, check, summary
from inputs import write_input, random_lengths

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "attnscope")
MODEL = os.path.join(ROOT, "tests/fixtures/hf/bert_tiny")
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
TMP = tempfile.mkdtemp(prefix="attnscope-faults-")
if not shutil.which("strace"):
    check(False, "strace is installed (make deps installs it)")
    sys.exit(summary())

INPUT = f"{TMP}/input.h5"
write_input(INPUT, random_lengths(600))
RUN = [BIN, "run", "--model", MODEL, "--input", INPUT, "--head-similarity", "--checkpoint-every", "0"]


def attnscope(out, strace=None):
    inner = RUN + ["--out", out]
    if strace:
        inner = ["strace", *STRACE_ENV, "-f", "-qq", "-o", "/dev/null"] + strace + inner
    return subprocess.run(MPIRUN + ["-n", "2", "-x", "OMP_NUM_THREADS=1"] + inner, capture_output=True, text=True, timeout=120 * SLOW)


def datasets(f):
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(names)


def same(a, b):
    with h5py.File(a, "r") as x, h5py.File(b, "r") as y:
        return datasets(x) == datasets(y) and all(np.array_equal(x[n][:], y[n][:]) for n in datasets(x))


REF = f"{TMP}/ref.h5"
p = attnscope(REF)
check(p.returncode == 0, "the uninterrupted run")
info = ("attnscope: output ", "attnscope: resuming")
cases = [("pwrite64", "error=ENOSPC", k, "No space left on device") for k in (2, 5, 12, 20, 45, 90)] + \
        [("pwrite64", "error=EIO", k, "Input/output error") for k in (4, 30)] + \
        [("fdatasync", "error=EIO", k, "Input/output error") for k in (1, 3)] + \
        [("pwrite64", "signal=SIGKILL", k, None) for k in (3, 15, 40)]
work = f"{TMP}/w"
os.makedirs(work)
for call, what, k, text in cases:
    out = f"{work}/out.h5"
    p = attnscope(out, ["-e", f"trace={call}", "-e", f"inject={call}:{what}:when={k}"])
    errs = [l for l in p.stderr.splitlines() if l.startswith("attnscope:") and not l.startswith(info)]
    if text:
        one = len(errs) == 1 and text in errs[0] and "out.h5" in errs[0]
        check(p.returncode != 0 and one and not os.path.exists(out),
              f"{call} {what} at call {k} on each rank: exit {p.returncode}, {errs}, nothing at the final path")
    else:
        check(p.returncode != 0 and not os.path.exists(out), f"{call} {what} at call {k}: exit {p.returncode}, nothing at the final path")
    p2 = attnscope(out)
    resumed = [l for l in p2.stdout.splitlines() if l.startswith("attnscope: resuming")]
    left = sorted(x for x in os.listdir(work) if x != "out.h5")
    check(p2.returncode == 0 and same(out, REF) and not left,
          f"  the same command again: exit {p2.returncode}, {resumed[0][11:80] if resumed else 'from the start'}, "
          f"output == uninterrupted: {p2.returncode == 0 and same(out, REF)}, left beside it: {left}")
    if os.path.exists(out):
        os.remove(out)
    shutil.rmtree(out + ".partial", ignore_errors=True)

shutil.rmtree(TMP, ignore_errors=True)
sys.exit(summary())
