#!/usr/bin/env python3
"""Image runs produce each batch's pixels when it is computed (dataset_pixels), not the whole
shard's at load. Checks, through the binary, on the 32 digit PNGs of jobs/digits (32 x 32 after
the digits ViT's processor, 12 kB of float32 pixels each):

  memory   a run's peak RSS (wait4's ru_maxrss of the run, forked by a bare
           interpreter) over the 32 images listed 64 times
           (2,048 images: 25 MB of pixels for the ViT at 32 x 32, 100 MB for the ResNet at 64 x 64) against the same list once: the growth, less the
           outputs a transformer run holds in its window of samples by design (the output's bytes
           per sample times the extra images), must stay under 1/4 of the extra images' pixel
           bytes (holding them all, as the loader did before, grows by all of them: the build
           before this change measured 22.8 MB of 24.8 beyond the window). The same for --input
           with /pixel_values (2,048 against 32 rows) and for a ResNet run over --images.
           `attnscope reduce --figures` of the two ViT runs: its peak RSS grows by less than 1/4
           of the extra images' /vision bytes (it read every /vision dataset whole before: 44 MB
           more for the 2,048 images).
  a corrupt PNG found only in a later batch (the header is whole, so the load accepts it; the
           data is cut short): exit non-zero, exactly one line of stderr names the file, nothing
           at the final path; the same for the ResNet run.
  resume   the failed run's partial directory is resumed by the same command (not refused) and
           fails again on the same file; once the image set changed (the bad file replaced by a
           good one) the resume is refused naming samples_sha256; --restart then completes and
           equals a run from scratch.
Prints every comparison; exits non-zero on any failure."""
import os, random, re, shutil, signal, struct, subprocess, sys, tempfile, time
import numpy as np, h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "attnscope")
VIT = os.path.join(ROOT, "jobs/models/vit-digits")
RESNET = os.path.join(ROOT, "jobs/models/resnet-digits")
DIGITS = os.path.join(ROOT, "jobs/digits")
TMP = tempfile.mkdtemp(prefix="attnscope-stream-")
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
PNGS = sorted(os.path.join(DIGITS, f) for f in os.listdir(DIGITS) if f.endswith(".png"))
PX = {"vit": 3 * 32 * 32 * 4, "resnet": 3 * 64 * 64 * 4}   # float32 bytes of one image as each model's processor makes it (a
# transformer run holds 8-bit pixels from PNG files: a quarter of it)


# The peak RSS of the run alone: wait4's ru_maxrss of a child includes the memory of the process
# that forked it (Linux keeps the high-water mark across exec), so the run is forked by a bare
# interpreter (~10 MB), not by this one (numpy, h5py and the test's arrays: ~100 MB).
RSS_HELPER = """import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
sys.stderr.write("\\nmaxrss_kb=%d\\n" % ru.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status) & 255)
"""


def run_rss(*args, command="run"):
    """runs `attnscope COMMAND ARGS` (a first argument that is a dict or None: extra environment);
    returns (exit status, stdout, stderr, peak RSS in bytes)"""
    env = dict(ENV)
    if args and (args[0] is None or isinstance(args[0], dict)):
        env.update(args[0] or {})
        args = args[1:]
    p = subprocess.run([sys.executable, "-c", RSS_HELPER, BIN, command, *map(str, args)], capture_output=True, text=True,
                       env=env, cwd=ROOT)
    err, _, rss = p.stderr.rstrip("\n").rpartition("\nmaxrss_kb=")
    return p.returncode, p.stdout, err, int(rss) * 1024


def equal_outputs(p1, p2):
    """(whether every dataset of p2 equals p1's bit for bit, NaN equal to NaN; how many datasets)"""
    same = True
    with h5py.File(p1) as a, h5py.File(p2) as b:
        names = []
        b.visititems(lambda k, o: names.append(k) if isinstance(o, h5py.Dataset) else None)
        for k in names:
            x, y = a[k][()], b[k][()]
            same &= bool(np.array_equal(x, y, equal_nan=True) if x.dtype.kind == "f" else np.array_equal(x, y))
    return same, len(names)


