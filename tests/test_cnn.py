#!/usr/bin/env python3
"""CNN feature maps (issue 12 part 5) through the binary: ResNets in HF's ResNetModel layout on the
CPU backend against Hugging Face's hidden_states (make_resnet_fixtures.py: a random-init basic and
bottleneck ResNet with every parameter and batch-norm statistic perturbed, and our trained
jobs/models/resnet-digits on PNGs processed by HF's ConvNext processor), the per-channel statistics
against numpy recomputed from HF's stage outputs by their definitions (run_cnn.c), 2 ranks == 1
rank, the reducer's top images and figures, interrupted runs (SIGTERM or SIGKILL injected with strace
at a chosen batch's progress record, 1 and 2 ranks, with and without --save-features) resumed by
the same command to the uninterrupted file bit for bit, a write failing with ENOSPC mid-run and
resumed, resumes refused for another option or other images, and the refusals. Prints every comparison; exits non-zero on any failure. Needs numpy,
h5py and strace (the fixtures are committed)."""
import json, os, re, shutil, subprocess, sys, tempfile
import numpy as np, h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import SLOW, STRACE_ENV, check, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "attnscope")
FX = os.path.join(ROOT, "tests/fixtures/hf")
TMP = tempfile.mkdtemp(prefix="attnscope-cnn-")
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
# the tolerance for stage outputs: 1e-4 relative (max abs error / the stage's largest |value|);
# float32 convolutions summed in another order, and batch norm folded into them, give ~1e-6
TOL_REL = 1e-4


def run(*args):
    return subprocess.run([BIN, "run", *map(str, args)], capture_output=True, text=True, env=ENV, cwd=ROOT)


def ref_stats(x):
    """x [N, C, h, w] -> mean, active fraction, entropy [N, C] by run_cnn.c's definitions"""
    N, C, h, w = x.shape
    x = x.reshape(N, C, h * w).astype(np.float64)
    pos = np.maximum(x, 0)
    tot = pos.sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = pos / tot
        ent = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0).sum(-1)
    ent[tot[..., 0] == 0] = np.nan
    return x.mean(-1), (x > 0).mean(-1), ent


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) if a.shape == b.shape else float("inf")


def compare(name, out, expected, stats=True):
    ref = h5py.File(f"{FX}/{expected}")["hidden_states"]
    with h5py.File(out) as f:
        S = int(f["cnn"].attrs["n_stages"])
        check(S == len(ref), f"{name}: /cnn has {S} stages (embedder + stages), HF's hidden_states {len(ref)}")
        for s in range(min(S, len(ref))):
            r = ref[str(s)][:]
            g = f[f"cnn/stage_{s}/features"][:].astype(np.float32)
            e = rel(g, r)
            check(e <= TOL_REL, f"{name}: stage {s} output {g.shape} vs HF hidden_states[{s}] {r.shape}: max abs {float(np.abs(g - r).max()) if g.shape == r.shape else -1:.3g}, relative {e:.3g} (tol {TOL_REL})")
            if not stats:
                continue
            m, a, h = ref_stats(r)
            hw = r.shape[2] * r.shape[3]
            gm, ga, gh = (f[f"cnn/stage_{s}/{k}"][:] for k in ("mean", "active_fraction", "entropy"))
            em = float(np.abs(gm - m).max() / max(np.abs(m).max(), 1e-30))
            # a ReLU output that is exactly 0 in HF can come out as a tiny positive value here (or
            # the reverse): at most one position per map may count differently
            ea = float(np.abs(ga - a).max())
            nan_same = bool(np.array_equal(np.isnan(gh), np.isnan(h)))
            eh = float(np.nanmax(np.abs(gh - h))) if nan_same and not np.isnan(h).all() else (0.0 if nan_same else float("inf"))
            check(em <= 1e-5 and ea <= 1.0 / hw + 1e-7 and eh <= 1e-4 and nan_same,
                  f"{name}: stage {s} statistics vs numpy on HF's output: mean rel {em:.3g} (tol 1e-5), active_fraction abs {ea:.3g} "
                  f"(tol 1/(h w) = {1.0 / hw:.3g}), entropy abs {eh:.3g} nats (tol 1e-4), all-zero maps NaN alike {nan_same} "
                  f"({int(np.isnan(h).sum())} of {h.size})")


