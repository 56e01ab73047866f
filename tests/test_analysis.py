#!/usr/bin/env python3
"""Tests of analysis/attnscope_summary.py: builds small HDF5 files that follow attnscope's schema
(h5py, in a temp dir), runs every subcommand with subprocess and checks that what it prints or
exports equals what the file holds: attributes, dataset shapes/dtypes, config sizes, tokens, the
source line, entropy tables (within the printed rounding), top-3 attended tokens against the
stored /attention, the CSV (exact float32 round trip, through pandas and through the csv module),
and one-line errors with exit 1 for missing datasets, files and indices. For the statistics schema
(/stats/<s>, /model/kv_group, /summary of `attnscope reduce`) it checks `summary` (top/bottom heads
with ties, sink rate, head pairs), `heads` (mean ± std, GQA group means), `export` (csv exact
float32 round trip both ways; parquet through pyarrow, and the error without it), `exemplars`,
`info`'s new sections, messages for absent parts, and plot_paper.py (the files it writes, and its
"pip install matplotlib" error without matplotlib). pandas, pyarrow and matplotlib are installed by
`make deps`; a missing one is a failure, not a skip, so that no check goes unrun on a fresh machine
(their absence is simulated where the fallback paths are tested).
Prints every comparison; exits non-zero on any failure; ends with "N passed, N failed".
KEEP_TMP=1 keeps the temp dir with the generated files."""
import csv, importlib.util, json, os, re, shutil, subprocess, sys, tempfile
import numpy as np, h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "analysis", "attnscope_summary.py")
PY = os.environ.get("PYTHON", sys.executable)
TMP = tempfile.mkdtemp(prefix="attnscope-analysis-")
DIGITS = 6




def tool(*args, no_pandas=False, hide=(), script=TOOL):
    """Runs the tool (or another script); no_pandas/hide make those modules unimportable, as if
    not installed, so the fallback paths run."""
    args = [str(a) for a in args]
    hide = list(hide) + (["pandas"] if no_pandas else [])
    if hide:
        cmd = [PY, "-c", f"import sys, runpy; sys.modules.update(dict.fromkeys({hide!r})); sys.argv = sys.argv[1:]; "
                         "runpy.run_path(sys.argv[0], run_name='__main__')", script] + args
    else:
        cmd = [PY, script] + args
    return subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8")


def installed(module):
    """True if module can be imported. `make deps` installs pandas, pyarrow and matplotlib, so a
    missing one is a FAIL line, not a skip: a check skipped on a fresh machine tests nothing."""
    return check(importlib.util.find_spec(module) is not None,
                 f"{module} is importable (installed by make deps; PYTHONPATH={os.environ.get('PYTHONPATH', '')})")


# ---- fixture: 3 text samples, 2 layers x 4 heads, Lmax 6 -------------------------------------
CORPUS = ["The cat saw a bird.", "", "咖啡 很 好", "A café in São Paulo!"]  # line 2 blank: skipped by run
SAMPLES = [  # (tokens, source_row)
    (["[CLS]", "the", "cat", "saw", "bird", "[SEP]"], 1),
    (["[CLS]", "咖", "啡", "很", "[SEP]"], 3),
    (["[CLS]", "café", "são", "[SEP]"], 4),
]
N, NL, NH, LMAX = len(SAMPLES), 2, 4, 6
CONFIG = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": NL, "num_attention_heads": NH,
          "intermediate_size": 64, "max_position_embeddings": 64, "vocab_size": 1000, "type_vocab_size": 2}
SHA = {"model.safetensors": "ab" * 32}