def write_list(name, paths):
    path = f"{TMP}/{name}"
    with open(path, "w") as f:
        f.write("".join(p + "\n" for p in paths))
    return path


def row_bytes(path):
    """bytes per sample of the output's per-sample datasets: a transformer run keeps a window of
    up to 4,096 samples' outputs in memory before writing them (collect.h, at most ~256 MiB), a
    growth with the number of images that is by design and not the pixels'"""
    total = 0
    with h5py.File(path) as f:
        N = int(f.attrs["n_samples"])
        def visit(k, o):
            nonlocal total
            if isinstance(o, h5py.Dataset) and o.shape and o.shape[0] == N: total += o.size * o.dtype.itemsize
        f.visititems(visit)
    return total / N


# Under `make sanitize` AddressSanitizer's quarantine keeps up to 256 MB of freed memory resident
# (to catch a use after free), which grows with the run's length; the memory cases turn it off so
# that the peak RSS is the run's own.
MEM_ENV = {"ASAN_OPTIONS": os.environ["ASAN_OPTIONS"] + ":quarantine_size_mb=0"} if os.environ.get("ASAN_OPTIONS") else None


def memory_case(label, model, small, large, n_small, n_large, *extra):
    rs = run_rss(MEM_ENV, "--model", model, *small, "--out", f"{TMP}/mem_small.h5", "--overwrite", *extra)
    rl = run_rss(MEM_ENV, "--model", model, *large, "--out", f"{TMP}/mem_large.h5", "--overwrite", *extra)
    ok = rs[0] == 0 and rl[0] == 0
    grow, extra_px = rl[3] - rs[3], (n_large - n_small) * PX["vit" if model == VIT else "resnet"]
    window = (n_large - n_small) * row_bytes(f"{TMP}/mem_large.h5") if ok and model == VIT else 0
    check(ok and grow - window < extra_px / 4,
          f"{label}: peak RSS {rs[3] / 1e6:.1f} MB over {n_small} images, {rl[3] / 1e6:.1f} MB over {n_large}: grows "
          f"{grow / 1e6:.1f} MB, of which the outputs held in a window {window / 1e6:.1f} MB; the extra images' pixels as float32 are "
          f"{extra_px / 1e6:.1f} MB (limit for the rest: 1/4 of that)"
          + ("" if ok else f" [exit {rs[0]}, {rl[0]}: {rs[2].strip()} {rl[2].strip()}]"))


# ---- memory bounded by the batch ---------------------------------------------------------------
one = write_list("once.txt", PNGS)
many = write_list("x64.txt", PNGS * 64)
# the ViT without top-k and key importance: its window of outputs is then 23 kB a sample
LEAN = ("--topk", 0, "--no-key-importance")
memory_case("ViT --images", VIT, ["--images", one], ["--images", many], 32, 2048, *LEAN)


def vision_bytes(path):
    """bytes per image of the output's /vision datasets"""
    with h5py.File(path) as f:
        return sum(d.size * d.dtype.itemsize for d in f["vision"].values()) / int(f.attrs["n_samples"])


# the reducer's figures read the first images' /vision rows and the distances in blocks: its
# memory does not grow with the run's images (it read every /vision dataset whole before)
rr = [run_rss(MEM_ENV, f"{TMP}/mem_{k}.h5", "--figures", f"{TMP}/fig_{k}", command="reduce") for k in ("small", "large")]
grow, vis = rr[1][3] - rr[0][3], (2048 - 32) * vision_bytes(f"{TMP}/mem_large.h5")
check(rr[0][0] == 0 and rr[1][0] == 0 and grow < vis / 4,
      f"reduce --figures of the ViT runs: peak RSS {rr[0][3] / 1e6:.1f} MB over 32 images, {rr[1][3] / 1e6:.1f} MB over 2048: "
      f"grows {grow / 1e6:.1f} MB; the extra images' /vision is {vis / 1e6:.1f} MB (limit: 1/4 of that)"
      + ("" if rr[0][0] == 0 and rr[1][0] == 0 else f" [exit {rr[0][0]}, {rr[1][0]}: {rr[0][2].strip()} {rr[1][2].strip()}]"))
