#!/usr/bin/env python3
"""Hostile and broken input files (issue 14): `attnscope run --input FILE.h5` and `attnscope reduce`
refuse them with one "attnscope:" line that names the file and the problem, exit non-zero, print no
HDF5 error stack, do not crash or hang (every command runs under a timeout: a hang is a failure) and
leave nothing half-written (a refused reduce leaves OUT.h5 byte-identical).

The huge declared shapes are chunked datasets of which nothing is written (h5py makes them in a few
KB): --input allows at most 2^31-1 samples, and every dataset read must have its declared size
stored in the file (unwritten chunks of a sparse dataset would read as zeros).
Also: a +inf in a statistic is not counted in any histogram bin (nor in mean and std: README).
Prints every comparison; exits non-zero on any failure."""
import filecmp, os, shutil, subprocess, sys, tempfile
import numpy as np, h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import SLOW, check, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
BIN = os.path.join(BUILD, "attnscope")
FX = os.path.join(ROOT, "tests/fixtures/hf")
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
TMP = tempfile.mkdtemp(prefix="attnscope-hostile-")
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
TIMEOUT = 60 * SLOW


def run(cmd, np_=1):
    cmd = (MPIRUN + ["-n", str(np_)] if np_ > 1 else []) + [str(c) for c in cmd]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(cmd, "timeout", e.stdout or "", (e.stderr or b"").decode() if isinstance(e.stderr, bytes) else (e.stderr or ""))


def refused(what, p, path, words):
    """p failed cleanly: rc 1, one attnscope: line naming path and every word, no stack, no crash."""
    err = [l for l in p.stderr.splitlines() if l.startswith("attnscope:")]
    crashed = any(s in p.stderr for s in ("HDF5-DIAG", "Signal:", "Segmentation", "MPI_ABORT", "out of host memory"))
    line = err[0] if err else p.stderr.strip()[-300:]
    ok = p.returncode == 1 and len(err) == 1 and path in line and all(w in line for w in words) and not crashed
    return check(ok, f"{what}: rc {p.returncode}, {len(err)} attnscope: line(s), no HDF5 stack/abort: {not crashed}; "
                     f"expected {path!r} and {words}: {line}")


# ---- run --input FILE.h5 ---------------------------------------------------------------------------
BERT = f"{FX}/bert_tiny"


def ids_file(name, shape, dtype="i4", chunks=(1024, 4), extra=None):
    path = f"{TMP}/{name}.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("input_ids", shape=shape, dtype=dtype, chunks=chunks)
        if extra: extra(f)
    return path


def run_input(path, model=BERT, np_=1):
    return run([BIN, "run", "--model", model, "--input", path, "--out", f"{TMP}/o_{os.path.basename(path)}"], np_)


for name, shape, words in [("rows_2p32_3", (2**32 + 3, 4), ["/input_ids", "4294967299"]),
                           ("rows_2p31_10", (2**31 + 10, 4), ["/input_ids", "2147483658"]),
                           ("rows_sparse", (2**26, 4), ["/input_ids", "stores"])]:
    p = ids_file(name, shape)
    refused(f"--input /input_ids declared {list(shape)}, nothing written", run_input(p), p, words)
p = ids_file("mask_sparse", (8, 4), chunks=(1, 4), extra=lambda f: f.create_dataset("attention_mask", shape=(8, 4), dtype="i4", chunks=(1, 4)))
with h5py.File(p, "a") as f: f["input_ids"][...] = 5
refused("--input /attention_mask declared [8, 4], nothing written", run_input(p), p, ["/attention_mask", "stores"])
p = ids_file("rows_2p31_10_np2", (2**31 + 10, 4))
refused("--input /input_ids declared [2^31+10, 4], 2 ranks", run_input(p, np_=2), p, ["/input_ids"])

VIT = f"{FX}/vit_tiny"
if os.path.isdir(VIT):
    for name, shape in [("px_2p32", (2**32 + 3, 3, 32, 32)), ("px_sparse", (2**22, 3, 32, 32))]:
        path = f"{TMP}/{name}.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("pixel_values", shape=shape, dtype="f4", chunks=(1, 3, 32, 32))
        refused(f"--input /pixel_values declared {list(shape)}, nothing written", run_input(path, VIT), path, ["/pixel_values"])

# ---- reduce ----------------------------------------------------------------------------------------
RUN = f"{TMP}/run.h5"
p = run(MPIRUN + ["-n", "1", BIN, "run", "--model", BERT, "--input", f"{FX}/input_tiny.h5", "--save-attention", "--out", RUN])
if not check(p.returncode == 0, "attnscope run writes the run output"):
    print(p.stdout, p.stderr)
    sys.exit(summary())
with h5py.File(RUN, "r") as f:
    N, L, H = f["stats/entropy"].shape
    STATS = [n for n in f["stats"] if f["stats/" + n].ndim == 3]