def make_file(path, attention_dtype="f4", with_attention=True, with_tokens=True, with_entropy=True,
              with_summary=True, padded=False):
    rng = np.random.default_rng(7)
    length = np.array([len(t) for t, _ in SAMPLES], np.int32)
    ids = np.zeros((N, LMAX), np.int32)
    tokens = np.zeros((N, LMAX), h5py.string_dtype("utf-8", 16))
    att = np.zeros((N, NL, NH, LMAX, LMAX), np.float32)
    ent = np.zeros((N, NL, NH), np.float32)
    for i, (toks, _) in enumerate(SAMPLES):
        n = len(toks)
        ids[i, :n] = rng.integers(100, 999, n)
        tokens[i, :n] = [t.encode("utf-8") for t in toks]
        x = np.exp(rng.normal(0, 2, (NL, NH, n, n)))
        p = (x / x.sum(-1, keepdims=True)).astype(np.float32)
        att[i, :, :, :n, :n] = p
        # any float32 values will do: the tool must print what is stored, not recompute it
        ent[i] = -(p.astype(np.float64) * np.log(p)).sum(-1).mean(-1)
    with h5py.File(path, "w") as f:
        for k, v in {"attnscope_version": "0.1.0", "git_commit": "deadbeef", "command_line": "attnscope run --job x.job",
                     "model_dir": "/models/tiny", "model_type": "bert", "config_json": json.dumps(CONFIG),
                     "weights_sha256": json.dumps(SHA), "tokenizer": "wordpiece",
                     "input": os.path.join(TMP, "corpus.txt"), "input_kind": "text", "dtype": "float32",
                     "backend": "cpu", "created": "2025-01-01T00:00:00Z"}.items():
            f.attrs.create(k, v, dtype=h5py.string_dtype("utf-8"))
        for k, v in {"n_ranks": 2, "n_samples": N, "n_layers": NL, "n_heads": NH, "max_len": 128, "n_truncated": 0}.items():
            f.attrs.create(k, v, dtype=np.int64)
        f["/samples/length"] = length
        f["/samples/length_untruncated"] = length
        f["/samples/source_row"] = np.array([r for _, r in SAMPLES], np.int64)
        f["/samples/input_ids"] = ids
        if with_tokens:
            f["/samples/tokens"] = tokens
        if with_entropy:
            f["/stats/entropy"] = ent
        if with_attention and padded:   # the layout of files written before /attention was packed
            f.create_dataset("/attention", data=att.astype(attention_dtype))
        elif with_attention:            # packed: each sample's [NL, NH, n, n] block at its offset
            blocks = [att[i, :, :, :n, :n].ravel() for i, n in enumerate(length)]
            f.create_dataset("/attention", data=np.concatenate(blocks).astype(attention_dtype))
            f["/attention"].attrs["n_layers"], f["/attention"].attrs["n_heads"] = np.int64(NL), np.int64(NH)
            f["/attention_offset"] = np.concatenate([[0], np.cumsum([b.size for b in blocks])[:-1]]).astype(np.int64)
        if with_summary:
            f["/summary/entropy_mean"] = ent.mean(0)
    return path


with open(os.path.join(TMP, "corpus.txt"), "w", encoding="utf-8") as fh:
    fh.write("\n".join(CORPUS) + "\n")
F = make_file(os.path.join(TMP, "full.h5"))
F16 = make_file(os.path.join(TMP, "f16.h5"), attention_dtype="f2", with_summary=False)
OLD = make_file(os.path.join(TMP, "padded.h5"), padded=True, with_summary=False)
NOATT = make_file(os.path.join(TMP, "noatt.h5"), with_attention=False, with_summary=False)
NOTOK = make_file(os.path.join(TMP, "notok.h5"), with_tokens=False)
NOENT = make_file(os.path.join(TMP, "noent.h5"), with_entropy=False)
h = h5py.File(F, "r")
ENT, ATT, LEN = h["/stats/entropy"][()], h5py.File(OLD, "r")["/attention"][()], h["/samples/length"][()]


def parse_table(lines, start, rows):
    """The `rows` numeric rows after the header line at index start."""
    return np.array([[float(x) for x in lines[start + 1 + r].split()[1:]] for r in range(rows)])


def tol():
    return 0.5 * 10.0 ** -DIGITS + 1e-12


# ---- info ---------------------------------------------------------------------------------------
p = tool("info", F, "--digits", DIGITS)
out = p.stdout
check(p.returncode == 0, f"info exits 0 (rc {p.returncode}) {p.stderr.strip()}")
for k in ("attnscope_version", "git_commit", "backend", "created", "input_kind"):
    v = h.attrs[k]
    check(re.search(rf"^\s+{k}\s+= {re.escape(v)}$", out, re.M) is not None, f"info shows attribute {k} = {v!r}")
for k in ("n_ranks", "n_samples", "n_layers", "n_heads", "max_len", "n_truncated"):
    v = int(h.attrs[k])
    check(re.search(rf"^\s+{k}\s+= {v}$", out, re.M) is not None, f"info shows int64 attribute {k} = {v}")
