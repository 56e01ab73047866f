#!/usr/bin/env python3
"""End-to-end vision runs through the binary (issue 12): ViT, DeiT and CLIP's vision tower from
--input FILE.h5 with /pixel_values, against Hugging Face's attentions (make_vision_fixtures.py) and
the vision statistics recomputed here in numpy from HF's attentions by the published definitions:
probing-vits' mean attention distance in pixels, vit-explain's rollout (rows renormalised), the
2-D locality and the [CLS] row of vstats.h. Also a 48 x 40 input (positions resampled), rollout
options, and refusals (a vision model given text, wrong channels, non-finite pixels). Prints every
comparison; exits non-zero on any failure."""
import json, os, shutil, subprocess, sys, tempfile
import numpy as np, h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary
import att_read

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "attnscope")
FX = os.path.join(ROOT, "tests/fixtures/hf")
TMP = tempfile.mkdtemp(prefix="attnscope-vision-")
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def run(*args):
    return subprocess.run([BIN, "run", *map(str, args)], capture_output=True, text=True, env=ENV, cwd=ROOT)


def grid_dist(gh, gw, patch):
    q = np.arange(gh * gw)
    y, x = q // gw, q % gw
    return patch * np.sqrt((y[:, None] - y[None]) ** 2 + (x[:, None] - x[None]) ** 2), y, x


def reference(att, npre, gh, gw, patch, fusion="mean", discard=0.0):
    """att [N, L, H, T, T] -> distance [N, L, H], locality [N, L, H], cls [N, L, H, np], rollout [N, T, T]"""
    d, y, x = grid_dist(gh, gw, patch)
    near = (np.abs(y[:, None] - y[None]) <= 1) & (np.abs(x[:, None] - x[None]) <= 1)
    a = att[..., npre:, npre:].astype(np.float64)
    dist = (a * d).sum(-1).mean(-1)
    loc = (a * near).sum(-1).mean(-1)
    cls = att[..., 0, npre:]
    N, L, H, T, _ = att.shape
    roll = np.zeros((N, T, T))
    for n in range(N):
        r = np.eye(T)
        for l in range(L):
            m = att[n, l].astype(np.float64)
            f = {"mean": m.mean(0), "max": m.max(0), "min": m.min(0)}[fusion]
            flat = f.reshape(-1).copy()
            k = int(flat.size * discard)
            if k:
                idx = np.argsort(flat, kind="stable")[:k]
                flat[idx[idx != 0]] = 0
            f = flat.reshape(T, T)
            a2 = (f + np.eye(T)) / 2
            a2 = a2 / a2.sum(-1, keepdims=True)
            r = a2 @ r
        roll[n] = r
    return dist, loc, cls, roll


def case(name, model, inp, expected, npre, patch, fusion="mean", discard=0.0, start=0, factor=2.0):
    out = f"{TMP}/{name}.h5"
    extra = ["--rollout-fusion", fusion, "--rollout-discard", discard, "--rollout-start", start, "--high-norm-factor", factor]
    p = run("--model", f"{FX}/{model}", "--input", f"{FX}/{inp}", "--out", out, "--save-attention", "--quiet", *extra)
    if not check(p.returncode == 0, f"{name}: attnscope run exit {p.returncode} {p.stderr.strip()[-300:]}"):
        return
    ref = h5py.File(f"{FX}/{expected}")["attentions"][:]
    with h5py.File(out) as f:
        gh, gw = int(f["vision"].attrs["grid_h"]), int(f["vision"].attrs["grid_w"])
        e = float(np.abs(att_read.padded(f) - ref).max())
        check(e <= 1e-5, f"{name}: /attention of every layer and head vs HF: max abs {e:.3g} (tol 1e-5)")
        dist, loc, cls, roll = reference(ref[:, start:] if start else ref, npre, gh, gw, patch, fusion, discard)
        if start:
            dist, loc, cls, _ = reference(ref, npre, gh, gw, patch, fusion, discard)
        hn = h5py.File(f"{FX}/{expected}")["hidden_state_norms"][:]
        tn = f["vision/token_norm"][:]
        e = float(np.abs(tn - hn).max() / np.abs(hn).max()) if tn.shape == hn.shape else float("inf")
        check(e <= 1e-5, f"{name}: /vision/token_norm {tn.shape} vs the norms of HF's hidden_states: max rel {e:.3g} (tol 1e-5)")
        # high-norm patches: the last layer's patch norms above factor x the image's median
        last = hn[:, -1, npre:]
        want_high = (last > factor * np.median(last, axis=1, keepdims=True)).sum(1)
        check(np.array_equal(f["vision/high_norm_patches"][:], want_high),
              f"{name}: /vision/high_norm_patches {f['vision/high_norm_patches'][:].tolist()} (from HF's norms: {want_high.tolist()})")
        for ds, want, tol, unit in (("distance_px", dist, 1e-3, "px"), ("locality2d", loc, 1e-5, ""),
                                    ("cls_attention", cls, 1e-5, ""), ("rollout", roll, 1e-5, "")):
            got = f["vision/" + ds][:]
            err = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
            check(err <= tol, f"{name}: /vision/{ds} {got.shape} vs the definition on HF's attention: max abs {err:.3g}{unit} (tol {tol})")