def variant(name, edit):
    path = f"{TMP}/{name}.h5"
    shutil.copy(RUN, path)
    with h5py.File(path, "a") as f: edit(f)
    shutil.copy(path, path + ".orig")
    return path


def reduce_refused(what, path, words, figs=False):
    p = run([BIN, "reduce", path] + (["--figures", f"{TMP}/figs_{os.path.basename(path)}"] if figs else []))
    same = filecmp.cmp(path, path + ".orig", shallow=False)
    left = [n for n in os.listdir(TMP) if ".reduce." in n]
    ok = refused(what, p, path, words)
    check(same and not left, f"{what}: OUT.h5 byte-identical: {same}, no temporary left: {left}")
    return ok


def replace(f, name, data=None, **kw):
    del f[name]
    f.create_dataset(name, data=data, **kw)


S = STATS[1] if len(STATS) > 1 else STATS[0]
reduce_refused(f"/stats/{S} of strings", variant("str", lambda f: replace(f, f"stats/{S}", np.full((N, L, H), b"x", "S4"))),
               [f"/stats/{S}"])
cmp_t = np.dtype([("a", "f4"), ("b", "i4")])
reduce_refused("/stats/entropy compound", variant("cmpd", lambda f: replace(f, "stats/entropy", np.zeros((N, L, H), cmp_t))),
               ["/stats/entropy"])
reduce_refused("/samples/length short", variant("shortlen", lambda f: replace(f, "samples/length", np.ones(N - 1, "i4"))),
               ["/samples/length"], figs=True)


def summary_dataset(f):
    if "summary" in f: del f["summary"]
    f["summary"] = np.zeros(3, "f4")


reduce_refused("/summary a dataset", variant("sumds", summary_dataset), ["/summary"])
reduce_refused("/stats/* declared [2^40, 1, 1]", variant("huge", lambda f: [replace(f, "stats/" + n, shape=(2**40, 1, 1), dtype="f4", chunks=(4096, 1, 1))
                                                                          for n in list(f["stats"])]), ["/stats/"])
# 2^48 x 256 x 256 = 2^64 values: HDF5's H5Sget_simple_extent_npoints wraps to 0 (h5_space_values)
reduce_refused("/stats/* declared [2^48, 256, 256] (2^64 values), nothing written",
               variant("wraps", lambda f: [replace(f, "stats/" + n, shape=(2**48, 256, 256), dtype="f4", chunks=(1, 256, 256))
                                           for n in list(f["stats"])]), ["/stats/", "2^64"])
reduce_refused("/stats/* declared [2^24, L, H], nothing written",
               variant("sparse", lambda f: [replace(f, "stats/" + n, shape=(2**24,) + f["stats/" + n].shape[1:], dtype="f4",
                                                    chunks=(64,) + f["stats/" + n].shape[1:]) for n in list(f["stats"])]), ["stores"])
if "sink_rate" in STATS or "stats/sink_rate" in h5py.File(RUN, "r"):
    reduce_refused("/stats/sink_rate short", variant("sink", lambda f: replace(f, "stats/sink_rate", np.zeros(N - 1, "f4"))),
                   ["/stats/sink_rate"])


# +inf: not in any histogram bin
def with_inf(f):
    v = f["stats/entropy"][()]
    v[0, 0, 0] = np.inf
    v[1 % N, 0, 0] = -np.inf
    f["stats/entropy"][...] = v


path = variant("inf", with_inf)
p = run([BIN, "reduce", path])
with h5py.File(path, "r") as f:
    hist = f["summary/entropy_hist"][()]
    mean = f["summary/entropy_mean"][()]
counts = hist.sum(axis=2)
finite_n = N - (2 if N > 1 else 1)
check(p.returncode == 0 and counts[0, 0] == finite_n and (counts.reshape(-1)[1:] == N).all() and np.isfinite(mean).all(),
      f"+inf/-inf in /stats/entropy[.., 0, 0]: rc {p.returncode}, head (0, 0) counts {counts[0, 0]} of {N} samples in its bins "
      f"(expected {finite_n}: non-finite left out), other heads {sorted(set(counts.reshape(-1)[1:].tolist()))}, mean finite: {np.isfinite(mean).all()}")

# a CNN run (reduce_cnn.c): /cnn/stage_0/mean declared [2^28, 8], nothing written
CNN = f"{FX}/resnet_basic_tiny"
if os.path.isdir(CNN):
    p = run([BIN, "run", "--model", CNN, "--input", f"{FX}/input_resnet.h5", "--out", f"{TMP}/cnn.h5"])
    if check(p.returncode == 0, "attnscope run writes a CNN run output"):
        RUN = f"{TMP}/cnn.h5"
        reduce_refused("/cnn/stage_0/mean declared [2^28, 8], nothing written",
                       variant("cnn_sparse", lambda f: replace(f, "cnn/stage_0/mean", shape=(2**28, 8), dtype="f4", chunks=(1024, 8))),
                       ["/cnn/stage_0/mean", "stores"])

shutil.rmtree(TMP, ignore_errors=True)
sys.exit(summary())