for name, shape in (("/samples/length", [N]), ("/samples/tokens", [N, LMAX]), ("/stats/entropy", [N, NL, NH]),
                    ("/attention", [int(NL * NH * (LEN.astype(np.int64) ** 2).sum())]), ("/attention_offset", [N]),
                    ("/summary/entropy_mean", [NL, NH])):
    s = "[" + ", ".join(map(str, shape)) + "]"
    m = re.search(rf"^\s+{re.escape(name)}\s+(\[[^\]]*\])\s+(.+)$", out, re.M)
    check(m is not None and m.group(1) == s, f"info lists {name} with shape {s} (got {m.group(1) if m else None})")
m = re.search(r"^\s+/stats/entropy\s+\S.*?\s(\S+)$", out, re.M)
check(m is not None and m.group(1) == "float32", f"info: /stats/entropy dtype float32 (got {m.group(1) if m else None})")
check(re.search(r"^\s+/samples/tokens\s+\[.*\]\s+string\[16\] utf-8$", out, re.M) is not None,
      "info: /samples/tokens shown as fixed-length UTF-8 string[16]")
for k, v in CONFIG.items():
    check(re.search(rf"^\s+{k}\s+= {v}$", out, re.M) is not None, f"info: config {k} = {v}")
check(f"model.safetensors: {SHA['model.safetensors']}" in out, "info: weights_sha256 digest printed")
i = out.splitlines().index(next(l for l in out.splitlines() if l.startswith("summary")))
got = parse_table(out.splitlines(), i + 1, NL)
e = float(np.abs(got - h["/summary/entropy_mean"][()]).max())
check(e <= tol(), f"info: /summary/entropy_mean table vs file: max abs err {e:.2g} (tol {tol():.2g}, printed rounding)")
p = tool("info", F16)
check(p.returncode == 0 and re.search(r"^\s+/attention\s+\[.*\]\s+float16$", p.stdout, re.M) is not None,
      "info: float16 /attention shown as float16")

# ---- sample -------------------------------------------------------------------------------------
for i, (toks, row) in enumerate(SAMPLES):
    p = tool("sample", F, i, "--digits", DIGITS)
    lines = p.stdout.splitlines()
    check(p.returncode == 0, f"sample {i} exits 0 (rc {p.returncode}) {p.stderr.strip()}")
    got_toks = next((l for l in lines if l.startswith("tokens: ")), "")[8:].split(" ")
    got_toks = [t.split(":", 1)[1] for t in got_toks if ":" in t]
    want = list(h["/samples/tokens"].asstr()[i, :LEN[i]])
    check(got_toks == want, f"sample {i}: tokens {got_toks} == file {want}")
    check(f"line:   {CORPUS[row - 1]}" in lines, f"sample {i}: source row {row} printed as {CORPUS[row - 1]!r}")
    check(f"length: {LEN[i]} tokens" in lines, f"sample {i}: length {LEN[i]}")
    k = next(n for n, l in enumerate(lines) if l.startswith("entropy (nats)"))
    e = float(np.abs(parse_table(lines, k + 1, NL) - ENT[i]).max())
    check(e <= tol(), f"sample {i}: entropy table vs /stats/entropy: max abs err {e:.2g} (tol {tol():.2g})")

for path, dt in ((F, "float32"), (F16, "float16"), (OLD, "float32, padded layout")):
    att = ATT.astype(np.float16 if path == F16 else np.float32).astype(np.float64)   # what make_file stored
    for i, l, hd in ((0, 1, 2), (1, 0, 3), (2, 1, 0)):
        p = tool("sample", path, i, "--layer", l, "--head", hd, "--digits", DIGITS)
        rows = [ln for ln in p.stdout.splitlines() if " -> " in ln]
        n = int(LEN[i])
        ok_idx, err = len(rows) == n, 0.0
        for q, ln in enumerate(rows):
            cells = re.findall(r"(\d+):(\S+) ([0-9.]+)", ln.split(" -> ", 1)[1])
            w = att[i, l, hd, q, :n]
            want = sorted(range(n), key=lambda j: -w[j])[:3]
            ok_idx &= [int(c[0]) for c in cells] == want
            ok_idx &= [c[1] for c in cells] == [SAMPLES[i][0][j] for j in want]
            err = max([err] + [abs(float(c[2]) - w[int(c[0])]) for c in cells])
        check(p.returncode == 0 and ok_idx, f"sample {i} layer {l} head {hd} ({dt}): top-3 indices/tokens "
                                            f"== argsort of stored /attention rows ({len(rows)} rows)")
        check(err <= tol(), f"sample {i} layer {l} head {hd} ({dt}): top-3 weights vs stored: max abs err {err:.2g} (tol {tol():.2g})")

