#!/usr/bin/env python3
"""A sweep of hostile inputs through the real binary (issue 14): several hundred files made by
mutating valid fixtures — truncations, byte flips, edited length fields and JSON values, PNGs with
corrected CRCs, HDF5 inputs of wrong shapes and types, broken job files and corpora — each run as a
user would run it (`run`, `tokenize`, `preprocess`), under a timeout.

Each case passes when the binary either
  - accepts the input (exit 0; a flipped byte inside weight data is still a valid file), or
  - refuses it: exit 1 or 2, one "attnscope:" line on stderr that names the mutated file (or the
    directory holding it), no signal, and nothing at the final output path;
and fails on a crash (a signal: SIGSEGV, SIGBUS, SIGABRT, a sanitizer's abort), a hang (no exit
within the timeout), a refusal without the one line, or a refused run that left its output.
Deterministic (fixed seeds). Prints one line per failing case, a table per parser (cases, accepted,
refused, failed) and "N passed, N failed"; exits non-zero on any failure. BUILD=build-asan runs it
under the sanitizers. SWEEP_JOBS sets the parallel runs (default 2); SWEEP_ONLY=PARSER runs one
table row; SWEEP_SHOW=1 lists every case's outcome."""
import json, os, random, shutil, struct, subprocess, sys, tempfile, zlib
from concurrent.futures import ThreadPoolExecutor
import numpy as np, h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "attnscope")
FX = os.path.join(ROOT, "tests/fixtures")
HF = os.path.join(FX, "hf")
TMP = tempfile.mkdtemp(prefix="attnscope-sweep-")
SLOW = float(os.environ.get("ATTNSCOPE_TEST_SLOW", "1"))
TIMEOUT = 30 * SLOW
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
CASES = []  # (parser, name, argv, blamed paths, output path or None)


def case(parser, name, argv, blame, out=None):
    CASES.append((parser, name, [str(a) for a in argv], blame, out))


def new_dir(tag):
    d = os.path.join(TMP, f"{len(CASES):04d}-{tag}")
    os.makedirs(d)
    return d


def model_dir(src, tag, name, data):
    """a copy of fixture dir src with file name replaced by data; the dir and the file's path"""
    d = new_dir(tag)
    for f in os.listdir(src):
        if os.path.isfile(os.path.join(src, f)): os.symlink(os.path.join(src, f), os.path.join(d, f))
    os.remove(os.path.join(d, name)) if os.path.lexists(os.path.join(d, name)) else None
    open(os.path.join(d, name), "wb").write(data)
    return d, os.path.join(d, name)