for model in ("resnet_basic_tiny", "resnet_bottleneck_tiny"):
    out = f"{TMP}/{model}.h5"
    p = run("--model", f"{FX}/{model}", "--input", f"{FX}/input_resnet.h5", "--out", out, "--save-features", "--quiet")
    if check(p.returncode == 0, f"{model}: run exit {p.returncode} {p.stderr.strip()[-300:]}"):
        compare(model, out, f"expected_{model}.h5")
    # f16 features: the same maps rounded to half precision
    out16 = f"{TMP}/{model}_f16.h5"
    p = run("--model", f"{FX}/{model}", "--input", f"{FX}/input_resnet.h5", "--out", out16, "--save-features",
            "--features-dtype", "f16", "--batch", "2", "--quiet")
    if check(p.returncode == 0, f"{model} f16, batches of 2: run exit {p.returncode} {p.stderr.strip()[-300:]}"):
        with h5py.File(out16) as f, h5py.File(out) as g:
            t = f["cnn/stage_1/features"]
            e = max(rel(f[f"cnn/stage_{s}/features"][:].astype(np.float32), g[f"cnn/stage_{s}/features"][:]) for s in range(3))
            es = max(rel(f[f"cnn/stage_{s}/{k}"][:], g[f"cnn/stage_{s}/{k}"][:]) for s in range(3) for k in ("mean", "active_fraction"))
            check(t.dtype == np.float16 and e <= 1e-3 and es <= 1e-5,
                  f"{model}: --features-dtype f16 stores {t.dtype}, within {e:.3g} relative of f32 (tol 1e-3: half's 2^-11); "
                  f"statistics of batches of 2 vs 3 within {es:.3g} relative (tol 1e-5)")

# the trained model over PNGs: our decoding and processor, then the network, against HF's processor + model
listfile = f"{TMP}/digits8.txt"
pngs = sorted(os.path.join(ROOT, "jobs/digits", n) for n in os.listdir(os.path.join(ROOT, "jobs/digits")) if n.endswith(".png"))
with open(listfile, "w") as fh:
    fh.write("\n".join(pngs[:8]) + "\n")
out = f"{TMP}/digits8.h5"
p = run("--model", "jobs/models/resnet-digits", "--images", listfile, "--out", out, "--save-features", "--quiet")
if check(p.returncode == 0, f"resnet-digits --images (8 PNGs): run exit {p.returncode} {p.stderr.strip()[-300:]}"):
    compare("resnet-digits", out, "expected_resnet_digits.h5")
    with h5py.File(out) as f:
        paths = [x.decode() for x in f["images/path"][()]]
        check(paths == pngs[:8], f"resnet-digits: /images/path as listed ({len(paths)})")

# 2 ranks == 1 rank over all the digits; the reducer's top images and figures
demo = ["run", "--model", "jobs/models/resnet-digits", "--images", "jobs/digits", "--save-features", "--quiet"]
p1 = subprocess.run([BIN, *demo, "--out", f"{TMP}/d1.h5"], capture_output=True, text=True, env=ENV, cwd=ROOT)
p2 = subprocess.run(MPIRUN + ["-n", "2", "-x", "OMP_NUM_THREADS=1", BIN, *demo, "--out", f"{TMP}/d2.h5"],
                    capture_output=True, text=True, env=ENV, cwd=ROOT)
