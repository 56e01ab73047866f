#!/usr/bin/env python3
"""Faults injected into `attnscope reduce` with strace: it never loses or corrupts the run's file.

reduce writes its result as a new file (a copy of OUT.h5 with /summary, made beside it and renamed
over it, src/afile.h); the figures likewise. Every fault below is injected into one reduce of a
fresh copy of a real run output (bert_tiny, --save-attention --head-similarity) and afterwards:
OUT.h5 opens with h5py and its /stats equal the run's; after a failure it is byte-identical to the
run's file, after a success it holds the new /summary and the run's head similarity; a failure
exits non-zero with exactly one "attnscope:" line that names the cause (and no HDF5 stack, no crash
in MPI_Finalize); no temporary is left, except after a SIGKILL, when the next reduce removes it.

Faults (found with a first traced run, `strace -y`, that lists every pwrite64 with its file):
  ENOSPC on single pwrite64 calls into the copy (HDF5 writes with pwrite64 only), from the first
  (the superblock at open) to the last (applying the close); after a failed write reduce writes
  nothing more to the disk (checked), so this is also what a disk that stays full does; EIO on
  one; ENOSPC and EXDEV on copy_file_range
  (EXDEV: the read/write fallback, itself given ENOSPC); EIO on fsync of the file and of the
  directory; EACCES on rename; SIGKILL at the same places; ENOSPC with 2 ranks; ENOSPC and EIO
  on the figures; the same for the summary in its own file (reduce --summary-out).
The close's own writes go to an in-memory stand-in (src/summary.c: HDF5 1.10 crashes at exit after
a failed H5Fclose); faults on those are not injected: memory does not fill up like a disk.
Prints every comparison; exits non-zero on any failure."""
import filecmp, os, re, shutil, subprocess, sys, tempfile
import numpy as np, h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import STRACE_ENV, check, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
BIN = os.path.join(BUILD, "attnscope")
FX = os.path.join(ROOT, "tests/fixtures/hf")
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
STRACE = shutil.which("strace")
TMP = tempfile.mkdtemp(prefix="attnscope-faults-")
OUT = f"{TMP}/out.h5"
FIGS = f"{TMP}/figs"
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")

if not check(STRACE is not None, "strace is installed (apt-get install strace)"):
    sys.exit(summary())


def run(cmd):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=ROOT, env=ENV)


def reduce(*inject, np_=1, figs=False, trace=None, binary=None):
    """One reduce of OUT (one rank: the binary itself, an MPI singleton; faster than mpirun),
    under strace with the given -e inject= rules. With np_ ranks only rank 0 runs under strace:
    the rules count rank 0's calls, the faults are rank 0's (another rank's own calls, which vary
    with the machine's load, never reach a rule)."""
    st = [STRACE, *STRACE_ENV, "-f", "-o", trace or "/dev/null"] + (["-y", "-e", "trace=pwrite64"] if trace else [])
    for i in inject: st += ["-e", "inject=" + i]
    cmd = binary or [BIN, "reduce", OUT] + (["--figures", FIGS] if figs else [])
    if np_ == 1:
        return run(st + cmd)
    rank0 = 'if [ "$OMPI_COMM_WORLD_RANK" = 0 ]; then exec "$@"; fi; shift ' + str(len(st)) + '; exec "$@"'
    return run(MPIRUN + ["-n", str(np_), "sh", "-c", rank0, "sh"] + st + cmd)


def stats_of(path):
    with h5py.File(path, "r") as f:
        return {n: f["stats/" + n][()] for n in f["stats"]}


def leftovers(d=TMP):
    return sorted(n for n in os.listdir(d) if ".reduce." in n or ".tmp." in n)


# ---- a run output, and a reference reduce of it --------------------------------------------------
RUN = f"{TMP}/run.h5"
p = run(MPIRUN + ["-n", "1", BIN, "run", "--model", f"{FX}/bert_tiny", "--input", f"{FX}/input_tiny.h5",
                  "--save-attention", "--head-similarity", "--out", RUN])
if not check(p.returncode == 0, "attnscope run writes the run output"):
    print(p.stdout, p.stderr)
    sys.exit(summary())
