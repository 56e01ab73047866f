#!/usr/bin/env python3
"""Tests of attnscope's command line and job files (src/cli.c), through the binary under mpirun.

Checks: -h/--help anywhere (also after other options, and over a bad value) exits 0 with the
usage on stdout; --version; --opt=value gives the same file as --opt value (/stats identical on
tests/fixtures/hf/bert_tiny); unknown options and commands get "did you mean"; every usage error
is one line naming the option plus one "try 'attnscope CMD --help'" line, exit 2, no usage dump;
on 2 ranks help and errors are printed once; a job-file typo names FILE:LINE and suggests; the
command line wins over the job file. Prints every comparison; exits non-zero on any failure."""
import os, re, shutil, subprocess, sys, tempfile
import numpy as np, h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "attnscope")
FX = os.path.join(ROOT, "tests/fixtures/hf")
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
TMP = tempfile.mkdtemp(prefix="attnscope-cli-")
TINY = ["--model", f"{FX}/bert_tiny", "--input", f"{FX}/input_tiny.h5"]


# mpirun waits a second or two (odls_base_sigkill_timeout) after a rank exits non-zero before it
# ends the job; most cases here exit 2 on purpose, so do not wait
ENV = dict(os.environ, OMPI_MCA_odls_base_sigkill_timeout="0")


def attnscope(*args, np_=1):
    cmd = MPIRUN + ["-n", str(np_), "-x", "OMP_NUM_THREADS=1", "-x", "OPENBLAS_NUM_THREADS=1", BIN] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=ENV)


def label(args):
    return "attnscope " + " ".join(map(str, args)).replace(TMP, "$TMP").replace(FX, "$FX")


def ours(stderr):
    """stderr without mpirun's own boxed notes ("---- ... process returned a non-zero exit code ----")."""
    text = re.sub(r"-{20,}\n.*?-{20,}\n", "", stderr, flags=re.S)
    return [l for l in text.splitlines() if l.strip()]


VERSION = re.compile(r"^attnscope \d+\.\d+\.\d+ \(commit [0-9a-z-]+\)$")

# ---- help and version exit 0 with their text on stdout -----------------------------------------
for args, want in [(["--help"], "usage: attnscope run"), (["-h"], "usage: attnscope run"), (["help"], "usage: attnscope run"),
                   (["run", "--help"], "--save-attention"), (["run", "-h"], "--save-attention"),
                   (["run", *TINY, "--save-attention", "--help"], "--save-attention"),
                   (["run", "--batch", "x", "--bogus", "-h"], "--save-attention"),
                   (["run", "--job", f"{TMP}/no_such.job", "--help"], "--save-attention"),
                   (["reduce", "--help"], "usage: attnscope reduce"), (["reduce", "out.h5", "--bins", 3, "-h"], "--exemplar-stat")]:
    p = attnscope(*args)
    check(p.returncode == 0 and want in p.stdout and not ours(p.stderr),
          f"{label(args)}: exit {p.returncode}, usage on stdout ({len(p.stdout.splitlines())} lines, has {want!r}), stderr {ours(p.stderr)}")
p = attnscope("run", "--help")
rows = [l for l in p.stdout.splitlines() if l.startswith("  --")]
check(len(rows) >= 20 and all(len(l) <= 120 for l in p.stdout.splitlines()) and "[default: fp32]" in p.stdout,
      f"run --help lists {len(rows)} options from the table, lines <= 120 characters, defaults shown ([default: fp32])")
for args in (["--version"], ["version"], ["run", "--version"], ["reduce", "--version"]):
    p = attnscope(*args)
    check(p.returncode == 0 and VERSION.match(p.stdout.strip()) is not None, f"{label(args)}: exit {p.returncode}, {p.stdout.strip()!r}")

# ---- two ranks: one usage, one error -------------------------------------------------------------
p = attnscope("run", "--help", np_=2)
check(p.returncode == 0 and p.stdout.count("usage: attnscope run") == 1, f"run --help on 2 ranks: exit {p.returncode}, usage printed {p.stdout.count('usage: attnscope run')} time(s)")
p = attnscope("--version", np_=2)
check(p.returncode == 0 and len(p.stdout.strip().splitlines()) == 1, f"--version on 2 ranks: exit {p.returncode}, {len(p.stdout.strip().splitlines())} line(s)")
p = attnscope("run", *TINY, "--save-atention", "--out", f"{TMP}/x.h5", np_=2)
check(p.returncode == 2 and ours(p.stderr) == ["attnscope: unknown option --save-atention; did you mean --save-attention?", "try 'attnscope run --help'"],
      f"unknown option on 2 ranks: exit {p.returncode}, stderr {ours(p.stderr)}")