case("vit", "vit_tiny", "input_vision.h5", "expected_vit_tiny.h5", 1, 8)
case("vit_48x40", "vit_tiny", "input_vision_48x40.h5", "expected_vit_tiny_48x40.h5", 1, 8)
case("deit", "deit_tiny", "input_vision.h5", "expected_deit_tiny.h5", 2, 8)
case("clip_vision", "clip_vision_tiny", "input_vision.h5", "expected_clip_vision_tiny.h5", 1, 8)
case("vit_max_discard", "vit_tiny", "input_vision.h5", "expected_vit_tiny.h5", 1, 8, "max", 0.3)
case("vit_start1", "vit_tiny", "input_vision.h5", "expected_vit_tiny.h5", 1, 8, "min", 0.0, 1, 1.1)

# --images: PNG/JPEG files preprocessed by us (imgproc.c) give the same attention as the pixel_values
# of HF's slow ViTImageProcessor on the same files (tests/fixtures/images/expected.h5, made by
# make_image_fixtures.py): vit_tiny with the 32 x 32 processor, over every fixture PNG and JPEG
IMG = os.path.join(ROOT, "tests/fixtures/images")
mdir = f"{TMP}/vit_tiny_pp"
shutil.copytree(f"{FX}/vit_tiny", mdir)
shutil.copy(f"{IMG}/pp/vit_32/preprocessor_config.json", mdir)
with h5py.File(f"{IMG}/expected.h5") as e:
    files = [f.decode() for f in e["pp/vit_32/files"][()]]
    hf_px = e["pp/vit_32/pixel_values"][()]
listfile = f"{TMP}/images.txt"
with open(listfile, "w") as f:
    f.write("".join(os.path.join(IMG, p if "/" in p else ("jpeg/" if p.endswith(".jpg") else "png/") + p) + "\n" for p in files))
with h5py.File(f"{TMP}/hf_px.h5", "w") as f:
    f["pixel_values"] = hf_px
p1 = run("--model", mdir, "--images", listfile, "--out", f"{TMP}/img.h5", "--save-attention", "--quiet")
p2 = run("--model", mdir, "--input", f"{TMP}/hf_px.h5", "--out", f"{TMP}/hfpx.h5", "--save-attention", "--quiet")
if check(p1.returncode == 0 and p2.returncode == 0, f"--images over {len(files)} files and --input of HF's pixel_values: exit {p1.returncode}, {p2.returncode} {p1.stderr.strip()[-300:]}"):
    with h5py.File(f"{TMP}/img.h5") as a, h5py.File(f"{TMP}/hfpx.h5") as b:
        e = float(np.abs(att_read.padded(a) - att_read.padded(b)).max())
        check(e <= 1e-6, f"--images vs HF's processor: attention of every layer and head, max abs {e:.3g} (tol 1e-6; the pixels are equal)")
        paths = [x.decode() for x in a["images/path"][()]]
        sizes = a["images/orig_size"][()]
        with open(listfile) as f:
            listed = f.read().split()
        check(paths == listed and sizes.shape == (len(files), 2) and int(sizes.min()) >= 1,
              f"/images/path as listed ({len(paths)}), /images/orig_size {sizes.shape}, processor {a['images'].attrs.get('processor')}")

# CLIP's text tower (causal) through the binary on the decoders' padded batch
p = run("--model", f"{FX}/clip_text_tiny", "--input", f"{FX}/input_decoder.h5", "--out", f"{TMP}/clip_text.h5",
        "--save-attention", "--quiet")
if check(p.returncode == 0, f"clip_text_tiny: exit {p.returncode} {p.stderr.strip()[-200:]}"):
    with h5py.File(f"{TMP}/clip_text.h5") as f, h5py.File(f"{FX}/expected_clip_text_tiny.h5") as e:
        a, ref, n = att_read.padded(f), e["attentions"][:], e["length"][:]
        err = max(float(np.abs(a[i, :, :, :k, :k] - ref[i, :, :, :k, :k]).max()) for i, k in enumerate(n))
        check(err <= 1e-5 and int(f["stats"].attrs["causal"]) == 1,
              f"clip_text_tiny: /attention vs HF on valid rows max abs {err:.3g} (tol 1e-5), causal {int(f['stats'].attrs['causal'])}")