if check(p1.returncode == 0 and p2.returncode == 0, f"resnet-digits over jobs/digits on 1 and 2 ranks: exit {p1.returncode}, {p2.returncode} {p2.stderr.strip()[-300:]}"):
    with h5py.File(f"{TMP}/d1.h5") as a, h5py.File(f"{TMP}/d2.h5") as b:
        names = [f"cnn/stage_{s}/{k}" for s in range(4) for k in ("mean", "active_fraction", "features")]
        d = max(rel(a[n][:], b[n][:]) for n in names)
        check(d <= 1e-5, f"2 ranks == 1 rank: /cnn max diff {d:.3g} relative (tol 1e-5: batches of 16 and 32 through float32 GEMMs)")
    r = subprocess.run([BIN, "reduce", f"{TMP}/d1.h5", "--figures", f"{TMP}/fig", "--exemplars", "4"], capture_output=True, text=True, env=ENV, cwd=ROOT)
    if check(r.returncode == 0, f"reduce of a CNN run: exit {r.returncode} {r.stderr.strip()[-300:]}"):
        with h5py.File(f"{TMP}/d1.h5") as f:
            ok = True
            for s in range(4):
                m = f[f"cnn/stage_{s}/mean"][:].astype(np.float64)
                top = f[f"summary/cnn/stage_{s}/top_images".replace("/top", "_top")][:]
                want = np.argsort(-m, axis=0, kind="stable")[:4].T
                cm = f[f"summary/cnn/stage_{s}_mean"][:]
                ok &= top.shape == want.shape and np.array_equal(top, want) and float(np.abs(cm - m.mean(0)).max()) <= 1e-6
            check(ok, "reduce: /summary/cnn/stage_S_top_images [C, 4] == numpy's argsort of /cnn/stage_S/mean, stage_S_mean == its mean over images")
        want = ["cnn_mean_by_stage.png", "cnn_stage_0_mean.png", "cnn_stage_3_mean.png", "cnn_features_0_s3.png", "cnn_features_3_s1.png"]
        have = [w for w in want if os.path.exists(f"{TMP}/fig/{w}") and os.path.getsize(f"{TMP}/fig/{w}") > 1000]
        index = open(f"{TMP}/fig/index.html").read() if os.path.exists(f"{TMP}/fig/index.html") else ""
        check(have == want and all(w in index for w in want), f"reduce: the CNN figures {have} drawn and in index.html")

# ---- interrupted runs resume (run_cnn.c through runstate.h and runctl.h, as the transformer run) ----
# With --checkpoint-every 0 a rank fdatasyncs its rows and writes its progress record after every
# batch, so strace's fault injection at a rank's K-th fdatasync interrupts it at a known batch
# (the transformer's kill trials in test_resume.py pick random moments; a 32-image run is too
# short for that): SIGTERM there stops the run at the next batch boundary (exit 75, the
# "stopped by SIGTERM" line), SIGKILL there loses the batch whose record it prevented. The same
# command then has to say how many images it found done and end with the file of an
# uninterrupted run with the same options: every dataset under /cnn and /images, bit for bit.
CNN_RUN = ["run", "--model", "jobs/models/resnet-digits", "--images", "jobs/digits", "--batch", "4", "--checkpoint-every", "0"]
STRACE = shutil.which("strace")
check(STRACE is not None, "strace is installed (make deps installs it): the interruption checks inject signals with it")


