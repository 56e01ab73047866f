#!/usr/bin/env python3
"""Interrupted runs: kills at random points, resumes, refusals, a full disk.

A 2-rank run of the HF fixture bert_tiny over a few thousand random samples (a few seconds) is
the reference. Each trial sends SIGKILL or SIGTERM to the whole job (mpirun and its ranks, as a
cluster's scheduler does) at a random moment, then starts the same command again, and checks:
the final path held nothing or a complete file; the second run resumed from what the first one
saved (printed: how much was saved, how much was computed again); its output equals the
uninterrupted run's dataset by dataset (bit for bit: the same batches in the same order); nothing
else of the run remains beside the output. Then: SIGTERM is answered within 30 s with one line
saying what is saved; SIGUSR1 to the ranks alone stops them with exit status 75; one rank killed
alone ends the job within 10 s; a resume with another option is refused naming it, --restart
discards; an existing --out is kept without --overwrite; --out equal to the input is refused; a
second run on the same --out while one works on it is refused; a run that does not fit in the
free space is refused with the numbers, and a disk that fills up mid-run (--force, a small tmpfs)
ends with one line naming the file and the errno text, the finished work kept for a resume.

RESUME_TRIALS sets the number of kill trials (make test: 4; make test-long: 24), RESUME_SEED the
random seed, RESUME_SAMPLES the input's size (6000; on a GPU more, so that a run lasts long enough
to be interrupted), BUILD the build directory (build; build-cuda for the GPU). Exits non-zero on any failure."""
import os, random, re, shutil, signal, struct, subprocess, sys, tempfile, time
import numpy as np, h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import SLOW, check, summary
from inputs import write_input, random_lengths

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "attnscope")
MODEL = os.path.join(ROOT, "tests/fixtures/hf/bert_tiny")
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
TMP = tempfile.mkdtemp(prefix="attnscope-resume-")
TRIALS = int(os.environ.get("RESUME_TRIALS", "4"))
SEED = int(os.environ.get("RESUME_SEED", str(int(time.time()) % 100000)))
rng = random.Random(SEED)
print(f"seed {SEED} (RESUME_SEED to repeat), {TRIALS} kill trials, work in {TMP}")


INPUT = f"{TMP}/input.h5"
NSAMPLES = int(os.environ.get("RESUME_SAMPLES", "6000"))   # more on a GPU, where 6000 take a blink
write_input(INPUT, random_lengths(NSAMPLES))
ARGS = ["--model", MODEL, "--input", INPUT, "--head-similarity", "--checkpoint-every", "0.3", "--topk", "3", "--key-importance"]


def cmd(out, *extra, np_=2, args=None):
    return MPIRUN + ["-n", str(np_), "-x", "OMP_NUM_THREADS=1", "-x", "OPENBLAS_NUM_THREADS=1", BIN, "run"] + (args or ARGS) + \
        ["--out", out] + [str(a) for a in extra]


def run(out, *extra, np_=2, args=None):
    return subprocess.run(cmd(out, *extra, np_=np_, args=args), capture_output=True, text=True, cwd=ROOT)