# ---- usage errors: one line naming the option, the hint, exit 2, no usage -------------------------
def usage_error(args, line, hint="try 'attnscope run --help'"):
    p = attnscope(*args)
    got = ours(p.stderr)
    ok = p.returncode == 2 and got == [line, hint] and "usage:" not in p.stdout + p.stderr
    check(ok, f"{label(args)}: exit {p.returncode}, stderr {got}" + ("" if ok else f", wanted {[line, hint]}"))


out = ["--out", f"{TMP}/x.h5"]
usage_error(["run", *TINY, "--save-atention", *out], "attnscope: unknown option --save-atention; did you mean --save-attention?")
usage_error(["run", *TINY, "--windw=3", *out], "attnscope: unknown option --windw; did you mean --window?")
usage_error(["run", "--mod", f"{FX}/bert_tiny"], "attnscope: unknown option --mod; did you mean --model?")   # no prefix abbreviations
usage_error(["run", "-model", f"{FX}/bert_tiny"], "attnscope: unknown option -model; did you mean --model?")
usage_error(["run", *TINY, "--frobnicate", *out], "attnscope: unknown option --frobnicate")
usage_error(["run", *TINY, "--out"], "attnscope: --out needs a value")
usage_error(["run", *TINY, "--batch", "x", *out], "attnscope: --batch: 'x' is not an integer in [1, 1048576]")
usage_error(["run", *TINY, "--topk=65", *out], "attnscope: --topk: '65' is not an integer in [0, 64]")
usage_error(["run", *TINY, "--sink-eps", "1.5", *out], "attnscope: --sink-eps: '1.5' is not a number in [0, 1]")
usage_error(["run", *TINY, "--quiet=yes", *out], "attnscope: --quiet takes no value")
usage_error(["run", *TINY, "stray", *out], "attnscope: unexpected argument 'stray'")
usage_error(["run", *TINY], "attnscope: --out OUT.h5 is required")
usage_error(["run", *TINY, "--precision", "fp64", *out], "attnscope: --precision must be fp32, fp32-sgemm, tf32 or bf16, not 'fp64'")
usage_error(["run", *TINY, "--gelu", "fast", *out], "attnscope: --gelu must be auto, exact or tanh, not 'fast'")
usage_error(["reduce", "a.h5", "--bins", 0], "attnscope: --bins: '0' is not an integer in [1, 4096]", "try 'attnscope reduce --help'")
usage_error(["reduce", "a.h5", "--figure", "d"], "attnscope: unknown option --figure; did you mean --figures?", "try 'attnscope reduce --help'")
usage_error(["reduce", "a.h5", "--exemplar-stat", "entropyy"], "attnscope: --exemplar-stat: 'entropyy' is not a statistic; did you mean entropy?",
            "try 'attnscope reduce --help'")
usage_error(["reduce", "a.h5", "b.h5"], "attnscope: unexpected argument 'b.h5'", "try 'attnscope reduce --help'")
usage_error(["rn"], "attnscope: unknown command 'rn'; did you mean 'run'?", "try 'attnscope --help'")
usage_error(["--verison"], "attnscope: unknown option --verison; did you mean --version?", "try 'attnscope --help'")

# ---- --opt=value and --opt value give the same file ---------------------------------------------
files = {}
for style in ("equals", "space"):
    o = {"model": f"{FX}/bert_tiny", "input": f"{FX}/input_tiny.h5", "out": f"{TMP}/{style}.h5", "batch": 2, "window": 2,
         "topk": 2, "sink-eps": 0.25, "max-len": 16}
    args = [a for k, v in o.items() for a in ((f"--{k}={v}",) if style == "equals" else (f"--{k}", v))]
    p = attnscope("run", *args, "--quiet")
    check(p.returncode == 0, f"run with --opt{'=' if style == 'equals' else ' '}value: exit {p.returncode} {ours(p.stderr)}")
    files[style] = h5py.File(o["out"], "r")