def cnn_cmd(out, extra=(), np_=1, inject=None, inject_rank=None, call="fdatasync"):
    """the CNN run on np_ ranks; inject (e.g. "signal=SIGTERM:when=3") at the K-th call (fdatasync)
    of every rank, or of rank inject_rank alone (an MPMD launch)"""
    base = [BIN, *CNN_RUN, *map(str, extra), "--out", out]
    traced = [STRACE, *STRACE_ENV, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={call}", "-e", f"inject={call}:{inject}"] + base if inject else base
    launch = MPIRUN + ["-x", "OMP_NUM_THREADS=1"]
    if inject and inject_rank is not None:
        apps = []
        for r in range(np_):
            apps += ([":"] if r else []) + ["-n", "1"] + (traced if r == inject_rank else base)
        return launch + apps
    return launch + ["-n", str(np_)] + traced


def cnn_run(out, extra=(), np_=1, inject=None, inject_rank=None, call="fdatasync"):
    return subprocess.run(cnn_cmd(out, extra, np_, inject, inject_rank, call), capture_output=True, text=True, env=ENV, cwd=ROOT,
                          timeout=300 * SLOW)


def cnn_differing(path, ref):
    """(datasets compared, those that differ) under /cnn and /images, compared as bytes"""
    with h5py.File(path, "r") as a, h5py.File(ref, "r") as b:
        names = []
        for f in (a, b):
            lst = []
            f.visititems(lambda n, o: lst.append(n) if isinstance(o, h5py.Dataset) and n.split("/")[0] in ("cnn", "images") else None)
            names.append(sorted(lst))
        if names[0] != names[1]:
            return len(names[0]), [f"dataset lists differ: {sorted(set(names[0]) ^ set(names[1]))}"]
        return len(names[0]), [n for n in names[0] if a[n][()].tobytes() != b[n][()].tobytes()]


def att(p):
    return [l for l in p.stderr.splitlines() if l.startswith("attnscope:")]


RES = f"{TMP}/resume"
os.makedirs(RES)
refs = {}
for np_, feats in ((1, ()), (1, ("--save-features",)), (2, ("--save-features",))):
    ref = f"{RES}/ref_{np_}{'_f' if feats else ''}.h5"
    p = cnn_run(ref, (*feats, "--quiet"), np_)
    refs[(np_, feats)] = ref if check(p.returncode == 0, f"uninterrupted reference: {np_} rank(s) {' '.join(feats) or 'statistics only'}, batches of 4: exit {p.returncode} {p.stderr.strip()[-200:]}") else None

# (what, ranks, options, the fault, the rank it hits (None: every rank), images saved when known)
trials = [("SIGTERM at the 3rd record", 1, (), "signal=SIGTERM:when=3", None, 16),
          ("SIGTERM at the 5th record, --save-features", 1, ("--save-features",), "signal=SIGTERM:when=5", None, 24),
          ("SIGKILL at the 3rd record, --save-features", 1, ("--save-features",), "signal=SIGKILL:when=3", None, 8),
          # (two ranks: the first rank to stop passes it on, so the other may stop a record early)
          ("SIGTERM at each rank's 2nd record, --save-features", 2, ("--save-features",), "signal=SIGTERM:when=2", None, (20, 24)),
          ("SIGTERM to rank 1 alone at its 1st record, --save-features", 2, ("--save-features",), "signal=SIGTERM:when=1", 1, None)]
for what, np_, feats, inject, only, want in trials if STRACE else []:
    ref = refs[(np_, feats)]
    out = f"{RES}/out.h5"
    p = cnn_run(out, feats, np_, inject, only)
    lines = att(p)
    term = "SIGTERM" in inject
    # rank 0 names the signal when it got it itself (under Slurm every rank gets it); a stop
    # passed on from another rank is "stopped: ..."
    m = re.search(r"stopped%s: (\d+) of 32 images are saved in \S+\.partial; run the same command again" %
                  (" by SIGTERM" if only is None else "(?: by SIGTERM)?"), p.stderr)
    wants = (want,) if isinstance(want, int) else want          # (None, or the counts a run may stop at)
    stopped = p.returncode == 75 and m and (want is None or int(m.group(1)) in wants) if term else p.returncode != 0
    check(stopped and not os.path.exists(out) and os.path.isdir(out + ".partial"),
          f"{what} ({np_} rank(s)): exit {p.returncode}{' (75 expected)' if term else ''}, "
          f"{[l for l in lines if 'stopped' in l] if term else 'killed'}; nothing at the final path, the partial run kept")
    p2 = cnn_run(out, feats, np_)
    m2 = re.search(r"resuming: (\d+) of 32 samples were done", p2.stdout)
    saved = int(m2.group(1)) if m2 else 0
    n, d = cnn_differing(out, ref) if p2.returncode == 0 and os.path.exists(out) and ref else (0, ["(no output)"])
    left = sorted(x for x in os.listdir(RES) if x not in ("out.h5",) and not x.startswith("ref_"))
    check(p2.returncode == 0 and m2 and (want is None or saved in wants and (not m or saved == int(m.group(1)))) and not d and not left,
          f"  the same command again: exit {p2.returncode}, resumed from {saved} of 32 images{'' if want is None else f' ({want} expected)'}, "
          f"computed {32 - saved} again; {n} datasets under /cnn and /images == the uninterrupted run's bit for bit (differ: {d}); "
          f"left beside it: {left}")
    if os.path.exists(out):
        os.remove(out)
    shutil.rmtree(out + ".partial", ignore_errors=True)

# a write that fails mid-run (injected at the 120th pwrite: the file's creation takes the first few
# dozen), a flush that fails, a kill in the middle of a write: one line naming the file, the
# dataset or the flush, the error and what is saved (no line for the kill); the same command then
# resumes to the uninterrupted file, bit for bit
faults = [("a write fails with ENOSPC mid-run", "pwrite64", "error=ENOSPC:when=120",
           ["No space left on device", "data.h5: cannot write /cnn/", "make room and run the same command again to resume"]),
          ("a write fails with EIO mid-run", "pwrite64", "error=EIO:when=120",
           ["Input/output error", "data.h5: cannot write /cnn/", "fix the cause and run the same command again to resume"]),
          ("the 3rd flush fails with EIO", "fdatasync", "error=EIO:when=3",
           ["cannot flush to disk (fdatasync): Input/output error", "fix the cause and run the same command again to resume"]),
          ("SIGKILL in the middle of a write", "pwrite64", "signal=SIGKILL:when=100", None)]
for what, call, inject, words in faults if STRACE else []:
    out = f"{RES}/full.h5"
    ref = refs[(1, ("--save-features",))]
    p = cnn_run(out, ("--save-features",), 1, inject, call=call)
    l = att(p)
    ok = p.returncode == 1 and len(l) == 1 and all(w in l[0] for w in words) if words else p.returncode != 0
    check(ok and not os.path.exists(out), f"{what}: exit {p.returncode}, {l if words else 'killed'}; nothing at the final path")
    p2 = cnn_run(out, ("--save-features",))
    m2 = re.search(r"resuming: (\d+) of 32", p2.stdout)
    n, d = cnn_differing(out, ref) if p2.returncode == 0 and ref else (0, ["(no output)"])
    check(p2.returncode == 0 and m2 and not d and not os.path.exists(out + ".partial"),
          f"  the same command again resumes from {m2.group(1) if m2 else 0} images: {n} datasets == the uninterrupted run's (differ: {d})")
    if os.path.exists(out):
        os.remove(out)

# another option, or other images, is no resume: refused naming it (nothing at the final path);
# --restart discards the partial run and starts again
if STRACE:
    out = f"{RES}/opts.h5"
    lst = f"{RES}/list.txt"
    with open(lst, "w") as fh:
        fh.write("\n".join(pngs) + "\n")
    opt = ["--save-features"]
    run_list = lambda extra=(), inject=None: subprocess.run(
        MPIRUN + ["-n", "1", "-x", "OMP_NUM_THREADS=1"] + ([STRACE, *STRACE_ENV, "-f", "-qq", "-o", "/dev/null", "-e", "trace=fdatasync", "-e",
        f"inject=fdatasync:{inject}"] if inject else []) + [BIN, "run", "--model", "jobs/models/resnet-digits", "--images", lst,
        "--batch", "4", "--checkpoint-every", "0", *opt, *extra, "--out", out], capture_output=True, text=True, env=ENV, cwd=ROOT)
    p = run_list(inject="signal=SIGTERM:when=2")
    check(p.returncode == 75, f"a run over a list of the 32 images stopped by SIGTERM: exit {p.returncode}")
    for extra, key in ((("--features-dtype", "f16"), "--features-dtype (was f32, now f16)"), (("--batch", "8"), "--batch (was 4, now 8)")):
        p2 = run_list(extra)
        l2 = att(p2)
        check(p2.returncode != 0 and len(l2) == 1 and key in l2[0] and "--restart" in l2[0] and not os.path.exists(out),
              f"resumed with {' '.join(extra)}: refused naming it: {l2}")
    with open(lst, "w") as fh:          # the same path, the images in another order: other pixels per sample
        fh.write("\n".join(pngs[1:] + pngs[:1]) + "\n")
    p2 = run_list()
    l2 = att(p2)
    check(p2.returncode != 0 and len(l2) == 1 and "differs in samples_sha256" in l2[0] and not os.path.exists(out),
          f"resumed over other images under the same --images: refused (the manifest has the pixels' SHA-256): {l2}")
    with open(lst, "w") as fh:
        fh.write("\n".join(pngs) + "\n")
    p2 = run_list(("--features-dtype", "f16", "--restart"))
    with h5py.File(out, "r") as f:
        dt = f["cnn/stage_1/features"].dtype if p2.returncode == 0 else None
    check(p2.returncode == 0 and "resuming" not in p2.stdout and dt == np.float16 and not os.path.exists(out + ".partial"),
          f"--restart discards the interrupted run and runs anew with f16 features ({dt})")

# refusals: one line naming the file, key, tensor or option; nothing at the final path
def refused(name, args, words):
    out = f"{TMP}/refused_{name}.h5"
    p = run(*args, "--out", out, "--quiet")
    msg = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    check(p.returncode != 0 and all(w in msg for w in words) and not os.path.exists(out) and not os.path.exists(out + ".partial"),
          f"refused {name}: exit {p.returncode}: {msg[:200]}")


def bad_model(name, edit_config=None, rename=None):
    d = f"{TMP}/{name}"
    shutil.copytree(f"{FX}/resnet_basic_tiny", d)
    if edit_config:
        cfg = json.load(open(f"{d}/config.json"))
        edit_config(cfg)
        json.dump(cfg, open(f"{d}/config.json", "w"))
    if rename:   # a tensor renamed in the safetensors header (same length: offsets unchanged)
        raw = open(f"{d}/model.safetensors", "rb").read()
        assert len(rename[0]) == len(rename[1]) and raw.count(rename[0].encode()) == 1
        open(f"{d}/model.safetensors", "wb").write(raw.replace(rename[0].encode(), rename[1].encode()))
    return d


inp = ["--input", f"{FX}/input_resnet.h5"]
refused("text", ["--model", f"{FX}/resnet_basic_tiny", "--text", "jobs/demo_corpus.txt"], ["resnet", "takes images"])
refused("save_features_vit", ["--model", f"{FX}/vit_tiny", "--input", f"{FX}/input_vision.h5", "--save-features"], ["--save-features", "not a CNN"])
refused("gelu", ["--model", bad_model("gelu", lambda c: c.update(hidden_act="gelu")), *inp], ["config.json", "hidden_act", "relu"])
refused("depths", ["--model", bad_model("depths", lambda c: c.update(depths=[1])), *inp], ["config.json", "depths", "hidden_sizes"])
refused("layer_type", ["--model", bad_model("layer_type", lambda c: c.update(layer_type="preactivation")), *inp], ["config.json", "layer_type"])
refused("hidden_size", ["--model", bad_model("hidden_size", lambda c: c.update(hidden_sizes=[8, 0])), *inp], ["config.json", "hidden_sizes", "range"])
refused("missing_tensor", ["--model", bad_model("missing", rename=("stages.1.layers.0.shortcut.normalization.running_var",
                                                                   "stages.1.layers.0.shortcut.normalization.running_vaX")), *inp],
        ["missing tensor", "shortcut.normalization.running_var"])
refused("shape", ["--model", bad_model("shape", lambda c: c.update(embedding_size=16)), *inp], ["embedder.embedder.convolution.weight", "shape"])
with h5py.File(f"{TMP}/tiny_px.h5", "w") as f:
    f["pixel_values"] = np.zeros((1, 3, 3, 3), np.float32)
refused("too_small", ["--model", f"{FX}/resnet_basic_tiny", "--input", f"{TMP}/tiny_px.h5"], ["pixel_values", "[4, 8192]"])

# ---- the free space: a CNN run whose output does not fit is refused before anything is written ----
mnt = f"{TMP}/small"
os.makedirs(mnt)
mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], capture_output=True).returncode == 0
check(mounted, "a 1 MB tmpfs for the free-space check (mount as root)")
if mounted:
    try:
        p = run(*demo[1:], "--out", f"{mnt}/full.h5")          # --save-features: ~3 MB
        lines = [l for l in p.stderr.splitlines() if l.startswith("attnscope:")]
        check(p.returncode != 0 and len(lines) == 1 and "only" in lines[0] and "--force" in lines[0] and not os.listdir(mnt),
              f"a CNN run that does not fit is refused with the numbers, nothing left: exit {p.returncode}, {lines}")
        p = run(*[a for a in demo[1:] if a != "--save-features"], "--out", f"{mnt}/fits.h5")
        check(p.returncode == 0 and os.path.exists(f"{mnt}/fits.h5"),
              f"without --save-features (channel statistics, ~0.1 MB) it fits: exit {p.returncode} {p.stderr.strip()[-200:]}")
    finally:
        subprocess.run(["umount", "-l", mnt])

shutil.rmtree(TMP, ignore_errors=True)
sys.exit(summary())
