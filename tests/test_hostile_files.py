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
from checks import SLOW, check, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "attnscope")
FX = os.path.join(ROOT, "tests/fixtures/hf")
IMG = os.path.join(ROOT, "tests/fixtures/images")
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
TMP = tempfile.mkdtemp(prefix="attnscope-hostile-")
TIMEOUT = 20 * SLOW  # seconds; every case here fails in well under one, so running this long is a hang
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


def out():
    """--out with a path of its own: a case that wrongly succeeds cannot spoil the next one."""
    out.n = getattr(out, "n", 0) + 1
    return ["--out", f"{TMP}/out{out.n}.h5"]


TINY_IN = ["--input", f"{FX}/input_tiny.h5"]
d = copy_with_fifo(f"{FX}/bert_tiny", "model.safetensors")
refused("weights model.safetensors as a FIFO", ["run", "--model", d, *TINY_IN, *out()], [f"{d}/model.safetensors: {NOT_REG}"])
d = copy_with_fifo(f"{FX}/bert_tiny_sharded", "model-00002-of-00003.safetensors")
refused("one shard of a sharded checkpoint as a FIFO", ["run", "--model", d, *TINY_IN, *out()],
        [f"{d}/model-00002-of-00003.safetensors: {NOT_REG}"])
d = copy_with_fifo(f"{FX}/bert_tiny_sharded", "model.safetensors.index.json")
refused("model.safetensors.index.json as a FIFO", ["run", "--model", d, *TINY_IN, *out()],
        [f"{d}/model.safetensors.index.json: {NOT_REG}"])
d = copy_with_fifo(f"{FX}/bert_tiny", "config.json")
refused("config.json as a FIFO", ["run", "--model", d, *TINY_IN, *out()], [f"{d}/config.json: {NOT_REG}"])
CLIP_TXT = ["--text", f"{FX}/clip_sentences.txt"]
d = copy_with_fifo(f"{FX}/clip_text_tok", "tokenizer.json")
refused("tokenizer.json as a FIFO (run)", ["run", "--model", d, *CLIP_TXT, *out()], [f"{d}/tokenizer.json: {NOT_REG}"])
refused("tokenizer.json as a FIFO (tokenize)", ["tokenize", "--tokenizer", d], [f"{d}/tokenizer.json: {NOT_REG}"])
f = fifo("tok.gguf")
refused("a GGUF tokenizer file as a FIFO (tokenize)", ["tokenize", "--tokenizer", f], [f"{f}: {NOT_REG}"])
f = fifo("corpus.txt")
refused("a --text corpus as a FIFO", ["run", "--model", f"{FX}/clip_text_tok", "--text", f, *out()], [f"{f}: {NOT_REG}"])
f = fifo("a.job")
refused("a --job file as a FIFO", ["run", "--job", f], [f"{f}: {NOT_REG}"])
f = fifo("input.h5")
refused("an --input HDF5 file as a FIFO", ["run", "--model", f"{FX}/bert_tiny", "--input", f, *out()], [f"{f}: {NOT_REG}"])
f = fifo("model.gguf")
refused("a --model GGUF file as a FIFO", ["run", "--model", f, *TINY_IN, *out()], [f"{f}: {NOT_REG} or a directory"])
f = fifo("tok_corpus.txt")
refused("a tokenize --text corpus as a FIFO", ["tokenize", "--tokenizer", f"{FX}/clip_text_tok", "--text", f], [f"{f}: {NOT_REG}"])
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

# through run: a vision model's --images list, and an image of an --images directory
VIT = os.path.join(ROOT, "jobs/models/vit-digits")
f = fifo("run_images.txt")
refused("an --images list file as a FIFO (run)", ["run", "--model", VIT, "--images", f, *out()], [f"{f}: {NOT_REG}"])
d = os.path.join(TMP, "run_images")
os.mkdir(d)
shutil.copy(os.path.join(ROOT, "jobs/digits/test_000_6.png"), d)
os.mkfifo(f"{d}/zz.png")
FIFOS.append(f"{d}/zz.png")
refused("an image of an --images directory as a FIFO (run)", ["run", "--model", VIT, "--images", d, *out()], [f"{d}/zz.png: {NOT_REG}"])

# reduce: HDF5 would open a named pipe and wait on it
f = fifo("reduce_in.h5")
refused("reduce of a FIFO", ["reduce", f], [f"{f}: {NOT_REG}"])

# the files of a partial run (OUT.partial/): a named pipe there is not waited on; the run starts
# afresh (the partial state is not this run's) and completes
for name in ("manifest", "rank-00000.progress", "data.h5", "lock"):
    o = os.path.join(TMP, f"partial_{name.replace('.', '_')}.h5")
    os.mkdir(o + ".partial")
    os.mkfifo(os.path.join(o + ".partial", name))
    FIFOS.append(os.path.join(o + ".partial", name))
    rc, lines = attnscope("run", "--model", f"{FX}/bert_tiny", *TINY_IN, "--out", o)
    check(rc == 0 and os.path.isfile(o), f"a FIFO as OUT.partial/{name}: exit {'HANG' if rc is None else rc}, "
          f"{'wrote' if os.path.isfile(o) else 'did not write'} the output")

