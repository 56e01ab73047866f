#!/usr/bin/env python3
"""Tests of `attnscope preprocess` (src/preprocess.c), through the binary under mpirun.

For every preprocessor_config.json of tests/fixtures/images/pp: the images HF processed, given as
a LISTFILE in HF's order, go through `preprocess --out`; /pixel_values must equal the pixel_values
of HF's slow (PIL) image processor (tests/fixtures/images/expected.h5, made by
make_image_fixtures.py with transformers and Pillow) to 1e-6 abs (0 expected: the arithmetic is
the peer's), /images/path the list, /images/orig_size Pillow's (height, width). A directory as
--images takes its images sorted by name. Errors: a bad image in the list, a processor without a
fixed output size, a directory named .png, missing options: exit 1 or 2 with one line naming the
culprit, and no output file (nor temporary) left behind. Prints every comparison; exits non-zero
on any failure."""
import json, os, subprocess, sys, tempfile
import numpy as np
import h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "attnscope")
FX = os.path.join(ROOT, "tests/fixtures/images")
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
ENV = dict(os.environ, OMPI_MCA_odls_base_sigkill_timeout="0")
TMP = tempfile.mkdtemp(prefix="attnscope-preprocess-")


def attnscope(*args):
    cmd = MPIRUN + ["-n", "1", BIN] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, cwd=ROOT, env=ENV)


def fixture(name):
    return os.path.join(FX, "png" if name.endswith(".png") else "jpeg", name)


def write_list(paths):
    path = os.path.join(TMP, "list.txt")
    open(path, "w").write("".join(p + "\n" for p in paths))
    return path


def err(r):
    return r.stderr.decode(errors="replace").strip().replace("\n", " | ")[:240]