def start(out, *extra, np_=2, args=None):
    return subprocess.Popen(cmd(out, *extra, np_=np_, args=args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, start_new_session=True)


def start_computing(out, *extra, args=None):
    """start() and wait until the ranks compute (rank 0's first progress line): a signal before
    that ends the start-up, where nothing is saved yet"""
    p = start(out, *extra, args=args)
    t0 = time.time()
    while time.time() - t0 < 60 * SLOW:
        line = p.stdout.readline()
        if not line or line.startswith("[progress]"):
            break
    return p


def kill_job(p, sig):
    """sig to mpirun and every rank: mpirun puts its ranks in process groups of their own, so the
    job is its session (what a scheduler's kill reaches through its cgroup)"""
    subprocess.run(["pkill", f"-{sig.value}", "-s", str(p.pid)])


def datasets(f):
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(names)


def differing(path, ref):
    with h5py.File(path, "r") as a, h5py.File(ref, "r") as b:
        na, nb = datasets(a), datasets(b)
        if na != nb:
            return [f"dataset lists differ: {sorted(set(na) ^ set(nb))}"]
        return [n for n in na if not np.array_equal(a[n][:], b[n][:])]


def att_lines(p):
    return [l for l in p.stderr.splitlines() if l.startswith("attnscope:")]


def leftovers(d, keep):
    return sorted(x for x in os.listdir(d) if x not in keep)


# ---- the reference: uninterrupted -------------------------------------------------------------
REF = f"{TMP}/ref.h5"
t = time.time()
p = run(REF)
ref_s = time.time() - t
check(p.returncode == 0 and os.path.exists(REF), f"uninterrupted reference run exits 0 in {ref_s:.1f} s")
if p.returncode:
    print(p.stdout, p.stderr)
    sys.exit(summary())
m = re.search(r"padding ([0-9.]+)% of", p.stdout)
N = h5py.File(REF, "r")["samples/length"].shape[0]

# ---- kill trials -------------------------------------------------------------------------------
work = f"{TMP}/trials"
os.makedirs(work)
for trial in range(TRIALS):
    out = f"{work}/out.h5"
    sig = signal.SIGKILL if trial % 2 == 0 else signal.SIGTERM
    at = rng.uniform(0.3, max(0.6, ref_s * 1.1))
    p = start(out)
    time.sleep(at)
    t_sig = time.time()
    kill_job(p, sig)
    so, se = p.communicate(timeout=120 * SLOW)
    dt = time.time() - t_sig
    final_state = "complete" if os.path.exists(out) else "absent"
    ok_final = final_state == "absent" or not differing(out, REF)
    if sig == signal.SIGTERM:
        lines = [l for l in se.splitlines() if l.startswith("attnscope:")]
        stopped = [l for l in lines if "stopped by SIGTERM" in l or "interrupted" in l]
        started = "attnscope " in so   # the ranks had started (a signal to mpirun before that ends it alone)
        check(dt < 30 * SLOW and (final_state == "complete" or len(stopped) >= 1 or not started),
              f"trial {trial}: SIGTERM at {at:.2f} s: exit after {dt:.2f} s (limit {30 * SLOW:g}), "
              f"{stopped[:1] or lines[:1] or ('no line' if started else 'before the ranks started')}")
    p2 = run(out)
    m = re.search(r"resuming: (\d+) of (\d+) samples", p2.stdout)
    saved = int(m.group(1)) if m else 0
    if final_state == "complete":
        check(p2.returncode != 0 and "exists" in (att_lines(p2) or [""])[0],
              f"trial {trial}: {sig.name} at {at:.2f} s came after completion; the re-run refuses to overwrite: {att_lines(p2)}")
        os.remove(out)
        continue
    if p2.returncode:
        print(p2.stdout[-2000:], p2.stderr[-2000:])
    d = differing(out, REF) if p2.returncode == 0 and os.path.exists(out) else ["(no output)"]
    left = leftovers(work, {"out.h5"})
    check(p2.returncode == 0 and ok_final and not d and not left,
          f"trial {trial}: {sig.name} at {at:.2f} s, final path {final_state}; re-run saved {saved}/{N} samples, "
          f"computed {N - saved} again; output == uninterrupted over every dataset (differ: {d}); left beside it: {left}")
    if os.path.exists(out):
        os.remove(out)
    shutil.rmtree(out + ".partial", ignore_errors=True)

# ---- the fused path's per-token outputs, killed and resumed -------------------------------------
# no head similarity: top-k and key importance come from the fused attention, reach the window on
# a helper thread while the next batch runs, in window buffers reused from window to window and
# never filled beforehand; one rank, 14000 samples: four windows of at most 4096 for three buffer
# sets, so the fourth reuses the first's. Every row beyond a sample's length must be padding
# (-1, 0): no earlier window may show through
TOK_IN = f"{TMP}/tok_input.h5"
write_input(TOK_IN, random_lengths(14000, seed=7), seed=7)
TOK_ARGS = ["--model", MODEL, "--input", TOK_IN, "--checkpoint-every", "0.2", "--topk", "3", "--key-importance"]
TOK_REF = f"{TMP}/tok_ref.h5"
t = time.time()
p = run(TOK_REF, np_=1, args=TOK_ARGS)
tok_s = time.time() - t
check(p.returncode == 0, f"fused per-token reference run (1 rank, 14000 samples, 4 windows) exits 0 in {tok_s:.1f} s")
if p.returncode == 0:
    with h5py.File(TOK_REF, "r") as f:
        ln = f["samples/length"][:]
        ti, tw, ki = f["stats/topk_index"][:], f["stats/topk_weight"][:], f["stats/key_importance"][:]
    beyond = np.arange(ti.shape[3])[None, :] >= ln[:, None]              # [N, Lmax]
    m5 = np.broadcast_to(beyond[:, None, None, :, None], ti.shape)
    m4 = np.broadcast_to(beyond[:, None, None, :], ki.shape)
    check(bool((ti[m5] == -1).all() and (tw[m5] == 0).all() and (ki[m4] == 0).all()),
          f"every row beyond a sample's length is padding: topk_index -1, topk_weight 0, key_importance 0 "
          f"({int(m5.sum())} + {int(m4.sum())} values)")
    for trial, sig in enumerate((signal.SIGKILL, signal.SIGTERM)):
        out = f"{work}/tok.h5"
        at = rng.uniform(0.3, max(0.6, tok_s * 0.9))
        p = start(out, np_=1, args=TOK_ARGS)
        time.sleep(at)
        kill_job(p, sig)
        p.communicate(timeout=120 * SLOW)
        if os.path.exists(out):                 # completed before the signal
            os.remove(out)
            continue
        p2 = run(out, np_=1, args=TOK_ARGS)
        m = re.search(r"resuming: (\d+) of (\d+) samples", p2.stdout)
        d = differing(out, TOK_REF) if p2.returncode == 0 and os.path.exists(out) else ["(no output)"]
        check(p2.returncode == 0 and not d,
              f"fused per-token trial {trial}: {sig.name} at {at:.2f} s, re-run saved {m.group(1) if m else 0} samples; "
              f"output == uninterrupted over every dataset (differ: {d})")
        if os.path.exists(out):
            os.remove(out)
        shutil.rmtree(out + ".partial", ignore_errors=True)

# ---- --save-attention: /attention packed per sample, killed and resumed -------------------------
# mostly short samples and a few of the full 64 tokens: each block goes to its fixed offset, so a
# resumed run rewrites exactly the blocks it had not saved
ATT_IN = f"{TMP}/att_input.h5"
att_lens = np.where(np.random.default_rng(5).random(16000) < 0.03, 64, random_lengths(16000, seed=5) % 8 + 3)
write_input(ATT_IN, att_lens, seed=5)
ATT_ARGS = ["--model", MODEL, "--input", ATT_IN, "--save-attention", "--attention-dtype", "f16", "--topk", "0",
            "--no-key-importance", "--checkpoint-every", "0.05"]    # /attention the bulk of the file
ATT_REF = f"{TMP}/att_ref.h5"
p = run(ATT_REF, args=ATT_ARGS)
m = re.search(r"forward, statistics and writes ([0-9.]+) s", p.stdout)
att_s = float(m.group(1)) if m else 0.3      # the ranks' compute, after start-up
check(p.returncode == 0, f"--save-attention reference run on {len(att_lens)} samples of 3..64 tokens exits 0")
if p.returncode == 0:
    with h5py.File(ATT_REF, "r") as f:
        a = f["attention"]
        L, H = int(a.attrs["n_layers"]), int(a.attrs["n_heads"])
        packed = L * H * int((att_lens.astype(np.int64) ** 2).sum()) * 2
        padded = len(att_lens) * L * H * 64 * 64 * 2
        stored = a.id.get_storage_size()
        o, n = int(f["attention_offset"][-1]), int(att_lens[-1])
        rows = a[o:o + L * H * n * n].astype(np.float64).reshape(L, H, n, n).sum(-1)
    size = os.path.getsize(ATT_REF)
    check(stored == packed and size < packed + (12 << 20) and size < padded / 4,
          f"/attention holds {stored} bytes = sum of L·H·n²·2 ({packed}); the file {size / 1e6:.1f} MB (< 12 MB more: the other datasets), "
          f"padded it would be {padded / 1e6:.1f} MB of /attention")
    check(np.abs(rows - 1).max() < 2e-3, f"the last sample's block read at its offset: rows sum to 1 (max dev {np.abs(rows - 1).max():.2g})")
    mid = 0
    for trial, frac in enumerate((0.3, 0.5, 0.7)):    # of the compute time, from the first progress line
        out = f"{work}/att.h5"
        p = start_computing(out, args=ATT_ARGS)
        time.sleep(frac * att_s)
        kill_job(p, signal.SIGKILL)
        p.communicate(timeout=120 * SLOW)
        final_state = "complete" if os.path.exists(out) else "absent"
        if final_state == "absent":
            p2 = run(out, args=ATT_ARGS)
            m = re.search(r"resuming: (\d+) of (\d+) samples", p2.stdout)
            mid += bool(m) and 0 < int(m.group(1)) < len(att_lens)
        d = differing(out, ATT_REF) if os.path.exists(out) else ["(no output)"]
        check(not d and not leftovers(work, {"att.h5"}),
              f"--save-attention trial {trial}: SIGKILL {frac * att_s:.2f} s into the compute, final path {final_state}; "
              f"resumed from {m.group(1) if final_state == 'absent' and m else 0} saved samples; output == uninterrupted (differ: {d})")
        if os.path.exists(out):
            os.remove(out)
        shutil.rmtree(out + ".partial", ignore_errors=True)
    check(mid > 0, f"{mid} of the 3 --save-attention trials were killed mid-run and resumed from a partial file")
    figs = f"{TMP}/att_figs"
    p = subprocess.run(MPIRUN + ["-n", "2", BIN, "reduce", ATT_REF, "--figures", figs, "--sample", str(int(np.argmax(att_lens)))],
                       capture_output=True, text=True, cwd=ROOT)
    check(p.returncode == 0 and any(x.startswith("sample_") for x in os.listdir(figs)),
          f"reduce on 2 ranks of the packed file, the longest sample's maps drawn: exit {p.returncode} {att_lines(p)}")
# ---- SIGUSR1 to the ranks alone (Slurm's --signal): exit status 75, then resume ----------------
out = f"{TMP}/usr1.h5"
p = start_computing(out)
ranks = subprocess.run(["pgrep", "-P", str(p.pid), "-f", "attnscope"], capture_output=True, text=True).stdout.split()
for r in ranks:
    os.kill(int(r), signal.SIGUSR1)
so, se = p.communicate(timeout=120 * SLOW)
lines = [l for l in se.splitlines() if l.startswith("attnscope:")]
check(p.returncode == 75 and len(ranks) == 2 and any("stopped by SIGUSR1" in l for l in lines),
      f"SIGUSR1 to the 2 ranks: exit status {p.returncode} (75 expected), {[l for l in lines if 'stopped' in l]}")
# with rank 0's progress record forged (its hash recomputed) to count one sample more than its
# window says: the record is not trusted (one warning naming it, rank 0 starts its shard again),
# rank 1 resumes, and the output is the uninterrupted one
rec = f"{out}.partial/rank-00000.progress"
forged = os.path.exists(rec)
if forged:
    bad = bytearray(open(rec, "rb").read()[:-8])
    bad[72:80] = struct.pack("<q", struct.unpack("<q", bad[72:80])[0] + 1)     # P_SDONE, the 9th field
    h = 1469598103934665603
    for b in bad: h = ((h ^ b) * 1099511628211) & (2**64 - 1)                 # runstate.c's FNV-1a
    open(rec, "wb").write(bytes(bad) + struct.pack("<Q", h))
p2 = run(out)
warn = [l for l in att_lines(p2) if "rank-00000.progress: not a valid progress record" in l]
check(forged and len(warn) == 1, f"a forged progress record (samples done != window start + position) is not trusted: {warn}")
check(p2.returncode == 0 and not differing(out, REF) and not os.path.exists(out + ".partial"),
      "after SIGUSR1 the same command resumes and completes with the uninterrupted output, partial directory gone")

# ---- one rank killed alone: the job ends within 10 s ------------------------------------------
out = f"{TMP}/onerank.h5"
p = start_computing(out)
ranks = subprocess.run(["pgrep", "-P", str(p.pid), "-f", "attnscope"], capture_output=True, text=True).stdout.split()
t = time.time()
if ranks:
    os.kill(int(ranks[-1]), signal.SIGKILL)
try:
    p.communicate(timeout=60 * SLOW)
except subprocess.TimeoutExpired:
    kill_job(p, signal.SIGKILL)
    p.communicate()
dt = time.time() - t
check(ranks and p.returncode != 0 and dt < 10 * SLOW,
      f"one rank SIGKILLed: the job exits {p.returncode} after {dt:.1f} s (limit {10 * SLOW:g})")
p2 = run(out)
check(p2.returncode == 0 and not differing(out, REF), "and the same command then resumes to the uninterrupted output")

# ---- refusals: other options, --restart, existing --out, --out == input, a second run ----------
out = f"{TMP}/opts.h5"
p = start_computing(out)
kill_job(p, signal.SIGTERM)
p.communicate(timeout=60 * SLOW)
p2 = run(out, "--topk", 2)
l2 = att_lines(p2)
check(p2.returncode != 0 and len(l2) == 1 and "--topk (was 3, now 2)" in l2[0] and "--restart" in l2[0],
      f"a resume with another --topk is refused naming it: {l2}")
p2 = run(out, "--topk", 2, "--restart")
with h5py.File(out, "r") as f:
    k = f["stats/topk_index"].shape[-1] if p2.returncode == 0 else -1
check(p2.returncode == 0 and k == 2 and not os.path.exists(out + ".partial"), f"--restart discards it and runs anew (topk {k})")
p2 = run(out, "--topk", 2)
check(p2.returncode != 0 and "add --overwrite" in (att_lines(p2) or [""])[0] and os.path.exists(out),
      f"an existing --out is kept: {att_lines(p2)}")
before = os.stat(out).st_mtime_ns
p2 = run(out, "--overwrite")
check(p2.returncode == 0 and os.stat(out).st_mtime_ns != before and not differing(out, REF), "--overwrite replaces it")
p2 = subprocess.run(MPIRUN + ["-n", "1", BIN, "run", "--model", MODEL, "--input", INPUT, "--out", INPUT, "--overwrite"],
                    capture_output=True, text=True)
with h5py.File(INPUT, "r") as f:
    intact = f["input_ids"].shape == (NSAMPLES, 64)
check(p2.returncode != 0 and "input file" in (att_lines(p2) or [""])[0] and intact, f"--out equal to --input is refused, input intact: {att_lines(p2)}")
out = f"{TMP}/locked.h5"
pa = start_computing(out)
pb = run(out)
check(pb.returncode != 0 and "another attnscope run is writing it" in (att_lines(pb) or [""])[0],
      f"a second run on the same --out is refused while the first works: {att_lines(pb)}")
pa.communicate(timeout=120 * SLOW)
check(pa.returncode == 0 and not differing(out, REF), "the first run completes undisturbed")

# ---- the free space: refused up front; a disk that fills up mid-run ----------------------------
mnt = f"{TMP}/small"
os.makedirs(mnt)
mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=50m", "tmpfs", mnt], capture_output=True).returncode == 0
check(mounted, "a 50 MB tmpfs for the full-disk checks (mount as root)")
if mounted:
    try:
        out = f"{mnt}/full.h5"
        p = run(out)
        l = att_lines(p)
        check(p.returncode != 0 and len(l) == 1 and "only" in l[0] and "--force" in l[0] and not os.listdir(mnt),
              f"a run that does not fit is refused with the numbers, nothing left: {l}")
        p = run(out, "--force")
        l = att_lines(p)
        partial = os.path.isdir(out + ".partial")
        check(p.returncode != 0 and len(l) == 1 and "No space left on device" in l[0] and "full.h5.partial" in l[0] and
              not os.path.exists(out) and partial, f"the disk fills up mid-run: {l}; nothing at the final path, the partial run kept")
        room = max(256 << 20, 2 * os.path.getsize(REF))
        subprocess.run(["mount", "-o", f"remount,size={room}", mnt], check=True)
        p2 = run(out)
        m = re.search(r"resuming: (\d+) of", p2.stdout)
        check(p2.returncode == 0 and not differing(out, REF) and not os.path.exists(out + ".partial"),
              f"after making room the same command resumes ({m.group(1) if m else 0} samples were saved) to the uninterrupted output")
    finally:
        subprocess.run(["umount", "-l", mnt])

shutil.rmtree(TMP, ignore_errors=True)
sys.exit(summary())