# CLIP's text tower from text: CLIP's tokenizer (tests/fixtures/bpe/clip) in the model directory;
# HF's ids (CLIPTokenizer, truncation to 77 with <|endoftext|> kept) and eager attentions
p = run("--model", f"{FX}/clip_text_tok", "--text", f"{FX}/clip_sentences.txt", "--out", f"{TMP}/clip_text_tok.h5",
        "--save-attention")
if check(p.returncode == 0, f"clip_text_tok --text: exit {p.returncode} {p.stderr.strip()[-200:]}"):
    with h5py.File(f"{TMP}/clip_text_tok.h5") as f, h5py.File(f"{FX}/expected_clip_text_tok.h5") as e:
        a, ref, n, want = att_read.padded(f), e["attentions"][:], e["length"][:], e["input_ids"][:]
        got, glen = f["samples/input_ids"][:], f["samples/length"][:]
        same = list(glen) == list(n) and all(list(got[i, :k]) == list(want[i, :k]) for i, k in enumerate(n))
        check(same, f"clip_text_tok: ids of {len(n)} sentences (lengths {n.tolist()}) equal CLIPTokenizer's: {same}")
        err = max(float(np.abs(a[i, :, :, :k, :k] - ref[i, :, :, :k, :k]).max()) for i, k in enumerate(n))
        check(err <= 1e-5, f"clip_text_tok: /attention vs HF on valid rows max abs {err:.3g} (tol 1e-5)")
        check("2 of 9 samples truncated to --max-len 77" in p.stdout,
              "clip_text_tok: the two lines past 77 tokens truncated as CLIPTokenizer(truncation=True) and said so")

# /pixel_values read by pread (contiguous float32, h5py's default; the prefetch thread may read it)
# or through HDF5 (chunked + deflate, big-endian float64): the same attention
with h5py.File(f"{FX}/input_vision.h5") as f:
    pv = f["pixel_values"][:]
with h5py.File(f"{TMP}/px_chunked.h5", "w") as f:
    f.create_dataset("pixel_values", data=pv, chunks=(1, 3, 32, 32), compression="gzip")
with h5py.File(f"{TMP}/px_f64be.h5", "w") as f:
    f.create_dataset("pixel_values", data=pv.astype(">f8"))
outs = {}
for name, extra in (("contiguous", []), ("contiguous_prefetch", ["PREFETCH"]), ("chunked", []), ("f64be", [])):
    src = f"{FX}/input_vision.h5" if name.startswith("contiguous") else f"{TMP}/px_{name}.h5"
    env = dict(ENV, ATTNSCOPE_PREFETCH="1" if extra else "0")
    p = subprocess.run([BIN, "run", "--model", f"{FX}/vit_tiny", "--input", src, "--out", f"{TMP}/layout_{name}.h5",
                        "--batch", "1", "--save-attention", "--quiet"], capture_output=True, text=True, env=env, cwd=ROOT)
    if check(p.returncode == 0, f"/pixel_values {name}: exit {p.returncode} {p.stderr.strip()[-200:]}"):
        with h5py.File(f"{TMP}/layout_{name}.h5") as f:
            outs[name] = att_read.padded(f)
if len(outs) == 4:
    same = all(np.array_equal(outs["contiguous"], outs[k]) for k in outs)
    check(same, f"/pixel_values contiguous (pread, with and without the prefetch thread), chunked + gzip and big-endian float64 (HDF5): attention identical {same}")

# uint8 /pixel_values: the processor's image after resize and crop, before rescale and normalize,
# which attnscope applies from the model's preprocessor_config.json (on the device, as a table).
# Against the same pixels made float by HF's formula in NumPy (float32(float64(u8) * rescale_factor),
# then (x - float32(mean)) / float32(std) in float32): every output equal, bit for bit, read by pread
# (with and without the prefetch thread) and through HDF5 (chunked + gzip)
ppc = json.load(open(f"{mdir}/preprocessor_config.json"))
u8 = np.random.default_rng(5).integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)
x = (u8.astype(np.float64) * ppc.get("rescale_factor", 1 / 255)).astype(np.float32)
x = ((x - np.asarray(ppc["image_mean"], np.float32)[None, :, None, None]) / np.asarray(ppc["image_std"], np.float32)[None, :, None, None]).astype(np.float32)
with h5py.File(f"{TMP}/u8.h5", "w") as f:
    f["pixel_values"] = u8
