#!/usr/bin/env python3
"""The corpus of malformed weight files (issue 14): every rejection class of the reference
safetensors reader (huggingface/safetensors tensor.rs) and of GGUF (ggml's gguf.cpp, llama.cpp's
model loader, gguf-py), and the valid edge cases they accept; tests/fixtures/malformed/, made by
its make_malformed.py, lists each file's reference class and what we must do in expected.tsv.

Each file goes through build/tests/probe_weights (st_open_file + st_to_f32 of every float tensor,
or gguf_open + gguf_tensor_f32 of every dequantizable tensor). A reject case must exit 1, before the
timeout and without a signal, with exactly one stderr line that holds the file's path and matches
the case's regex; an accept case must exit 0 with nothing on stderr. A few cases then go through
the binary itself (attnscope run under mpirun) to show the line a user sees. Prints every
comparison (file, expected, got) and exits non-zero on any failure."""
import csv, os, re, shutil, signal, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
PROBE = os.path.join(BUILD, "tests/probe_weights")
BIN = os.path.join(BUILD, "attnscope")
CORPUS = os.path.join(ROOT, "tests/fixtures/malformed")
FX = os.path.join(ROOT, "tests/fixtures/hf")
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
# seconds: the probe reads a file in milliseconds and a run fails within a few seconds of mpirun's
# start, so running this long is a hang
TIMEOUT_PROBE, TIMEOUT_RUN = 10, 30


def run(cmd, timeout):
    """(exit status, or None on a hang, or -N for signal N; stdout lines; stderr lines without
    mpirun's boxed notes and the rank banner, which are not ours)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, errors="replace",
                         env=dict(os.environ, OMP_NUM_THREADS="1"), start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # mpirun and its rank together
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return None, [], []
    err = re.sub(r"-{20,}\n.*?-{20,}\n", "", err, flags=re.S)
    return p.returncode, out.splitlines(), [l for l in err.splitlines() if l.strip() and not l.startswith("[rank ")]


def judge(rel, path, want, regex, rc, err, extra=""):
    """One check: reject = exit 1, one stderr line naming path and matching regex; accept = exit 0."""
    if want == "reject":
        ok = rc == 1 and len(err) == 1 and path in err[0] and re.search(regex, err[0]) is not None
    else:
        ok = rc == 0 and not err
    got = "HANG" if rc is None else f"signal {-rc}" if rc < 0 else f"exit {rc}"
    shown = [l.replace(path, "FILE") for l in err]
    check(ok, f"{rel}{extra}: expected {want}{' /' + regex + '/' if want == 'reject' else ''}; got {got} {shown}")


t0 = time.time()
with open(os.path.join(CORPUS, "expected.tsv")) as fh:
    cases = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
n = {"safetensors": 0, "gguf": 0}
for c in cases:
    path = os.path.join(CORPUS, c["file"])
    n[c["file"].split("/")[0]] += 1
    rc, out, err = run([PROBE, path], TIMEOUT_PROBE)
    judge(c["file"], path, c["expected"], c["regex"], rc, err)
check(n["safetensors"] >= 35 and n["gguf"] >= 40, f"corpus size: {n['safetensors']} safetensors and {n['gguf']} GGUF cases "
      f"(want at least 35 and 40)")
print(f"probe: {len(cases)} files in {time.time() - t0:.1f} s")

# ---- a few through the binary: the line a user sees ---------------------------------------------
TMP = tempfile.mkdtemp(prefix="attnscope-malformed-")
BY_NAME = {os.path.basename(c["file"]).split("-", 1)[1]: c for c in cases}
THROUGH_BINARY = ["header-len-over-100MB.safetensors", "gap-between-tensors.safetensors", "trailing-comma.safetensors",
                  "f4-odd-count.safetensors", "bad-magic.gguf", "version-1.gguf", "data-past-eof.gguf",
                  "data-section-past-eof.gguf"]
for i, name in enumerate(THROUGH_BINARY):
    c = BY_NAME[name]
    src = os.path.join(CORPUS, c["file"])
    if name.endswith(".safetensors"):  # a model directory: bert_tiny's config and tokenizer, these weights
        d = os.path.join(TMP, f"model{i}")
        shutil.copytree(f"{FX}/bert_tiny", d)
        path = os.path.join(d, "model.safetensors")
        shutil.copy(src, path)
        model = d
    else:
        model = path = src
    cmd = MPIRUN + ["-n", "1", BIN, "run", "--model", model, "--input", f"{FX}/input_tiny.h5", "--out", f"{TMP}/out{i}.h5"]
    rc, out, err = run(cmd, TIMEOUT_RUN)
    judge(c["file"], path, "reject", c["regex"], rc, err, " (attnscope run)")

# ---- the header-size limit itself: made here, too big to commit ---------------------------------
# The reference accepts a header of exactly 100,000,000 bytes (N <= MAX_HEADER_SIZE) and refuses
# 100,000,001 (03-header-len-over-100MB above); JSON padded with spaces, as writers pad to 8 bytes.
import struct
hdr = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
for n_hdr, want in ((100_000_000, "accept"), (99_999_999, "accept")):
    path = os.path.join(TMP, f"header-{n_hdr}.safetensors")
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", n_hdr) + hdr + b" " * (n_hdr - len(hdr)) + struct.pack("<f", 1.5))
    rc, out, err = run([PROBE, path], TIMEOUT_PROBE)
    judge(f"generated header of {n_hdr:,} bytes", path, want, "", rc, err)
    os.unlink(path)
shutil.rmtree(TMP, ignore_errors=True)
print(f"runtime {time.time() - t0:.1f} s")
sys.exit(summary())