def truncations(data, n, rnd, head=None):
    """n cut points: every early byte (the header) first, then spread over the rest"""
    head = head or min(len(data), 64)
    cuts = list(range(0, head, max(1, head // (n // 2))))
    while len(cuts) < n: cuts.append(rnd.randrange(len(data)))
    return sorted(set(cuts))


def flips(data, n, rnd, lo=0, hi=None):
    hi = hi or len(data)
    out = []
    for _ in range(n):
        b = bytearray(data)
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(lo, hi)
            b[i] = rnd.choice((0, 0xFF, b[i] ^ (1 << rnd.randrange(8)), ord('"'), ord('{'), ord('9')))
        out.append(bytes(b))
    return out


# ---- safetensors: bert_tiny's model.safetensors ---------------------------------------------------
def safetensors_cases(rnd):
    src = os.path.join(HF, "bert_tiny")
    data = open(os.path.join(src, "model.safetensors"), "rb").read()
    hl = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + hl])
    runargs = lambda d: ["run", "--model", d, "--input", f"{HF}/input_tiny.h5", "--out", f"{d}/o.h5"]

    def add(tag, blob):
        d, p = model_dir(src, tag, "model.safetensors", blob)
        case("safetensors", tag, runargs(d), [p], f"{d}/o.h5")

    for cut in truncations(data, 30, rnd, head=8 + hl):
        add(f"st-trunc{cut}", data[:cut])
    for i, b in enumerate(flips(data, 30, rnd, 0, 8 + hl)):
        add(f"st-flip{i}", b)
    for v in (0, 1, 2, hl - 1, hl + 1, len(data), 100 << 20, (100 << 20) + 1, 1 << 40, (1 << 64) - 1):
        add(f"st-len{v}", struct.pack("<Q", v) + data[8:])
    names = [k for k in header if k != "__metadata__"]

    def edited(tag, fn):
        h = json.loads(json.dumps(header))
        fn(h)
        hb = json.dumps(h).encode()
        add(tag, struct.pack("<Q", len(hb)) + hb + data[8 + hl:])

    big = (1 << 31, 1 << 40, (1 << 63) - 1, 1 << 64, -1)
    for j, k in enumerate(rnd.sample(names, 6)):
        for v in big:
            edited(f"st-shape-{j}-{v}", lambda h: h[k].__setitem__("shape", [v] + h[k]["shape"][1:]))
            edited(f"st-off-{j}-{v}", lambda h: h[k].__setitem__("data_offsets", [h[k]["data_offsets"][0], v]))
        for dt in ("F64", "I8", "BOOL", "F8_E4M3", "Q4", "", 7):
            edited(f"st-dtype-{j}-{dt}", lambda h: h[k].__setitem__("dtype", dt))
        edited(f"st-noshape-{j}", lambda h: h[k].pop("shape"))
        edited(f"st-offs3-{j}", lambda h: h[k].__setitem__("data_offsets", [0, 4, 8]))
        edited(f"st-shapestr-{j}", lambda h: h[k].__setitem__("shape", "32"))
        edited(f"st-gone-{j}", lambda h: h.pop(k))
    edited("st-meta-int", lambda h: h.__setitem__("__metadata__", {"a": 1}))
    edited("st-meta-list", lambda h: h.__setitem__("__metadata__", []))
    edited("st-overlap", lambda h: h[names[1]].__setitem__("data_offsets", h[names[0]]["data_offsets"]))


# ---- config.json: bert_tiny's ---------------------------------------------------------------------
def config_cases(rnd):
    src = os.path.join(HF, "bert_tiny")
    cfg = json.load(open(os.path.join(src, "config.json")))
    text = json.dumps(cfg).encode()

    def add(tag, blob):
        d, p = model_dir(src, tag, "config.json", blob)
        case("config.json", tag, ["run", "--model", d, "--input", f"{HF}/input_tiny.h5", "--out", f"{d}/o.h5"], [p], f"{d}/o.h5")

    for k in ("hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size", "vocab_size",
              "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "model_type", "hidden_act"):
        c = dict(cfg); c.pop(k); add(f"cfg-no-{k}", json.dumps(c).encode())
        for v in (0, -1, 1 << 31, 1e308, float("nan"), "x", None, []):
            c = dict(cfg); c[k] = v
            add(f"cfg-{k}-{v}", json.dumps(c).encode())
    for cut in truncations(text, 10, rnd):
        add(f"cfg-trunc{cut}", text[:cut])
    for i, b in enumerate(flips(text, 10, rnd)):
        add(f"cfg-flip{i}", b)
    add("cfg-array", b"[]")
    add("cfg-deep", b"[" * 100000 + b"]" * 100000)
    add("cfg-empty", b"")


# ---- tokenizer.json: the CLIP fixture's BPE ---------------------------------------------------------
def tokenizer_cases(rnd):
    src = os.path.join(HF, "clip_text_tok")
    tok = json.load(open(os.path.join(src, "tokenizer.json")))
    text = json.dumps(tok).encode()

    def add(tag, blob):
        d, p = model_dir(src, tag, "tokenizer.json", blob)
        case("tokenizer.json", tag, ["tokenize", "--tokenizer", d, "--text", f"{HF}/clip_sentences.txt"], [p])

    for cut in truncations(text, 20, rnd, head=400):
        add(f"tok-trunc{cut}", text[:cut])
    for i, b in enumerate(flips(text, 20, rnd)):
        add(f"tok-flip{i}", b)

    def edited(tag, fn):
        t = json.loads(text)
        fn(t)
        add(tag, json.dumps(t).encode())

    vocab = tok["model"]["vocab"]
    first = next(iter(vocab))
    edited("tok-model-null", lambda t: t.__setitem__("model", None))
    edited("tok-type", lambda t: t["model"].__setitem__("type", "Unigram9"))
    edited("tok-vocab-list", lambda t: t["model"].__setitem__("vocab", []))
    for v in (-1, 1 << 31, 1 << 40, 2.5, "7", None):
        edited(f"tok-id-{v}", lambda t: t["model"]["vocab"].__setitem__(first, v))
    edited("tok-dup-id", lambda t: t["model"]["vocab"].__setitem__(first, 1))
    edited("tok-merges-int", lambda t: t["model"].__setitem__("merges", [1, 2]))
    edited("tok-merge-unknown", lambda t: t["model"]["merges"].insert(0, "qqq zzz"))
    edited("tok-merge-one", lambda t: t["model"]["merges"].insert(0, "abc"))
    edited("tok-merges-pairs", lambda t: t["model"].__setitem__("merges", [["a"], ["b", "c", "d"]]))
    for k in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        edited(f"tok-{k}-bad", lambda t: t.__setitem__(k, {"type": "Nope"}))
        edited(f"tok-{k}-int", lambda t: t.__setitem__(k, 5))
    edited("tok-added-bad", lambda t: t.__setitem__("added_tokens", [{"id": -5, "content": "x"}]))
    edited("tok-added-empty", lambda t: t.__setitem__("added_tokens", [{"id": 3, "content": ""}]))
    edited("tok-added-big", lambda t: t.__setitem__("added_tokens", [{"id": 1 << 33, "content": "x"}]))
    edited("tok-regex-bad", lambda t: t.__setitem__("pre_tokenizer", {"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated", "invert": False}))
    edited("tok-regex-huge", lambda t: t.__setitem__("pre_tokenizer", {"type": "Split", "pattern": {"Regex": "(a*)*" * 2000}, "behavior": "Isolated", "invert": False}))
    edited("tok-seq-deep", lambda t: t.__setitem__("normalizer", json.loads('{"type":"Sequence","normalizers":[' * 200 + ']}' * 200)))


# ---- GGUF: a tokenizer GGUF through tokenize, a model GGUF through run --------------------------------
def gguf_cases(rnd):
    for tag, src, argv in (("tokgguf", f"{FX}/gguf_tok/tiny_llama_bpe.gguf", lambda p: ["tokenize", "--tokenizer", p, "--text", f"{HF}/clip_sentences.txt"]),
                           ("metagguf", f"{FX}/gguf/meta.gguf", lambda p: ["tokenize", "--tokenizer", p, "--text", f"{HF}/clip_sentences.txt"])):
        data = open(src, "rb").read()
        for cut in truncations(data, 25, rnd, head=200):
            d = new_dir(tag)
            p = os.path.join(d, "m.gguf")
            open(p, "wb").write(data[:cut])
            case("GGUF", f"{tag}-trunc{cut}", argv(p), [p])
        for i, b in enumerate(flips(data, 35, rnd, 0, min(len(data), 4096))):
            d = new_dir(tag)
            p = os.path.join(d, "m.gguf")
            open(p, "wb").write(b)
            case("GGUF", f"{tag}-flip{i}", argv(p), [p])
        # the counts after the magic and version: n_tensors, n_kv as huge / negative numbers
        for v in (1 << 32, 1 << 62, (1 << 64) - 1, 1 << 40):
            for off in (8, 16):
                b = bytearray(data)
                b[off:off + 8] = struct.pack("<Q", v)
                d = new_dir(tag)
                p = os.path.join(d, "m.gguf")
                open(p, "wb").write(bytes(b))
                case("GGUF", f"{tag}-count{off}-{v}", argv(p), [p])


# ---- PNG and JPEG: through preprocess ---------------------------------------------------------------
def png_chunks(data):
    i, out = 8, []
    while i + 8 <= len(data):
        n = struct.unpack(">I", data[i:i + 4])[0]
        out.append((data[i + 4:i + 8], data[i + 8:i + 8 + n]))
        i += 12 + n
    return out


def png_build(chunks):
    b = b"\x89PNG\r\n\x1a\n"
    for t, c in chunks:
        b += struct.pack(">I", len(c)) + t + c + struct.pack(">I", zlib.crc32(t + c) & 0xFFFFFFFF)
    return b


def image_cases(rnd):
    pp = f"{FX}/images/pp/vit_32"
    pngs = sorted(os.listdir(f"{FX}/images/png"))

    def add(tag, blob, ext="png"):
        d = new_dir(tag)
        p = os.path.join(d, f"x.{ext}")
        open(p, "wb").write(blob)
        case("PNG" if ext == "png" else "JPEG", tag, ["preprocess", "--images", d, "--preprocessor", pp, "--out", f"{d}/o.h5"], [p], f"{d}/o.h5")

    for name in rnd.sample(pngs, 8):
        data = open(f"{FX}/images/png/{name}", "rb").read()
        for cut in truncations(data, 6, rnd, head=40):
            add(f"png-{name}-trunc{cut}", data[:cut])
        for i, b in enumerate(flips(data, 5, rnd)):
            add(f"png-{name}-flip{i}", b)
    data = open(f"{FX}/images/png/rgb8_37x23.png", "rb").read()
    ch = png_chunks(data)
    ihdr = ch[0][1]
    for w, h in ((0, 23), (37, 0), (1 << 31, 1), (1 << 20, 1 << 20), (0x7FFFFFFF, 0x7FFFFFFF), (100000, 100000)):
        add(f"png-dims-{w}x{h}", png_build([(b"IHDR", struct.pack(">II", w, h) + ihdr[8:])] + ch[1:]))
    for depth, ctype in ((3, 2), (16, 3), (7, 0), (8, 5), (8, 7), (1, 2)):
        add(f"png-type-{depth}-{ctype}", png_build([(b"IHDR", ihdr[:8] + bytes([depth, ctype]) + ihdr[10:])] + ch[1:]))
    idat = b"".join(c for t, c in ch if t == b"IDAT")
    raw = zlib.decompress(idat)
    add("png-idat-short", png_build([ch[0], (b"IDAT", zlib.compress(raw[: len(raw) // 2])), (b"IEND", b"")]))
    add("png-idat-long", png_build([ch[0], (b"IDAT", zlib.compress(raw + raw)), (b"IEND", b"")]))
    add("png-bad-filter", png_build([ch[0], (b"IDAT", zlib.compress(bytes([9]) + raw[1:])), (b"IEND", b"")]))
    add("png-bomb", png_build([(b"IHDR", struct.pack(">II", 30000, 30000) + ihdr[8:]), (b"IDAT", zlib.compress(b"\0" * (30000 * 90001 // 10), 9)), (b"IEND", b"")]))
    add("png-no-idat", png_build([ch[0], (b"IEND", b"")]))
    add("png-plte-big", png_build([ch[0], (b"PLTE", b"\0" * 3000)] + ch[1:]))
    add("png-empty", b"")
    add("png-text", b"not an image at all\n")
    for name in sorted(os.listdir(f"{FX}/images/jpeg")):
        data = open(f"{FX}/images/jpeg/{name}", "rb").read()
        for cut in truncations(data, 8, rnd, head=200):
            add(f"jpg-{name}-trunc{cut}", data[:cut], "jpg")
        for i, b in enumerate(flips(data, 8, rnd, 0, min(600, len(data)))):
            add(f"jpg-{name}-flip{i}", b, "jpg")
        # SOF0 dimensions
        k = data.find(b"\xff\xc0")
        if k > 0:
            for w, h in ((0, 5), (65535, 65535), (1, 65535)):
                b = bytearray(data)
                b[k + 5:k + 9] = struct.pack(">HH", h, w)
                add(f"jpg-{name}-dims{w}x{h}", bytes(b), "jpg")


# ---- --input HDF5 files --------------------------------------------------------------------------------
def h5_cases(rnd):
    model = f"{HF}/bert_tiny"
    ref = h5py.File(f"{HF}/input_tiny.h5", "r")
    base = {k: ref[k][()] for k in ref.keys()}

    def add(tag, fn):
        d = new_dir(tag)
        p = os.path.join(d, "in.h5")
        with h5py.File(p, "w") as f:
            data = {k: np.array(v) for k, v in base.items()}
            fn(f, data)
            for k, v in data.items():
                if v is not None and k not in f: f[k] = v
        case("--input HDF5", tag, ["run", "--model", model, "--input", p, "--out", f"{d}/o.h5"], [p], f"{d}/o.h5")

    keys = list(base)
    for k in keys:
        add(f"h5-no-{k}", lambda f, d: d.__setitem__(k, None))
        for dt in (np.float64, np.int8, np.uint64, "S4"):
            add(f"h5-{k}-{np.dtype(dt).name}", lambda f, d: d.__setitem__(k, d[k].astype(dt)))
        add(f"h5-{k}-rank1", lambda f, d: d.__setitem__(k, d[k].reshape(-1)))
        add(f"h5-{k}-rank3", lambda f, d: d.__setitem__(k, d[k].reshape(d[k].shape + (1,))))
        add(f"h5-{k}-empty", lambda f, d: d.__setitem__(k, d[k][:0]))
        add(f"h5-{k}-group", lambda f, d: (d.__setitem__(k, None), f.create_group(k)))
        add(f"h5-{k}-huge", lambda f, d: (f.create_dataset(k, shape=(1 << 40,) + d[k].shape[1:], dtype=d[k].dtype, chunks=True), d.__setitem__(k, None)))
        if base[k].dtype.kind in "iu":
            for v in (-1, 1 << 30, np.iinfo(base[k].dtype).max):
                add(f"h5-{k}-val{v}", lambda f, d: d[k].flat.__setitem__(0, v))
    add("h5-text", lambda f, d: None)  # replaced below by a non-HDF5 file
    p = CASES[-1][3][0]
    open(p, "wb").write(b"hello\n")
    for cut in (0, 8, 100, 500, 2000):
        d = new_dir("h5-trunc")
        p = os.path.join(d, "in.h5")
        open(p, "wb").write(open(f"{HF}/input_tiny.h5", "rb").read()[:cut])
        case("--input HDF5", f"h5-trunc{cut}", ["run", "--model", model, "--input", p, "--out", f"{d}/o.h5"], [p], f"{d}/o.h5")


# ---- job files and text corpora ------------------------------------------------------------------------
def text_cases(rnd):
    tokdir = f"{HF}/clip_text_tok"
    lines = [b"hello world", b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"a\x00b", b"\xe2\x82",
             b"\xef\xbb\xbfbom", b"\r\n\r\n", b"x" * 2000000, b"\x1b[31mred", "é".encode() * 100000, b"\x80" * 1000]
    for i, l in enumerate(lines):
        d = new_dir("text")
        p = os.path.join(d, "corpus.txt")
        open(p, "wb").write(b"fine line\n" + l + b"\nanother\n")
        case("text corpus", f"text-{i}", ["run", "--model", tokdir, "--text", p, "--out", f"{d}/o.h5"], [p], f"{d}/o.h5")
    job = open(f"{ROOT}/jobs/demo.job", "rb").read().replace(b"demo-out/demo.h5", b"OUT")
    muts = [b"model = \n", b"= value\n", b"max-len = -5\n", b"max-len = 99999999999999999999\n", b"batch = 0x10\n",
            b"unknown-key = 1\n", b"out\n", b"\xff\xfe = 1\n", b"model = " + b"a" * 10000 + b"\n", b"topk = 1e9\n",
            b"dtype = f64\n", b"ranks = 3\n", b"key = value = value\n", b"text = /nonexistent/file\n"]
    for i, m in enumerate(muts):
        d = new_dir("job")
        p = os.path.join(d, "x.job")
        open(p, "wb").write(job.replace(b"OUT", f"{d}/o.h5".encode()) + m)  # the last line of a key wins
        case("job file", f"job-{i}", ["run", "--job", p], [p, "/nonexistent/file", "a" * 100], f"{d}/o.h5")
    for cut in truncations(job, 8, rnd, head=len(job)):
        d = new_dir("job")
        p = os.path.join(d, "x.job")
        # the out line cut out, then given whole at the end: a cut path must not write elsewhere
        cut_job = b"\n".join(l for l in job[:cut].split(b"\n") if not l.startswith(b"out"))
        open(p, "wb").write(cut_job + f"\nout = {d}/o.h5\n".encode())
        case("job file", f"job-trunc{cut}", ["run", "--job", p], [p], f"{d}/o.h5")


def run_case(c):
    parser, name, argv, blame, out = c
    try:
        r = subprocess.run([BIN] + argv, capture_output=True, cwd=ROOT, env=ENV, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return parser, name, "fail", f"HANG (no exit in {TIMEOUT:.0f} s)"
    err = r.stderr.decode("utf-8", "replace")
    ours = [l for l in err.splitlines() if l.startswith("attnscope:") and "warning:" not in l]
    if r.returncode < 0 or r.returncode > 2:
        return parser, name, "fail", f"CRASH rc {r.returncode}: {err.strip()[-300:]}"
    if r.returncode == 0:
        return parser, name, "accepted", ""
    named = any(any(b in l or os.path.dirname(b) in l for b in blame) for l in ours)
    if len(ours) != 1 or not named:
        return parser, name, "fail", f"refused (rc {r.returncode}) without one line naming the file: {err.strip()[-300:]!r}"
    if out and os.path.exists(out):
        return parser, name, "fail", f"refused but left {out}"
    return parser, name, "refused", ours[0]


def main():
    rnd = random.Random(14)
    for make in (safetensors_cases, config_cases, tokenizer_cases, gguf_cases, image_cases, h5_cases, text_cases):
        make(rnd)
    only = os.environ.get("SWEEP_ONLY")
    if only: CASES[:] = [c for c in CASES if c[0] == only]
    print(f"{len(CASES)} hostile inputs; binary {BIN}; timeout {TIMEOUT:.0f} s each", flush=True)
    with ThreadPoolExecutor(int(os.environ.get("SWEEP_JOBS", "2"))) as ex:
        results = list(ex.map(run_case, CASES))
    table = {}
    for parser, name, what, why in results:
        t = table.setdefault(parser, {"accepted": 0, "refused": 0, "fail": 0})
        t[what] += 1
        if what == "fail": print(f"FAIL [{parser}] {name}: {why}")
    print(f"{'parser':<16} {'cases':>6} {'accepted':>9} {'refused':>8} {'failed':>7}")
    for parser, t in table.items():
        print(f"{parser:<16} {sum(t.values()):>6} {t['accepted']:>9} {t['refused']:>8} {t['fail']:>7}")
    for parser, t in table.items():
        check(t["fail"] == 0, f"[{parser}] {sum(t.values())} hostile inputs: {t['fail']} crashed, hung or were refused badly")
    if os.environ.get("SWEEP_SHOW"):
        for parser, name, what, why in results: print(f"{parser}\t{name}\t{what}\t{why}")
    shutil.rmtree(TMP, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