with h5py.File(f"{TMP}/u8_chunked.h5", "w") as f:
    f.create_dataset("pixel_values", data=u8, chunks=(1, 3, 32, 32), compression="gzip")
with h5py.File(f"{TMP}/u8_float.h5", "w") as f:
    f["pixel_values"] = x
runs = {}
for name, src, pf in (("float32", "u8_float", "0"), ("uint8", "u8", "0"), ("uint8 prefetch", "u8", "1"), ("uint8 chunked", "u8_chunked", "0")):
    out = f"{TMP}/u8_{name.replace(' ', '_')}.h5"
    p = subprocess.run([BIN, "run", "--model", mdir, "--input", f"{TMP}/{src}.h5", "--out", out, "--batch", "4",
                        "--save-attention", "--quiet"], capture_output=True, text=True, env=dict(ENV, ATTNSCOPE_PREFETCH=pf), cwd=ROOT)
    if check(p.returncode == 0, f"/pixel_values {name}: exit {p.returncode} {p.stderr.strip()[-200:]}"):
        runs[name] = out
if len(runs) == 4:
    for name in ("uint8", "uint8 prefetch", "uint8 chunked"):
        with h5py.File(runs["float32"]) as a, h5py.File(runs[name]) as b:
            keys = [k for g in ("stats", "vision") for k in (f"{g}/{n}" for n in a[g]) if isinstance(a[k], h5py.Dataset)]
            diff = [k for k in keys if not np.array_equal(a[k][()], b[k][()], equal_nan=True)]
            same_att = np.array_equal(att_read.padded(a), att_read.padded(b))
            check(not diff and same_att and len(keys) > 10,
                  f"/pixel_values {name} vs the float32 pixels of HF's rescale and normalize: /attention equal {same_att}, "
                  f"{len(keys) - len(diff)} of {len(keys)} /stats and /vision datasets equal bit for bit {diff[:3]}")
for what, model, arr in (("uint8 without preprocessor_config.json", f"{FX}/vit_tiny", u8),
                         ("int16", mdir, u8.astype(np.int16))):
    path = f"{TMP}/bad_{what.split()[0]}.h5"
    with h5py.File(path, "w") as f:
        f["pixel_values"] = arr
    out = f"{TMP}/bad_{what.split()[0]}_out.h5"
    p = run("--model", model, "--input", path, "--out", out, "--quiet")
    lines = [l for l in p.stderr.splitlines() if l.startswith("attnscope:")]
    want = "preprocessor_config.json" if what.startswith("uint8") else "is neither floating point"
    check(p.returncode != 0 and len(lines) == 1 and path in lines[0] and want in lines[0] and not os.path.exists(out),
          f"/pixel_values {what}: exit {p.returncode}, {lines}")

# a whole CLIPModel (both towers in one checkpoint, the hub's layout): its text tower from text, its
# vision tower from pixel_values (every /vision output against the definitions) and from PNG files
p = run("--model", f"{FX}/clip_full_tiny", "--text", f"{FX}/clip_sentences.txt", "--out", f"{TMP}/clip_full_text.h5",
        "--save-attention", "--quiet")
if check(p.returncode == 0, f"clip_full_tiny --text: exit {p.returncode} {p.stderr.strip()[-200:]}"):
    with h5py.File(f"{TMP}/clip_full_text.h5") as f, h5py.File(f"{FX}/expected_clip_full_text.h5") as e:
        a, ref, n, want = att_read.padded(f), e["attentions"][:], e["length"][:], e["input_ids"][:]
        got, glen = f["samples/input_ids"][:], f["samples/length"][:]
        same = list(glen) == list(n) and all(list(got[i, :k]) == list(want[i, :k]) for i, k in enumerate(n))
        err = max(float(np.abs(a[i, :, :, :k, :k] - ref[i, :, :, :k, :k]).max()) for i, k in enumerate(n)) if same else float("inf")
        check(same and err <= 1e-5, f"clip_full_tiny text tower (CLIPModel.text_model): ids equal CLIPTokenizer's {same}, "
              f"/attention vs HF on valid rows max abs {err:.3g} (tol 1e-5), model {f['model'].attrs.get('family', '?')}")
case("clip_full_vision", "clip_full_tiny", "input_vision.h5", "expected_clip_full_vision.h5", 1, 8)
p = run("--model", f"{FX}/clip_full_tiny", "--images", f"{ROOT}/jobs/digits", "--out", f"{TMP}/clip_full_png.h5", "--quiet")
ok = p.returncode == 0
if ok:
    with h5py.File(f"{TMP}/clip_full_png.h5") as f:
        ok = f["vision/rollout"].shape[1:] == (17, 17) and f["images/path"].shape[0] == len(os.listdir(f"{ROOT}/jobs/digits"))