memory_case("ResNet --images", RESNET, ["--images", one], ["--images", many], 32, 2048)
rng = np.random.default_rng(0)
for name, n in (("px_small.h5", 32), ("px_large.h5", 2048)):
    with h5py.File(f"{TMP}/{name}", "w") as f:
        f["pixel_values"] = rng.standard_normal((n, 3, 32, 32)).astype(np.float32)
# with a checkpoint after every batch: a checkpoint in the middle of a window writes the done rows
# in place (a copy of the window's buffers would add the window's outputs again)
memory_case("ViT --input /pixel_values, a checkpoint after every batch", VIT, ["--input", f"{TMP}/px_small.h5"],
            ["--input", f"{TMP}/px_large.h5"], 32, 2048, *LEAN, "--checkpoint-every", 0)

# ---- a corrupt PNG in a later batch ------------------------------------------------------------
bad = f"{TMP}/bad_digit.png"
data = open(PNGS[5], "rb").read()
open(bad, "wb").write(data[:len(data) // 2])     # IHDR whole, the image data cut short
listed = PNGS + PNGS[:24] + [bad] + PNGS[24:]    # position 56: the 8th batch of 8
badlist = write_list("bad.txt", listed)


def fails_naming_bad(label, model, out, *extra, env=None, badlist=badlist):
    r = run_rss(env, "--model", model, "--images", badlist, "--batch", 8, "--out", out, *extra)
    lines = [l for l in r[2].splitlines() if "bad_digit.png" in l]
    check(r[0] != 0 and len(lines) == 1 and "not a valid PNG" in lines[0] and not os.path.exists(out),
          f"{label}: exit {r[0]}, {len(lines)} line(s) naming the file: {lines[:2]}; final path exists: {os.path.exists(out)}")
    return r


for label, model in (("ViT", VIT), ("ResNet", RESNET)):
    fails_naming_bad(f"{label} corrupt PNG at image 56 of 65", model, f"{TMP}/bad_{label}.h5")
# the next batch's pixels made on a helper thread (a GPU run's default; forced here on the CPU):
# the same failure, and the same output as without it
PREFETCH = {"ATTNSCOPE_PREFETCH": "1"}
fails_naming_bad("ViT with prefetch, corrupt PNG at image 56 of 65", VIT, f"{TMP}/bad_pf.h5", env=PREFETCH)
fails_naming_bad("ResNet with prefetch, corrupt PNG at image 56 of 65", RESNET, f"{TMP}/bad_pf_cnn.h5", env=PREFETCH)
for label in ("bad_pf.h5", "bad_pf_cnn.h5"):
    shutil.rmtree(f"{TMP}/{label}.partial", ignore_errors=True)
# the corrupt PNG as the first image of the 4th window (windows of 16, batches of 8): the 3rd
# window's last batch is still computing when the failing batch's pixels are read, and the three
# windows before stay saved, in the failure's line and in rank 0's progress record (samples done)
win_bad = write_list("bad_win.txt", PNGS + PNGS[:16] + [bad] + PNGS[16:])
for i, (label, env) in enumerate((("", {}), (" with prefetch", PREFETCH))):
    out = f"{TMP}/bad_win{i}.h5"
    r = fails_naming_bad(f"ViT{label}, windows of 16, corrupt PNG at image 48 of 65", VIT, out,
                         env=dict(env, ATTNSCOPE_TEST_WINDOW="16"), badlist=win_bad)
    line = ([l for l in r[2].splitlines() if "bad_digit.png" in l] or [""])[0]
    rec = f"{out}.partial/rank-00000.progress"
    sdone = struct.unpack("<q", open(rec, "rb").read()[72:80])[0] if os.path.exists(rec) else None
    check("48 of 65 samples" in line and sdone == 48,
          f"ViT{label}: the 3 windows before the corrupt image saved: '48 of 65 samples' in the line: "
          f"{'48 of 65 samples' in line}; progress record's samples done: {sdone}")
    shutil.rmtree(f"{out}.partial", ignore_errors=True)
for label, model in (("ViT", VIT), ("ResNet", RESNET)):
    outs = []
    for e in (PREFETCH, {"ATTNSCOPE_PREFETCH": "0"}):
        o = f"{TMP}/pf_{label}_{e['ATTNSCOPE_PREFETCH']}.h5"
        outs.append((run_rss(e, "--model", model, "--images", many, "--batch", 24, "--out", o)[0], o))
    same, n = all(rc == 0 for rc, _ in outs), 0
    if same:
        same, n = equal_outputs(outs[0][1], outs[1][1])
    check(same, f"{label} over 2,048 images, --batch 24: with prefetch (exit {outs[0][0]}) equal to without (exit {outs[1][0]}) "
                f"in all {n} datasets, bit for bit")

# ---- resume: the same image set is resumed, a changed one refused ------------------------------
out = f"{TMP}/bad_ViT.h5"
check(os.path.isdir(out + ".partial"), f"the failed ViT run left its partial directory for a resume: {os.path.isdir(out + '.partial')}")
r = fails_naming_bad("ViT resumed over the same images", VIT, out)
check("differs" not in r[2], f"the same image set is not refused: {'differs' not in r[2]}")
shutil.copyfile(PNGS[7], bad)                    # now a valid image: the set changed
r = run_rss("--model", VIT, "--images", badlist, "--batch", 8, "--out", out)
check(r[0] != 0 and "samples_sha256" in r[2] and not os.path.exists(out),
      f"changed image set refused: exit {r[0]}: {r[2].strip()[:200]}")
r = run_rss("--model", VIT, "--images", badlist, "--batch", 8, "--out", out, "--restart")
ref = run_rss("--model", VIT, "--images", badlist, "--batch", 8, "--out", f"{TMP}/ref.h5")
same, n = r[0] == 0 and ref[0] == 0, 0
if same:
    same, n = equal_outputs(out, f"{TMP}/ref.h5")
check(same, f"--restart completes (exit {r[0]}) and equals a fresh run (exit {ref[0]}) in all {n} datasets")

# ---- windows and interruptions ------------------------------------------------------------------
# A vision run's window buffers come from a pool of sets reused window after window (not zeroed),
# and its outputs go into them on a helper thread while the next batch computes: 1,024 images in 26
# windows (ATTNSCOPE_TEST_WINDOW) equal the same images in one window, and runs killed at random
# moments (checkpoints after every batch), then resumed, equal the uninterrupted run.
win_list = write_list("x32.txt", PNGS * 32)
WIN = {"ATTNSCOPE_TEST_WINDOW": "40"}
base = ["--model", VIT, "--images", win_list, "--batch", 8]
r1 = run_rss(None, *base, "--out", f"{TMP}/win1.h5")
r13 = run_rss(WIN, *base, "--out", f"{TMP}/win13.h5")
same, n = r1[0] == 0 and r13[0] == 0, 0
if same:
    same, n = equal_outputs(f"{TMP}/win1.h5", f"{TMP}/win13.h5")
check(same, f"ViT over 1,024 images in 26 windows of 40 (exit {r13[0]}) equal to one window (exit {r1[0]}) in all {n} datasets, "
            "bit for bit")
# the read-ahead (a GPU run's default) guesses the next window's first images at each window's end
r13p = run_rss(dict(WIN, **PREFETCH), *base, "--out", f"{TMP}/win13p.h5")
same, n = r1[0] == 0 and r13p[0] == 0, 0
if same:
    same, n = equal_outputs(f"{TMP}/win1.h5", f"{TMP}/win13p.h5")
check(same, f"the same 26 windows with the read-ahead across window ends (exit {r13p[0]}) equal to one window in all {n} "
            "datasets, bit for bit")
rng_k = random.Random(int(os.environ.get("RESUME_SEED", "0")) or None)
for trial, sig in enumerate((signal.SIGKILL, signal.SIGTERM, signal.SIGKILL)):
    out = f"{TMP}/killed_{trial}.h5"
    args = [BIN, "run", *map(str, base), "--out", out, "--checkpoint-every", "0", "--progress-every", "0.1"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         env=dict(ENV, **WIN), start_new_session=True)
    first = p.stdout.readline()                  # the start line, then progress once computing
    while first and not first.startswith("[progress]"):
        first = p.stdout.readline()
    at = rng_k.uniform(0.0, 1.0)
    time.sleep(at)
    p.send_signal(sig)
    p.communicate(timeout=120)
    if os.path.exists(out):                      # it completed before the signal: nothing to resume
        same, n = equal_outputs(out, f"{TMP}/win13.h5")
        check(same, f"{sig.name} {at:.2f} s into the computing came after completion: equal to the uninterrupted run in all "
                    f"{n} datasets")
        continue
    r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=dict(ENV, **WIN))
    m = re.search(r"resuming: (\d+) of (\d+) samples", r.stdout)
    same, n = r.returncode == 0, 0
    if same:
        same, n = equal_outputs(out, f"{TMP}/win13.h5")
    check(same, f"{sig.name} {at:.2f} s into the computing, resumed ({m.group(0) if m else 'from the start'}): exit "
                f"{r.returncode}, equal to the uninterrupted run in all {n} datasets" + ("" if r.returncode == 0 else f": {r.stderr.strip()[-300:]}"))

# ---- --input: every /pixel_values row is in the resume identity ---------------------------------
# The load hashes each row (in parallel) and the digests in order; 8,192 rows of 12 kB span two of
# its 64 MiB reads. A run stopped after its first checkpoint, then one value of row 7,000 changed:
# the same command is refused naming samples_sha256; the value restored, it resumes.
px_big = f"{TMP}/px_8k.h5"
with h5py.File(px_big, "w") as f:
    f["pixel_values"] = np.random.default_rng(1).standard_normal((8192, 3, 32, 32)).astype(np.float32)
out = f"{TMP}/px_resume.h5"
args = [BIN, "run", "--model", VIT, "--input", px_big, "--batch", "64", "--out", out, "--topk", "0",
        "--no-key-importance", "--checkpoint-every", "0", "--progress-every", "0.1"]


def stopped_run():
    """the run started, SIGTERM once it computes; its stdout"""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV,
                         start_new_session=True)
    head = ""
    line = p.stdout.readline()
    while line and not line.startswith("[progress]"):
        head += line
        line = p.stdout.readline()
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    so, _ = p.communicate(timeout=120)
    return head + line + so


stopped_run()
with h5py.File(px_big, "r+") as f:
    keep = f["pixel_values"][7000, 0, 0, 0]
    f["pixel_values"][7000, 0, 0, 0] = keep + 1.0
r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=ENV)
check(r.returncode != 0 and "samples_sha256" in r.stderr and not os.path.exists(out),
      f"--input with one value of row 7,000 changed after an interrupted run: refused: exit {r.returncode}, "
      f"{r.stderr.strip()[-200:]}")
with h5py.File(px_big, "r+") as f:
    f["pixel_values"][7000, 0, 0, 0] = keep
m = re.search(r"resuming: (\d+) of 8192 samples", stopped_run())
check(m is not None and int(m.group(1)) > 0, f"the value restored, the same command resumes: {m.group(0) if m else 'no resume'}")

shutil.rmtree(TMP, ignore_errors=True)
sys.exit(summary())