STATS = stats_of(RUN)
with h5py.File(RUN, "r") as f:
    RUN_SIM = {n: f["summary/" + n][()] for n in f["summary"]}
shutil.copy(RUN, OUT)
p = reduce()
with h5py.File(OUT, "r") as f:
    REF = {n: f["summary/" + n][()] for n in f["summary"]}
check(p.returncode == 0 and "entropy_mean" in REF and set(RUN_SIM) <= set(REF),
      f"reference reduce: {len(REF)} datasets under /summary, the run's {sorted(RUN_SIM)} among them")


def state(what, p, fails, cause=None, killed=False):
    """The checks after one faulty reduce. fails: it must fail (None: either way)."""
    err = [l for l in p.stderr.splitlines() if l.startswith("attnscope:")]
    crashed = "Signal:" in p.stderr or "Segmentation" in p.stderr or "HDF5-DIAG" in p.stderr
    same = filecmp.cmp(OUT, RUN, shallow=False)
    try:
        ok_stats = all(np.array_equal(v, STATS[n]) for n, v in stats_of(OUT).items()) and set(stats_of(OUT)) == set(STATS)
        with h5py.File(OUT, "r") as f:
            summ = {n: f["summary/" + n][()] for n in f["summary"]}
        opens = True
    except Exception as e:  # noqa: BLE001 — any failure to read is what we look for
        opens, ok_stats, summ = False, False, {}
        print("     h5py:", e)
    complete = set(summ) == set(REF) and all(np.array_equal(summ[n], REF[n]) for n in REF)
    if killed:
        ok = p.returncode != 0 and opens and ok_stats and (same or complete)
        left = leftovers()
        check(ok, f"{what}: killed (rc {p.returncode}); OUT.h5 opens, /stats equal the run's, "
                  f"{'byte-identical to the run file' if same else 'complete new /summary' if complete else 'NEITHER old nor new'}; left: {left}")
        return
    ok = opens and ok_stats and not crashed and not leftovers()
    if fails or (fails is None and p.returncode != 0):
        if len(err) != 1:
            print("     stderr:", p.stderr[-2000:])
        ok = ok and p.returncode == 1 and same and len(err) == 1 and (cause is None or cause in err[0])
        check(ok, f"{what}: rc {p.returncode}, OUT.h5 byte-identical: {same}, no temporary: {not leftovers()}, "
                  f"no crash/HDF5 stack: {not crashed}, {len(err)} line: {err[0] if err else p.stderr.strip()[-300:]}")
    else:
        ok = ok and p.returncode == 0 and complete and not err
        check(ok, f"{what}: rc {p.returncode}, OUT.h5 complete with {len(summ)} /summary datasets (the run's kept), no temporary: {not leftovers()}"
              + ("" if ok else f" stderr: {p.stderr.strip()[-300:]}"))


def fresh():
    shutil.copy(RUN, OUT)
    for n in leftovers(): os.remove(f"{TMP}/{n}")


# ---- where the writes go ---------------------------------------------------------------------------
fresh()
trace = f"{TMP}/trace.txt"
p = reduce(trace=trace, figs=True)


def pwrites(trace):
    """The files of the pwrite64 calls of the thread that writes the copy, in order (strace -y)."""
    calls = [m.groups() for m in (re.match(r"(\d+)\s+pwrite64\(\d+<([^>]*)>", l) for l in open(trace)) if m]
    tid = next(t for t, path in calls if ".out.h5.reduce." in path)
    return [path for t, path in calls if t == tid]


paths = pwrites(trace)
copy_k = [k for k, path in enumerate(paths, 1) if ".out.h5.reduce." in path]
mem_k = [k for k, path in enumerate(paths, 1) if "memfd:" in path]
fig_k = [k for k, path in enumerate(paths, 1) if "/figs/" in path]
before_close = [k for k in copy_k if not mem_k or k < mem_k[0]]
check(p.returncode == 0 and len(before_close) > 10 and len(mem_k) >= 1 and copy_k[-1] > mem_k[-1] and len(fig_k) >= 5,
      f"traced reduce: {len(paths)} pwrite64 calls: {len(before_close)} into the copy up to its close, {len(mem_k)} into the "
      f"close's stand-in, {len(copy_k) - len(before_close)} applying the close, {len(fig_k)} figures")