check(ok, f"clip_full_tiny --images jobs/digits (the vision tower, CLIPImageProcessor 32 x 32): exit {p.returncode}, rollout (N, 17, 17) {ok}")

# the demo's ViT (trained on digits) over its PNGs on 2 MPI ranks == 1 rank; the reducer's vision figures
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
demo = ["run", "--model", "jobs/models/vit-digits", "--images", "jobs/digits", "--quiet"]
p1 = subprocess.run([BIN, *demo, "--out", f"{TMP}/d1.h5"], capture_output=True, text=True, env=ENV, cwd=ROOT)
p2 = subprocess.run(MPIRUN + ["-n", "2", "-x", "OMP_NUM_THREADS=1", BIN, *demo, "--out", f"{TMP}/d2.h5"],
                    capture_output=True, text=True, env=ENV, cwd=ROOT)
if check(p1.returncode == 0 and p2.returncode == 0, f"vit-digits over jobs/digits on 1 and 2 ranks: exit {p1.returncode}, {p2.returncode} {p2.stderr.strip()[-300:]}"):
    with h5py.File(f"{TMP}/d1.h5") as a, h5py.File(f"{TMP}/d2.h5") as b:
        # batches of 32 on one rank, 16 on each of two: the GEMMs sum in other orders (float32)
        rel = max(float(np.abs(a[n][:] - b[n][:]).max() / max(1.0, np.abs(a[n][:]).max()))
                  for n in ("vision/distance_px", "vision/rollout", "vision/cls_attention", "stats/entropy"))
        same = [x for x in a["images/path"][()]] == [x for x in b["images/path"][()]]
        check(rel <= 1e-5 and same, f"2 ranks == 1 rank: /vision and /stats max diff {rel:.3g} relative to each dataset's largest value (tol 1e-5: 4 layers of float32 GEMMs), /images/path equal {same}")
    r = subprocess.run([BIN, "reduce", f"{TMP}/d1.h5", "--figures", f"{TMP}/fig"], capture_output=True, text=True, env=ENV, cwd=ROOT)
    want = ["vision_distance_by_layer.png", "vision_cls_layers_0.png", "vision_cls_heads_0.png", "vision_cls_layers_3.png",
            "vision_norms_0.png"]
    have = [w for w in want if os.path.getsize(f"{TMP}/fig/{w}") > 1000] if r.returncode == 0 and all(os.path.exists(f"{TMP}/fig/{w}") for w in want) else []
    index = open(f"{TMP}/fig/index.html").read() if r.returncode == 0 else ""
    check(r.returncode == 0 and have == want and all(w in index for w in want),
          f"reduce: the vision figures {have} drawn and in index.html (exit {r.returncode} {r.stderr.strip()[-200:]})")

# refusals: one line naming the file or option, nothing at the final path
px = h5py.File(f"{FX}/input_vision.h5")["pixel_values"][:]
bad = {"channels": px[:, :2], "nonfinite": np.where(np.arange(px.size).reshape(px.shape) == 100, np.nan, px).astype(np.float32),
       "tiny": px[:, :, :4, :4]}
for what, arr in bad.items():
    path = f"{TMP}/bad_{what}.h5"
    with h5py.File(path, "w") as f:
        f["pixel_values"] = arr
    out = f"{TMP}/bad_{what}_out.h5"
    p = run("--model", f"{FX}/vit_tiny", "--input", path, "--out", out, "--quiet")
    lines = [l for l in p.stderr.splitlines() if l.startswith("attnscope:")]
    check(p.returncode != 0 and len(lines) == 1 and path in lines[0] and not os.path.exists(out),
          f"pixel_values with {what}: exit {p.returncode}, {lines}")
p = run("--model", f"{FX}/vit_tiny", "--text", f"{ROOT}/jobs/demo_corpus.txt", "--out", f"{TMP}/text.h5", "--quiet")
check(p.returncode != 0 and "takes images" in p.stderr, f"a vision model given --text: exit {p.returncode}, {p.stderr.strip()[-200:]}")
p = run("--model", f"{FX}/vit_tiny", "--input", f"{FX}/input_vision.h5", "--out", f"{TMP}/f.h5", "--rollout-fusion", "median")
check(p.returncode == 2 and "--rollout-fusion must be mean, max or min" in p.stderr, f"--rollout-fusion median: exit {p.returncode}")

shutil.rmtree(TMP, ignore_errors=True)
sys.exit(summary())