p = tool("sample", NOTOK, 1)
want_ids = " ".join(f"{k}:{x}" for k, x in enumerate(h["/samples/input_ids"][1, :LEN[1]]))
check(p.returncode == 0 and want_ids in p.stdout, "sample without /samples/tokens prints the input ids instead")

# ---- csv ----------------------------------------------------------------------------------------
modes = [("pandas", False), ("csv module", True)] if installed("pandas") else [("csv module", False)]
for label, hide in modes:
    out_csv = os.path.join(TMP, f"out_{label.replace(' ', '_')}.csv")
    p = tool("csv", F, out_csv, no_pandas=hide)
    check(p.returncode == 0 and f"via {label}" in p.stdout, f"csv via {label} exits 0: {p.stdout.strip()} {p.stderr.strip()}")
    with open(out_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    check(rows[:1] == [["sample", "layer", "head", "entropy", "length"]], f"csv ({label}) header {rows[:1]}")
    body = rows[1:]
    check(len(body) == N * NL * NH, f"csv ({label}): {len(body)} rows == {N}x{NL}x{NH}")
    keys = {(int(r[0]), int(r[1]), int(r[2])) for r in body}
    check(len(keys) == N * NL * NH, f"csv ({label}): every (sample, layer, head) once")
    exact = all(np.float32(float(r[3])) == ENT[int(r[0]), int(r[1]), int(r[2])] and int(r[4]) == LEN[int(r[0])]
                for r in body)
    check(exact, f"csv ({label}): entropy reads back to the identical float32 and length matches, all rows")

# ---- errors: one line, exit 1 --------------------------------------------------------------------
for args, needle, what in (
        (("sample", NOATT, 0, "--layer", 0, "--head", 0), "/attention", "sample --layer/--head without /attention"),
        (("csv", NOENT, os.path.join(TMP, "x.csv")), "/stats/entropy", "csv without /stats/entropy"),
        (("sample", NOENT, 0), "/stats/entropy", "sample without /stats/entropy"),
        (("sample", F, N), "out of range", f"sample index {N} of {N}"),
        (("sample", F, 0, "--layer", NL, "--head", 0), "out of range", "sample --layer out of range"),
        (("sample", F, 0, "--layer", 0), "go together", "sample --layer without --head"),
        (("info", os.path.join(TMP, "missing.h5")), "no such file", "info on a missing file"),
        (("info", os.path.join(TMP, "corpus.txt")), "not a readable HDF5", "info on a text file")):
    p = tool(*args)
    err = p.stderr.strip()
    check(p.returncode == 1 and needle in err and len(err.splitlines()) == 1 and "Traceback" not in err,
          f"{what}: exit {p.returncode}, message: {err!r}")

# ---- the statistics schema: /stats/<s>, /model/kv_group, /summary of `attnscope reduce` ----------
# Summaries are filled with arbitrary known values (not the means of /stats): the tool must print
# what is stored, so recomputing anything would show up as a mismatch.
STATS = ("entropy", "entropy_norm", "distance", "locality", "attn_cls", "attn_sep", "attn_punct",
         "attn_self", "attn_prev", "attn_next", "sink_importance")
UNITS = {"entropy": "nats", "distance": "tokens", "entropy_norm": "fraction of ln(visible keys)"}
KV, TOPK, NBIN, KEX = 2, 3, 8, 4   # KEX > N: the last exemplar slot of every head is padding (-1)


def make_stats_file(path, similarity=True, sink=True, std=True):
    make_file(path, with_attention=False, with_summary=False)
    rng = np.random.default_rng(11)
    LH = NL * NH
    with h5py.File(path, "a") as f:
        st = f["/stats"]
        for k, v in (("window", 1), ("topk", TOPK), ("causal", 0)):
            st.attrs.create(k, v, dtype=np.int64)
        st.attrs.create("sink_eps", 0.3, dtype=np.float64)
        for s in STATS:
            if s != "entropy":
                st[s] = rng.random((N, NL, NH)).astype(np.float32) * (10 if s == "distance" else 1)
            st[s].attrs["units"] = UNITS.get(s, "probability mass")
            st[s].attrs["definition"] = f"definition of {s}"
        st["key_importance"] = rng.random((N, NL, NH, LMAX)).astype(np.float32)
        st["sink_rate"] = rng.random(N).astype(np.float32)
        st["topk_index"] = np.full((N, NL, NH, LMAX, TOPK), -1, np.int32)
        st["topk_weight"] = np.zeros((N, NL, NH, LMAX, TOPK), np.float32)
        f["/model/kv_group"] = np.repeat(np.arange(KV), NH // KV).astype(np.int32)
        sm = f.create_group("/summary")
        sm.attrs.create("n_samples", N, dtype=np.int64)
        for s in STATS:
            m = rng.permutation(LH).astype(np.float32).reshape(NL, NH) / 7 + 0.25
            if s == "attn_cls":
                m.flat[5] = m.flat[2] = m.max() + 1  # a tie: listed lower head index first
            sm[f"{s}_mean"] = m
            if std:
                sm[f"{s}_std"] = (rng.random((NL, NH)) / 10).astype(np.float32)
            sm[f"{s}_hist"] = rng.integers(0, 20, (NL, NH, NBIN)).astype(np.int64)
            sm[f"{s}_hist_edges"] = np.linspace(0, 1, NBIN + 1)
            sm[f"{s}_group_mean"] = rng.random((NL, KV)).astype(np.float32)
            ex = np.full((NL, NH, KEX), -1, np.int64)
            ex[:, :, :N] = np.argsort(-st[s][()], axis=0, kind="stable").transpose(1, 2, 0)
            sm[f"exemplars_{s}"] = ex
        if sink:
            sm["sink_rate_mean"] = np.float32(0.6180339)
        if similarity:
            a = rng.random((LH, LH))
            js = (a + a.T) / 2
            np.fill_diagonal(js, 0)
            sm["head_similarity_js_mean"] = js
            sm["head_similarity_js_sum"] = js * 40
            c = rng.random((LH, LH))
            sm["head_similarity_cos"] = (c + c.T) / 2
            sm["head_order_clustered"] = rng.permutation(LH).astype(np.int32)
    return path


S = make_stats_file(os.path.join(TMP, "stats.h5"))
SPART = make_stats_file(os.path.join(TMP, "stats_partial.h5"), similarity=False, sink=False, std=False)
hs = h5py.File(S, "r")
SM = {k: hs["/summary/" + k][()] for k in hs["/summary"]}
ST = {s: hs["/stats/" + s][()] for s in STATS}


def hname(a):
    return f"L{a // NH} H{a % NH}"


def sections(out):
    """summary output -> {heading line: [entry lines]}."""
    sec, cur = {}, None
    for ln in out.splitlines():
        if ln.startswith("  ") and cur is not None:
            sec[cur].append(ln.strip())
        else:
            cur = ln
            sec[cur] = []
    return sec


def entries(lines, s):
    """'L1 H2 s 0.123 ± 0.004' lines -> [(head index, mean, std or None)]."""
    got = []
    for ln in lines:
        m = re.fullmatch(rf"L(\d+) H(\d+) {s} (-?[0-9.]+)(?: ± ([0-9.]+))?", ln)
        got.append((int(m[1]) * NH + int(m[2]), float(m[3]), m[4] and float(m[4])) if m else (None, None, None))
    return got


# ---- summary ------------------------------------------------------------------------------------
p = tool("summary", S, "--digits", DIGITS)
check(p.returncode == 0, f"summary exits 0 (rc {p.returncode}) {p.stderr.strip()}")
sec = sections(p.stdout)
for s in STATS:
    m, sd = SM[f"{s}_mean"].ravel(), SM[f"{s}_std"].ravel()
    for label, key in (("top", lambda a: (-float(m[a]), a)), ("bottom", lambda a: (float(m[a]), a))):
        want = sorted(range(NL * NH), key=key)[:5]
        head = next((k for k in sec if k.startswith(f"{s} (") and f": {label} 5 heads by /summary/{s}_mean" in k), None)
        got = entries(sec.get(head, []), s)
        err = max([abs(g[1] - m[a]) + abs(g[2] - sd[a]) if g[0] is not None else 1 for g, a in zip(got, want)] + [0])
        check(head is not None and [g[0] for g in got] == want and err <= 2 * tol(),
              f"summary {s} {label} 5: heads {[hname(a) for a in want]} (ties to lower index), "
              f"mean ± std vs file max abs err {err:.2g}")
sr = re.search(r"^sink rate \(/summary/sink_rate_mean\): ([0-9.]+)$", p.stdout, re.M)
check(sr is not None and abs(float(sr[1]) - SM["sink_rate_mean"]) <= tol(),
      f"summary: sink rate {sr and sr[1]} == /summary/sink_rate_mean {SM['sink_rate_mean']}")
js, cos = SM["head_similarity_js_mean"], SM["head_similarity_cos"]
pairs = [(a, b) for a in range(NL * NH) for b in range(a + 1, NL * NH)]
for label, sign in (("most similar", 1), ("most different", -1)):
    want = sorted(pairs, key=lambda ab: (sign * js[ab], ab))[:5]
    head = next((k for k in sec if label in k and "head_similarity_js_mean" in k), None)
    got = [re.fullmatch(r"L(\d+) H(\d+) ~ L(\d+) H(\d+) JS ([0-9.]+) cos ([0-9.]+)", ln) for ln in sec.get(head, [])]
    ok = len(got) == 5 and all(g is not None for g in got)
    ok = ok and [(int(g[1]) * NH + int(g[2]), int(g[3]) * NH + int(g[4])) for g in got] == want
    err = max([abs(float(g[5]) - js[ab]) + abs(float(g[6]) - cos[ab]) for g, ab in zip(got, want)] if ok else [1])
    check(ok and err <= 2 * tol(), f"summary: 5 {label} head pairs {[hname(a) + '~' + hname(b) for a, b in want]}, "
                                   f"JS and cos vs file max abs err {err:.2g}")
p = tool("summary", S, "--stat", "attn_prev", "--top", 2)
sec = sections(p.stdout)
heads_ = [k for k in sec if "heads by /summary/" in k]
check(p.returncode == 0 and len(heads_) == 2 and all("attn_prev" in k for k in heads_)
      and all(len(sec[k]) == 2 for k in heads_) and "sink rate" not in p.stdout,
      f"summary --stat attn_prev --top 2: only attn_prev, 2 heads each ({len(heads_)} sections)")
p = tool("summary", SPART)
check(p.returncode == 0 and "no /summary/entropy_std" in p.stdout and re.search(r"^  L\d+ H\d+ entropy [0-9.]+$", p.stdout, re.M)
      and "no /summary/sink_rate_mean" in p.stdout and "no /summary/head_similarity_js_mean" in p.stdout,
      "summary without std, sink rate, similarity: exits 0, means without ±, says what is missing")
p = tool("summary", F)
check(p.returncode == 0 and "not in the file: /summary/entropy_norm_mean" in p.stdout,
      "summary of an older file (only /summary/entropy_mean): exits 0 and lists the missing means")

# ---- heads --------------------------------------------------------------------------------------
for s in ("distance", "attn_prev"):
    p = tool("heads", S, "--stat", s, "--digits", DIGITS)
    lines = p.stdout.splitlines()
    k = next((n for n, l in enumerate(lines) if l.strip().startswith("layer")), None)
    rows = [re.findall(r"(-?[0-9.]+) ± ([0-9.]+)", lines[k + 1 + l]) for l in range(NL)] if k is not None else []
    got = np.array([[[float(x) for x in c] for c in r] for r in rows]) if rows else np.zeros(0)
    ok = got.shape == (NL, NH, 2)
    err = float(np.abs(got[..., 0] - SM[f"{s}_mean"]).max() + np.abs(got[..., 1] - SM[f"{s}_std"]).max()) if ok else 1.0
    check(p.returncode == 0 and ok and err <= 2 * tol(), f"heads --stat {s}: {NL}x{NH} mean ± std table vs file, max abs err {err:.2g}")
    check(f"{s} ({hs['/stats/' + s].attrs['units']})" in p.stdout and f"definition of {s}" in p.stdout,
          f"heads --stat {s}: units and definition from the /stats/{s} attributes")
    k = next((n for n, l in enumerate(lines) if l.startswith("key/value groups")), None)
    gm = parse_table(lines, k + 1, NL) if k is not None else np.zeros(0)
    check(k is not None and "g0: h0 h1, g1: h2 h3" in lines[k] and gm.shape == (NL, KV)
          and np.abs(gm - SM[f"{s}_group_mean"]).max() <= tol(), f"heads --stat {s}: GQA group means and /model/kv_group")

# ---- export ---------------------------------------------------------------------------------------
for label, hide in modes:
    out_csv = os.path.join(TMP, f"export_{label.replace(' ', '_')}.csv")
    p = tool("export", S, out_csv, no_pandas=hide)
    check(p.returncode == 0 and f"via {label}" in p.stdout, f"export csv via {label}: {p.stdout.strip()} {p.stderr.strip()}")
    with open(out_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    check(rows[:1] == [["sample", "layer", "head"] + list(STATS)], f"export csv ({label}) header {rows[:1]}")
    keys = [(int(r[0]), int(r[1]), int(r[2])) for r in rows[1:]]
    check(keys == [(i, l, hd) for i in range(N) for l in range(NL) for hd in range(NH)],
          f"export csv ({label}): {len(keys)} rows, ordered sample, layer, head")
    bad = sum(np.float32(float(r[3 + c])) != ST[s][int(r[0]), int(r[1]), int(r[2])]
              for r in rows[1:] for c, s in enumerate(STATS))
    check(bad == 0, f"export csv ({label}): every one of {len(STATS)} stats reads back to the identical float32 ({bad} differ)")
p = tool("export", F, os.path.join(TMP, "old.csv"))
with open(os.path.join(TMP, "old.csv"), newline="", encoding="utf-8") as fh:
    hdr = next(csv.reader(fh))
check(p.returncode == 0 and hdr == ["sample", "layer", "head", "entropy"] and "not in the file: entropy_norm" in p.stdout,
      f"export of an older file: only the stats present ({hdr}), the rest named")
out_pq = os.path.join(TMP, "export.parquet")
if installed("pyarrow"):
    import pyarrow.parquet as pq
    p = tool("export", S, out_pq)
    t = pq.read_table(out_pq).to_pydict() if p.returncode == 0 else {}
    ok = p.returncode == 0 and list(t) == ["sample", "layer", "head"] + list(STATS)
    ok = ok and all(np.array_equal(np.asarray(t[s], np.float32), ST[s].reshape(-1)) for s in STATS)
    check(ok, f"export parquet: columns and float32 values identical to /stats ({p.stderr.strip()})")
p = tool("export", S, out_pq, hide=("pyarrow",))
check(p.returncode == 1 and "pip install pyarrow" in p.stderr and len(p.stderr.strip().splitlines()) == 1,
      f"export parquet without pyarrow: exit {p.returncode}, {p.stderr.strip()!r}")

# ---- exemplars ----------------------------------------------------------------------------------
for s, l, hd in (("attn_prev", 0, 2), ("distance", 1, 3), ("entropy", 1, 0)):
    p = tool("exemplars", S, "--stat", s, "--layer", l, "--head", hd, "--digits", DIGITS)
    got = re.findall(r"^  (\d+)\. sample (\d+) " + s + r" ([0-9.]+): (.*)$", p.stdout, re.M)
    want = [int(i) for i in SM[f"exemplars_{s}"][l, hd] if i >= 0]
    ok = p.returncode == 0 and [int(g[1]) for g in got] == want
    ok = ok and all(g[3] == " ".join(SAMPLES[int(g[1])][0]) for g in got)
    err = max([abs(float(g[2]) - ST[s][int(g[1]), l, hd]) for g in got] or [1])
    check(ok and err <= tol(), f"exemplars {s} L{l} H{hd}: samples {want}, joined tokens, values vs /stats/{s} max abs err {err:.2g}")
    check(f"{KEX}. (no sample: index -1)" in p.stdout, f"exemplars {s} L{l} H{hd}: padding entry -1 shown as no sample")

# ---- info on the new schema -----------------------------------------------------------------------
p = tool("info", S)
check(p.returncode == 0 and re.search(r"^  /stats  \(\d+ datasets; causal = 0, sink_eps = 0.3, topk = 3, window = 1\)$", p.stdout, re.M)
      and re.search(rf"^  /summary  \(\d+ datasets; n_samples = {N}\)$", p.stdout, re.M) and "  /model  (1 datasets" in p.stdout,
      "info: groups /stats, /summary, /model with their attributes")
check(all(re.search(rf"^  {s}\s+{re.escape(hs['/stats/' + s].attrs['units'])}; definition of {s}$", p.stdout, re.M) for s in STATS),
      "info: every statistic with its units and definition")
check(re.search(r"^  attn_prev: mean std hist group_mean exemplars$", p.stdout, re.M) is not None
      and "head_similarity_js_mean" in p.stdout and "/summary/head_order_clustered" in p.stdout,
      "info: what /summary holds per statistic and at dataset level")

# ---- errors on missing parts -----------------------------------------------------------------------
for args, needle, what in (
        (("summary", NOATT), "no /summary group", "summary without /summary"),
        (("summary", F, "--stat", "bogus"), "unknown statistic", "summary --stat bogus"),
        (("summary", F, "--stat", "locality"), "/summary/locality_mean", "summary --stat of a missing mean"),
        (("heads", F, "--stat", "locality"), "/summary/locality_mean", "heads on an older file"),
        (("exemplars", F, "--stat", "entropy", "--layer", 0, "--head", 0), "/summary/exemplars_entropy", "exemplars on an older file"),
        (("exemplars", S, "--stat", "entropy", "--layer", 0, "--head", NH), "out of range", "exemplars --head out of range"),
        (("export", S, os.path.join(TMP, "x.txt")), ".csv or .parquet", "export to a .txt name"),
        (("export", os.path.join(TMP, "missing.h5"), os.path.join(TMP, "x.csv")), "no such file", "export of a missing file")):
    p = tool(*args)
    err = p.stderr.strip()
    check(p.returncode == 1 and needle in err and len(err.splitlines()) == 1 and "Traceback" not in err,
          f"{what}: exit {p.returncode}, message: {err!r}")

# ---- plot_paper -----------------------------------------------------------------------------------
PLOT = os.path.join(ROOT, "analysis", "plot_paper.py")
p = tool(S, os.path.join(TMP, "figs_nompl"), script=PLOT, hide=("matplotlib",))
check(p.returncode == 1 and "pip install matplotlib" in p.stderr and "Traceback" not in p.stderr,
      f"plot_paper without matplotlib: exit {p.returncode}, {p.stderr.strip()!r}")
if installed("matplotlib"):
    out_dir = os.path.join(TMP, "figs")
    p = tool(S, out_dir, "--hist-stat", "attn_prev", "--layer", 1, "--head", 2, script=PLOT)
    stems = [f"heatmap_{s}" for s in STATS] + ["distance_by_layer", "head_similarity_js", "hist_attn_prev_l1_h2"]
    magic = {".pdf": b"%PDF", ".png": b"\x89PNG"}
    missing = [st + e for st in stems for e in magic
               if not os.path.isfile(os.path.join(out_dir, st + e))
               or open(os.path.join(out_dir, st + e), "rb").read(4) != magic[e]]
    check(p.returncode == 0 and not missing, f"plot_paper: {2 * len(stems)} PDF/PNG files written "
                                             f"(missing or bad: {missing}) {p.stderr.strip()}")
    p = tool(F, os.path.join(TMP, "figs_old"), script=PLOT)
    check(p.returncode == 0 and os.path.isfile(os.path.join(TMP, "figs_old", "heatmap_entropy.png"))
          and "skipped head_similarity_js" in p.stdout and "skipped hist_entropy" in p.stdout,
          "plot_paper on an older file: the entropy heatmap, and notes for the figures it cannot make")
    p = tool(NOATT, os.path.join(TMP, "figs_none"), script=PLOT)
    check(p.returncode == 1 and "no /summary group" in p.stderr, f"plot_paper without /summary: exit 1, {p.stderr.strip()!r}")
hs.close()

h.close()
if os.environ.get("KEEP_TMP"):
    print(f"kept {TMP}")
else:
    shutil.rmtree(TMP, ignore_errors=True)
sys.exit(summary())