def main():
    exp = h5py.File(os.path.join(FX, "expected.h5"), "r")
    out = os.path.join(TMP, "pv.h5")
    for name in sorted(exp["pp"]):
        files = [f.decode() for f in exp[f"pp/{name}/files"][()]]
        want = exp[f"pp/{name}/pixel_values"][()]
        paths = [os.path.relpath(fixture(f), ROOT) for f in files]
        r = attnscope("preprocess", "--images", write_list(paths), "--preprocessor", os.path.join(FX, "pp", name), "--out", out)
        if not check(r.returncode == 0, f"[{name}] preprocess --out: exit 0 ({err(r) if r.returncode else 'ok'})"):
            continue
        with h5py.File(out, "r") as h:
            got = h["pixel_values"][()]
            same_shape = got.shape == want.shape and got.dtype == np.float32
            e = float(np.abs(got.astype(np.float64) - want).max()) if same_shape else float("inf")
            check(same_shape and e <= 1e-6, f"[{name}] /pixel_values {got.shape} vs HF slow processor {want.shape}: max abs error {e:.3g} (tolerance 1e-6)")
            check([p.decode() for p in h["images/path"][()]] == paths, f"[{name}] /images/path: the {len(paths)} paths of the list, in order")
            sizes = [list(exp[f"decode/{f}"].shape[:2]) for f in files]
            check(h["images/orig_size"][()].tolist() == sizes, f"[{name}] /images/orig_size: each image's (height, width) as Pillow reads it")
        # --uint8: the image before rescale and normalize; HF's rescale and normalize of it (in
        # NumPy, as transformers' image_transforms: float64 multiply to float32, then float32
        # subtract and divide) give HF's pixel_values
        cfg = json.load(open(os.path.join(FX, "pp", name, "preprocessor_config.json")))
        clip = "CLIP" in cfg.get("image_processor_type", "")
        mean = cfg.get("image_mean") or ([0.48145466, 0.4578275, 0.40821073] if clip else [0.5, 0.5, 0.5])
        std = cfg.get("image_std") or ([0.26862954, 0.26130258, 0.27577711] if clip else [0.5, 0.5, 0.5])
        r = attnscope("preprocess", "--images", write_list(paths), "--preprocessor", os.path.join(FX, "pp", name), "--out", out, "--uint8")
        if check(r.returncode == 0, f"[{name}] preprocess --out --uint8: exit 0 ({err(r) if r.returncode else 'ok'})"):
            with h5py.File(out, "r") as h:
                u8 = h["pixel_values"][()]
                x = (u8.astype(np.float64) * cfg.get("rescale_factor", 1 / 255)).astype(np.float32)
                x = (x - np.asarray(mean, np.float32)[None, :, None, None]) / np.asarray(std, np.float32)[None, :, None, None]
                ok = u8.dtype == np.uint8 and x.shape == want.shape
                e = float(np.abs(x.astype(np.float64) - want).max()) if ok else float("inf")
                check(ok and e <= 1e-6, f"[{name}] /pixel_values uint8 {u8.dtype} {u8.shape}, rescaled and normalized as HF: max abs error {e:.3g} vs HF's pixel_values (tolerance 1e-6)")

    # a directory: its images sorted by name, as HF's order of the png/ files
    pngs = sorted(os.listdir(os.path.join(FX, "png")))
    r = attnscope("preprocess", "--images", os.path.join(FX, "png"), "--preprocessor", os.path.join(FX, "pp/vit_32"), "--out", out)
    with h5py.File(out, "r") as h:
        names = [os.path.basename(p.decode()) for p in h["images/path"][()]]
        want = exp["pp/vit_32/pixel_values"][()]
        allf = [f.decode() for f in exp["pp/vit_32/files"][()]]
        idx = [allf.index(n) for n in names]
        e = float(np.abs(h["pixel_values"][()] - want[idx]).max()) if names == pngs else float("inf")
        check(r.returncode == 0 and names == pngs and e <= 1e-6, f"--images DIR: {len(names)} PNGs sorted by name, max abs error vs HF {e:.3g}")
    # without --out: one line per image
    r = attnscope("preprocess", "--images", os.path.join(FX, "jpeg"), "--preprocessor", os.path.join(FX, "pp/clip"))
    lines = r.stdout.decode().splitlines()
    check(r.returncode == 0 and len(lines) == 2 and "3x27x27" in lines[0], f"no --out: one line per image ({lines[:1]})")

    # failures: exit 1, one line naming the culprit, the previous output untouched, no temporary left
    before = open(out, "rb").read()
    bad = os.path.join(TMP, "bad.png")
    open(bad, "wb").write(open(fixture("rgb8_37x23.png"), "rb").read()[:300])
    r = attnscope("preprocess", "--images", write_list([fixture("rgb8_1x1.png"), bad]), "--preprocessor", os.path.join(FX, "pp/vit_32"), "--out", out)
    check(r.returncode == 1 and b"bad.png" in r.stderr and b"truncated" in r.stderr, f"a truncated PNG in the list: exit 1 naming it ({err(r)})")
    left = [f for f in os.listdir(TMP) if f.startswith(".pv.h5")]
    check(open(out, "rb").read() == before and not left, f"after the failure the old {os.path.basename(out)} is intact and no temporary is left ({left})")
    r = attnscope("preprocess", "--images", write_list([fixture("rgb8_37x23.png"), fixture("grey8_23x17.png")]),
                  "--preprocessor", os.path.join(FX, "pp/vit_32"), "--max-pixels", 400, "--out", out)
    check(r.returncode == 1 and b"above the limit of 400" in r.stderr, f"--max-pixels 400: exit 1 ({err(r)})")
    nocrop = os.path.join(TMP, "nocrop")
    os.makedirs(nocrop, exist_ok=True)
    open(os.path.join(nocrop, "preprocessor_config.json"), "w").write('{"image_processor_type": "CLIPImageProcessor", "do_center_crop": false, "size": 20}')
    r = attnscope("preprocess", "--images", write_list([fixture("rgb8_37x23.png"), fixture("ga8_20x30.png")]), "--preprocessor", nocrop, "--out", out)
    check(r.returncode == 1 and b"no fixed size" in r.stderr, f"images of different output sizes: exit 1 ({err(r)})")
    d = os.path.join(TMP, "dir")
    os.makedirs(os.path.join(d, "folder.png"), exist_ok=True)
    r = attnscope("preprocess", "--images", d, "--preprocessor", os.path.join(FX, "pp/vit_32"), "--out", out)
    check(r.returncode == 1 and b"folder.png" in r.stderr and b"not a regular file" in r.stderr, f"a directory named .png: exit 1 ({err(r)})")
    r = attnscope("preprocess", "--images", os.path.join(FX, "png"), "--preprocessor", os.path.join(FX, "png"), "--out", out)
    check(r.returncode == 1 and b"preprocessor_config.json" in r.stderr, f"no preprocessor_config.json: exit 1 ({err(r)})")
    r = attnscope("preprocess", "--preprocessor", os.path.join(FX, "pp/vit_32"))
    check(r.returncode == 2 and b"--images" in r.stderr, f"no --images: exit 2 ({err(r)})")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