a, b = files["equals"], files["space"]
names = sorted(a["stats"])
same = all(np.array_equal(a["stats/" + n][:], b["stats/" + n][:]) for n in names) and names == sorted(b["stats"])
st = a["stats"].attrs
check(same and st["window"] == 2 and st["topk"] == 2 and abs(st["sink_eps"] - 0.25) < 1e-6 and a["stats/topk_index"].shape[-1] == 2,
      f"--opt=value == --opt value: {len(names)} /stats datasets identical, both took window 2, topk 2, sink-eps {st['sink_eps']:.3g}")
check(a.attrs["command_line"].startswith(f"run --model={FX}/bert_tiny --input={FX}/input_tiny.h5 --out="),
      f"argv is recorded in the order given (not permuted by getopt): {a.attrs['command_line'][:60]!r}...")
for f in files.values(): f.close()

# ---- job files ----------------------------------------------------------------------------------
job = f"{TMP}/t.job"
open(job, "w").write(f"# a job\nmodel = {FX}/bert_tiny\ninput = {FX}/input_tiny.h5\nout = {TMP}/job_wrong.h5\n"
                     "window = 5\ntopk = 2\nsave-attention = yes\n")
p = attnscope("run", "--job", job, "--out", f"{TMP}/job.h5", "--window=4", "--quiet")
with h5py.File(f"{TMP}/job.h5", "r") as f:
    w, k, att = int(f["stats"].attrs["window"]), int(f["stats"].attrs["topk"]), "attention" in f
check(p.returncode == 0 and w == 4 and k == 2 and att and not os.path.exists(f"{TMP}/job_wrong.h5"),
      f"command line over job file: window {w} (job 5, command line 4), --out from the command line; from the job: topk {k}, save-attention = yes -> /attention {att}")
p = attnscope("run", f"--job={job}", "--out", f"{TMP}/job2.h5", "--quiet")
check(p.returncode == 0 and os.path.exists(f"{TMP}/job2.h5"), f"--job=FILE works too: exit {p.returncode}")
for name, text, line in [
        ("typo", "save-atention = true\n", "t_bad.job:3: unknown option --save-atention; did you mean --save-attention?"),
        ("bad flag", "quiet = maybe\n", "t_bad.job:3: --quiet: expected true or false (or 1/0, yes/no), got 'maybe'"),
        ("bad integer", "batch = many\n", "t_bad.job:3: --batch: 'many' is not an integer in [1, 1048576]"),
        ("nested job", f"job = {job}\n", "t_bad.job:3: a job file cannot name another job file"),
        ("no '='", "window 3\n", "t_bad.job:3: expected 'key = value'")]:
    bad = f"{TMP}/t_bad.job"
    open(bad, "w").write(f"# line 1\nmodel = {FX}/bert_tiny   # line 2\n{text}")
    usage_error(["run", "--job", bad, *out], f"attnscope: {bad}:{line.split(':', 1)[1]}")

# ---- the shipped per-family job files run as their comments say (model, data, out on the command line)
for fam, fixture in (("gpt2", "gpt2_tiny"), ("llama", "llama_tiny"), ("qwen2", "qwen2_tiny"), ("mistral", "mistral_tiny")):
    o = f"{TMP}/job_{fam}.h5"
    p = attnscope("run", "--job", f"jobs/{fam}.job", "--model", f"{FX}/{fixture}", "--input", f"{FX}/input_decoder.h5",
                  "--out", o, "--quiet")
    with open(f"{ROOT}/jobs/{fam}.job") as f:
        m = re.search(r"^topk = (\d+)", f.read(), re.M)
        want_topk = int(m.group(1)) if m else 0     # (no line: the default, 0)
    ok = p.returncode == 0 and os.path.exists(o)
    topk = int(h5py.File(o, "r")["stats"].attrs["topk"]) if ok else None
    check(ok and topk == want_topk, f"jobs/{fam}.job on {fixture}: exit {p.returncode}, /stats topk {topk} (the job's {want_topk})"
          + ("" if ok else f": {ours(p.stderr)[-1:]}"))

shutil.rmtree(TMP, ignore_errors=True)
sys.exit(summary())