# ---- ENOSPC on one write; after it reduce writes nothing more to the disk: a full disk -------------
n = len(before_close)
picks = sorted(set([before_close[0], before_close[1], before_close[n // 3], before_close[2 * n // 3]]
                   + before_close[-3:] + [copy_k[-1]]))
for k in picks:
    fresh()
    where = "the superblock at open" if k == before_close[0] else "applying the close" if k == copy_k[-1] else \
            "the flush" if k in before_close[-3:] else "a /summary dataset"
    state(f"ENOSPC on pwrite64 #{k} ({where})", reduce(f"pwrite64:error=ENOSPC:when={k}"), True, "No space left on device")
fresh()
k = before_close[n // 2]
p = reduce(f"pwrite64:error=ENOSPC:when={k}", trace=trace)
after = pwrites(trace)[k:]
state(f"ENOSPC on pwrite64 #{k} (a /summary dataset)", p, True, "No space left on device")
check(after and all("memfd:" in a for a in after),
      f"  ... after it, {len(after)} pwrite64 calls, all into the in-memory stand-in of the close, none to the disk (so a disk "
      f"that stays full fails the same way)")
fresh()
state("EIO on pwrite64 of the flush", reduce(f"pwrite64:error=EIO:when={before_close[-2]}"), True, "Input/output error")

# ---- the copy, fsync, rename ------------------------------------------------------------------------
fresh()
state("ENOSPC on copy_file_range", reduce("copy_file_range:error=ENOSPC"), True, "No space left on device")
fresh()
p = reduce("copy_file_range:error=EXDEV")
state("EXDEV on copy_file_range (the read/write fallback)", p, False)
check("read/write" in p.stdout, f"the fallback was taken: {[l for l in p.stdout.splitlines() if 'copy of' in l]}")
fresh()
state("EXDEV on copy_file_range, ENOSPC on the fallback's first write",
      reduce("copy_file_range:error=EXDEV", "pwrite64:error=ENOSPC:when=1"), True, "No space left on device")
fresh()
state("EIO on fsync of the new file", reduce("fsync:error=EIO:when=1"), True, "Input/output error")
fresh()
state("EACCES on rename", reduce("rename:error=EACCES"), True, "Permission denied")
fresh()
p = reduce("fsync:error=EIO:when=2")
err = [l for l in p.stderr.splitlines() if l.startswith("attnscope:")]
with h5py.File(OUT, "r") as f:
    complete = all(np.array_equal(f["summary/" + n][()], REF[n]) for n in REF)
check(p.returncode == 1 and len(err) == 1 and "directory" in err[0] and complete and stats_of(OUT).keys() == STATS.keys()
      and not leftovers(), f"EIO on fsync of the directory (after the rename): rc {p.returncode}, the new file in place and complete: "
                           f"{complete}, no temporary: {not leftovers()}, {err}")

# ---- SIGKILL: the old or the new file, never a broken one; the next reduce cleans up ---------------
kills = [(f"pwrite64:signal=SIGKILL:when={before_close[0]}", "at the first write into the copy"),
         (f"pwrite64:signal=SIGKILL:when={before_close[n // 2]}", "writing /summary"),
         (f"pwrite64:signal=SIGKILL:when={before_close[-1]}", "in the flush"),
         (f"pwrite64:signal=SIGKILL:when={mem_k[0]}", "in the close"),
         (f"pwrite64:signal=SIGKILL:when={copy_k[-1]}", "applying the close"),
         ("copy_file_range:signal=SIGKILL", "in the copy"),
         ("fsync:signal=SIGKILL:when=1", "at the fsync"),
         ("rename:signal=SIGKILL", "at the rename"),
         ("fsync:signal=SIGKILL:when=2", "after the rename")]
for rule, where in kills:
    fresh()
    state(f"SIGKILL {where}", reduce(rule), None, killed=True)
    left = leftovers()
    p = run([BIN, "reduce", OUT])
    state(f"  the next reduce ({len(left)} temporary left before it)", p, False)
    check(not left or "removed 1 leftover" in p.stdout, f"  ... it removed the leftover: {[l for l in p.stdout.splitlines() if 'removed' in l]}")

# ---- two ranks: only rank 0 writes, every rank exits 1 --------------------------------------------
fresh()
state("2 ranks, ENOSPC on rank 0's flush", reduce(f"pwrite64:error=ENOSPC:when={before_close[-1]}", np_=2), True, "No space left on device")

# ---- the figures: replaced atomically too ------------------------------------------------------------
fresh()
reduce(figs=True)
ino = {n: os.stat(f"{FIGS}/{n}").st_ino for n in os.listdir(FIGS)}
first_png = sorted(os.listdir(FIGS), key=lambda n: os.stat(f"{FIGS}/{n}").st_mtime_ns)[0]
for rule, what, cause in ((f"pwrite64:error=ENOSPC:when={fig_k[0]}", "ENOSPC on the first figure", "No space left on device"),
                          (f"pwrite64:error=ENOSPC:when={fig_k[-1]}", "ENOSPC on index.html", "No space left on device"),
                          ("fsync:error=EIO:when=3", "EIO on fsync of the first figure", "Input/output error")):
    fresh()                                     # the same writes before the figures as in the traced run
    p = reduce(rule, figs=True)
    err = [l for l in p.stderr.splitlines() if l.startswith("attnscope:")]
    kept = {n for n in ino if os.path.exists(f"{FIGS}/{n}") and os.stat(f"{FIGS}/{n}").st_ino == ino[n]}
    failed = "index.html" if "index" in what else first_png
    check(p.returncode == 1 and len(err) == 1 and cause in err[0] and failed in err[0] and failed in kept
          and not leftovers(FIGS) and "Signal:" not in p.stderr,
          f"{what}: rc {p.returncode}, the old {failed} kept, no temporary in figs/, {err}")
    ino = {n: os.stat(f"{FIGS}/{n}").st_ino for n in os.listdir(FIGS)}

# ---- the summary in its own file (the run's file untouched) -----------------------------------------
SEP = f"{TMP}/sep.h5"
PROBE = [BIN, "reduce", RUN, "--summary-out", SEP]
fresh()
p = reduce(binary=PROBE)
ok = p.returncode == 0 and filecmp.cmp(RUN, OUT, shallow=False)
with h5py.File(SEP, "r") as f:
    summ = {n: f["summary/" + n][()] for n in f["summary"]}
    same = set(summ) == set(REF) and all(np.array_equal(summ[n], REF[n]) for n in REF)
    linked = np.array_equal(f["stats/entropy"][()], STATS["entropy"]) and f["attention"].ndim == 1 and f["attention_offset"].shape[0] == STATS["entropy"].shape[0]
    attrs = f.attrs["summary_of"] == "run.h5" and f.attrs["n_samples"] == STATS["entropy"].shape[0]
check(ok and same and linked and attrs and not leftovers(),
      f"summary in its own file: {len(summ)} /summary datasets == the in-place reduce's: {same}; /stats, /attention and "
      f"the head similarity reached through external links to run.h5: {linked}; root attributes copied: {attrs}")
before = open(SEP, "rb").read()
p = reduce("pwrite64:error=ENOSPC:when=20", binary=PROBE)
err = [l for l in p.stderr.splitlines() if l.startswith("attnscope:")]
check(p.returncode == 1 and len(err) == 1 and "No space left" in err[0] and open(SEP, "rb").read() == before and not leftovers(),
      f"summary file, ENOSPC: the old summary file kept, no temporary: {err}")
p = reduce(binary=PROBE[:3] + ["--summary-out", RUN])
err = [l for l in p.stderr.splitlines() if l.startswith("attnscope:")]
check(p.returncode == 1 and filecmp.cmp(RUN, OUT, shallow=False) and len(err) == 1 and "run file itself" in err[0],
      f"summary file named as the run file is refused: {err}")

shutil.rmtree(TMP, ignore_errors=True)
sys.exit(summary())