# ---- a NUL byte in a job file: refused with its line, not the rest of the file dropped -----------
# line 3 is cut by a NUL; before the fix the run went on without line 4's --out
job = os.path.join(TMP, "nul.job")
with open(job, "wb") as fh:
    fh.write(f"model = {FX}/bert_tiny\ninput = {FX}/input_tiny.h5\nbatch = 4\0 garbage\nout = {TMP}/nul.h5\n".encode())
refused("a job file with a NUL byte on line 3", ["run", "--job", job], [f"{job}:3: NUL byte"])
check(not os.path.exists(f"{TMP}/nul.h5"), "the job file with a NUL byte wrote no output")

# ---- safetensors headers and dtypes -------------------------------------------------------------
def read_st(path):
    """(header dict, {name: raw bytes}) of a safetensors file."""
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    data = {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
    return h, data


def write_st(path, h, data, header_text=None):
    """A safetensors file of header h (offsets recomputed from data, in h's order) or, given, the
    header text as is (its offsets must already be right)."""
    off = 0
    for k, v in h.items():
        if k == "__metadata__": continue
        v["data_offsets"] = [off, off + len(data[k])]
        off += len(data[k])
    text = (header_text if header_text is not None else json.dumps(h)).encode()
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text + b"".join(data[k] for k in h if k != "__metadata__"))


def model_copy(name):
    d = os.path.join(TMP, name)
    shutil.copytree(f"{FX}/bert_tiny", d)
    return d


H, DATA = read_st(f"{FX}/bert_tiny/model.safetensors")
# an unpaired surrogate escape in a string of the header: serde_json (the reference reader) fails
# with "unexpected end of hex escape" / "lone leading surrogate"; json-c would take it as U+FFFD
for i, (case, esc) in enumerate((("lone high surrogate \\ud800", "\\ud800"), ("lone low surrogate \\udc00", "\\udc00"),
                  ("high surrogate then a non-surrogate \\ud800\\u0041", "\\ud800\\u0041"))):
    d = model_copy(f"surrogate_{i}")
    h = json.loads(json.dumps(H))
    h["__metadata__"] = {"format": "pt", "note": "@@"}
    write_st(f"{d}/model.safetensors", h, DATA)
    text = open(f"{d}/model.safetensors", "rb").read()  # the escape put in by hand: json.dumps would pair it
    n = struct.unpack("<Q", text[:8])[0]
    hdr = text[8:8 + n].decode().replace("@@", esc)
    with open(f"{d}/model.safetensors", "wb") as fh:
        fh.write(struct.pack("<Q", len(hdr)) + hdr.encode() + text[8 + n:])
    refused(f"safetensors header with a {case}", ["run", "--model", d, *TINY_IN, *out()],
            [f"{d}/model.safetensors: header has an unpaired", "surrogate escape"])
# a proper pair (U+1F600) stays accepted, as the reference accepts it
d = model_copy("surrogate_pair")
h = json.loads(json.dumps(H))
h["__metadata__"] = {"format": "pt", "note": "\U0001F600 and \\ud800 as text"}
write_st(f"{d}/model.safetensors", h, DATA)  # json.dumps writes the emoji as \ud83d\ude00
rc, lines = attnscope("run", "--model", d, *TINY_IN, "--out", f"{TMP}/pair.h5", "--quiet")
check(rc == 0 and '\\ud83d\\ude00' in open(f"{d}/model.safetensors", "rb").read().decode("latin-1"),
      f"safetensors header with a paired surrogate escape \\ud83d\\ude00 (and an escaped backslash before 'ud800'): "
      f"exit {rc}, stderr {[label(l) for l in lines]} (want 0)")

# an I64 or F64 weight (a valid file, a dtype the model cannot use) names the file and the tensor
for dt, np_dt in (("I64", "<i8"), ("F64", "<f8")):
    d = model_copy("dtype_" + dt)
    h = json.loads(json.dumps(H))
    data = dict(DATA)
    name = "embeddings.LayerNorm.weight"
    h[name]["dtype"] = dt
    data[name] = struct.pack(f"<{len(DATA[name]) // 4}" + ("q" if dt == "I64" else "d"),
                             *([1] * (len(DATA[name]) // 4)))
    write_st(f"{d}/model.safetensors", h, data)
    refused(f"a {dt} weight", ["run", "--model", d, *TINY_IN, *out()], [f"{d}/model.safetensors", f'"{name}"', dt])

shutil.rmtree(TMP, ignore_errors=True)
sys.exit(summary())
