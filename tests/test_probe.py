#!/usr/bin/env python3
"""The induction probe (`attnscope run --probe induction`, src/probe.c) against the NumPy
reference tests/stats_ref.py (probe_scores, written from the definitions in README "Statistics":
TransformerLens's previous/duplicate/induction heads on [BOS] + R + R, Olsson et al. 2022).

1. probe_stats --exact-heads: hand-built exact previous-token, duplicate-token and induction heads
   score exactly 1 on their own score (C); the same heads built here score 1 in the reference.
2. probe_head (C, via probe_stats) against the reference on Hugging Face's eager attentions of the
   decoder fixtures (expected_{gpt2,llama,qwen2}_tiny.h5, the 20-token sample read as b = 0,
   K = 10: the scores are positional, so any attention matrix exercises them): 1e-6.
3. The binary: --probe induction on gpt2/llama/qwen2 tiny with --save-attention. The ids are
   [BOS] + R + R with R free of special ids, identical with 1 and 2 ranks and for the same seed,
   different for another; /probe/<score>_per_sample equals the reference applied to the run's
   /attention (which test_e2e.py checks against HF within 1e-5 / 1e-4) within 1e-6, and
   /probe/<score> is their mean over the samples within 1e-6. Refusals: an unknown kind, --probe
   with --input, a probe longer than the positions.
4. Against the peer on the probe itself: expected_probe_{gpt2,llama,qwen2}_tiny.h5 hold Hugging
   Face's eager attentions on the ids of --probe-len 10 --probe-samples 3 --probe-seed 7
   (tests/fixtures/hf/make_probe_fixtures.py); the run with those options must draw the same ids,
   and its /probe scores (computed from its own probabilities) must equal the reference applied to
   HF's attentions within 1e-6.
Tolerance 1e-6: the C code sums in double and rounds to float32 once; the reference sums float32
inputs in float64. Prints one line per comparison; exits 1 on any failure."""
import os, shutil, subprocess, sys, tempfile
import numpy as np, h5py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import stats_ref  # noqa: E402
from checks import check, summary  # noqa: E402
import att_read

BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
BIN, PROBE = os.path.join(BUILD, "attnscope"), os.path.join(BUILD, "tests", "probe_stats")
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
FX = os.path.join(ROOT, "tests", "fixtures", "hf")
TMP = tempfile.mkdtemp(prefix="attnscope-probe-")
TOL = 1e-6
SPECIAL = {0, 1, 2}        # pad, bos, eos of the fixtures' config.json


def maxerr(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")


def attnscope(*args, np_=1):
    cmd = MPIRUN + ["-n", str(np_), "-x", "OMP_NUM_THREADS=1", BIN, "run"] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def exact_heads():
    r = subprocess.run([PROBE, "--exact-heads"], capture_output=True, text=True)
    check(r.returncode == 0, f"probe_stats --exact-heads (C): exit {r.returncode}; {r.stdout.strip().splitlines()[-1]}")
    for b in (0, 1):
        for K in (1, 4, 7):
            T = b + 2 * K
            for name, tgt in (("previous_token_score", lambda i: i - 1 if i >= 1 else 0),
                              ("duplicate_token_score", lambda i: i - K if i >= b + K else 0),
                              ("induction_score", lambda i: i - K + 1 if i >= b + K else 0)):
                P = np.zeros((T, T))
                for i in range(T):
                    P[i, tgt(i)] = 1
                v = stats_ref.probe_scores(P, K, b)[name]
                check(v == 1.0, f"reference: exact {name} head K={K} b={b} scores {v} (want 1)")


def c_vs_ref_on_hf():
    for fam in ("gpt2_tiny", "llama_tiny", "qwen2_tiny"):
        with h5py.File(os.path.join(FX, f"expected_{fam}.h5"), "r") as f:
            att = f["attentions"][()][:1]              # the 20-token sample: T = 20 = 2K, b = 0
        fin, fout = os.path.join(TMP, f"{fam}_in.h5"), os.path.join(TMP, f"{fam}_out.h5")
        with h5py.File(fin, "w") as f:
            f["attention"] = att
            f["length"] = np.array([20], np.int32)
            for a, v in (("causal", 1), ("window", 2), ("topk", 1), ("probe_len", 10), ("probe_bos", 0)):
                f.attrs[a] = np.int64(v)
        r = subprocess.run([PROBE, fin, fout], capture_output=True, text=True)
        if not check(r.returncode == 0, f"hf_{fam}: probe_stats exit {r.returncode} {r.stderr.strip()}"):
            continue
        ref = stats_ref.all_probe_scores(att, 10, 0)
        with h5py.File(fout, "r") as f:
            for n in stats_ref.PROBE_SCORES:
                e = maxerr(f["probe"][n][()], ref[n])
                check(e <= TOL, f"hf_{fam} (HF eager attentions, K=10 b=0): {n:<22s} C vs reference max abs err {e:.3e} tol {TOL:g}")


def binary():
    K, N = 10, 4
    ids_by = {}
    for fam in ("gpt2_tiny", "llama_tiny", "qwen2_tiny"):
        out = os.path.join(TMP, f"run_{fam}.h5")
        r = attnscope("--probe", "induction", "--model", os.path.join(FX, fam), "--out", out, "--probe-len", K,
                      "--probe-samples", N, "--probe-seed", 3, "--save-attention", "--backend", "cpu", "--quiet")
        if not check(r.returncode == 0, f"run {fam}: --probe induction exit {r.returncode} {r.stderr.strip()[-300:]}"):
            continue
        with h5py.File(out, "r") as f:
            ids, att, g = f["samples/input_ids"][()], att_read.padded(f), f["probe"]
            b = int(g.attrs["bos_token_id"] >= 0)
            got = {n: (g[n + "_per_sample"][()], g[n][()]) for n in stats_ref.PROBE_SCORES}
            attrs = dict(g.attrs)
            units = {n: g[n].attrs.get("units") for n in stats_ref.PROBE_SCORES}
        ids_by[fam] = ids
        R1, R2 = ids[:, b:b + K], ids[:, b + K:]
        check(ids.shape == (N, b + 2 * K) and b == 1 and np.all(ids[:, 0] == 1) and np.array_equal(R1, R2)
              and not (set(R1.ravel().tolist()) & SPECIAL) and R1.min() >= 0 and R1.max() < 120,
              f"run {fam}: ids {ids.shape} are [BOS=1] + R + R, R in [0,120) without the special ids {sorted(SPECIAL)}")
        check(all(k in attrs for k in ("source", "probe_len", "probe_samples", "probe_seed", "bos_token_id", "token_ids"))
              and all(u == "probability mass" for u in units.values()),
              f"run {fam}: /probe attributes {sorted(attrs)}; units {set(units.values())}")
        ref = stats_ref.all_probe_scores(att, K, b)
        for n in stats_ref.PROBE_SCORES:
            per, mean = got[n]
            e1, e2 = maxerr(per, ref[n]), maxerr(mean, ref[n].mean(axis=0))
            check(e1 <= TOL and e2 <= TOL, f"run {fam}: {n:<22s} per sample vs reference on /attention {e1:.3e}, "
                  f"mean over samples {e2:.3e} (tol {TOL:g}); mean range [{mean.min():.3f}, {mean.max():.3f}]")
    # the ids do not depend on the model's weights, the number of ranks or anything but the seed
    if len(ids_by) == 3:
        check(all(np.array_equal(ids_by["gpt2_tiny"], v) for v in ids_by.values()), "the three models got the same probe ids")
    out2 = os.path.join(TMP, "run_np2.h5")
    r = attnscope("--probe", "induction", "--model", os.path.join(FX, "gpt2_tiny"), "--out", out2, "--probe-len", K,
                  "--probe-samples", N, "--probe-seed", 3, "--backend", "cpu", "--quiet", np_=2)
    if check(r.returncode == 0, f"run gpt2 on 2 ranks: exit {r.returncode} {r.stderr.strip()[-300:]}") and "gpt2_tiny" in ids_by:
        with h5py.File(out2, "r") as f, h5py.File(os.path.join(TMP, "run_gpt2_tiny.h5"), "r") as f1:
            same_ids = np.array_equal(f["samples/input_ids"][()], ids_by["gpt2_tiny"])
            e = max(maxerr(f["probe"][n][()], f1["probe"][n][()]) for n in stats_ref.PROBE_SCORES)
        check(same_ids and e <= TOL, f"2 ranks: same ids as 1 rank ({same_ids}), /probe means max abs diff {e:.3e}")
    out3 = os.path.join(TMP, "run_seed.h5")
    r = attnscope("--probe", "induction", "--model", os.path.join(FX, "gpt2_tiny"), "--out", out3, "--probe-len", K,
                  "--probe-samples", N, "--probe-seed", 4, "--backend", "cpu", "--quiet")
    if r.returncode == 0 and "gpt2_tiny" in ids_by:
        with h5py.File(out3, "r") as f:
            check(not np.array_equal(f["samples/input_ids"][()], ids_by["gpt2_tiny"]), "another --probe-seed draws other ids")
    for what, args, must in (
            ("an unknown probe", ["--probe", "copying"], "--probe must be induction"),
            ("--probe with --input", ["--probe", "induction", "--input", os.path.join(FX, "input_decoder.h5")], "exactly one of"),
            ("a probe longer than the positions", ["--probe", "induction", "--probe-len", "40"], "use --probe-len 31 or less")):
        r = attnscope("--model", os.path.join(FX, "gpt2_tiny"), "--out", os.path.join(TMP, "bad.h5"), "--backend", "cpu", *args)
        msg = (r.stdout + r.stderr).strip()
        check(r.returncode != 0 and must in msg, f"refuses {what}: exit {r.returncode}, says {must!r}: {msg.splitlines()[-1] if msg else ''}")


def against_hf_probe():
    for fam in ("gpt2_tiny", "llama_tiny", "qwen2_tiny"):
        with h5py.File(os.path.join(FX, f"expected_probe_{fam}.h5"), "r") as e:
            hf_ids, hf_att = e["input_ids"][()], e["attentions"][()]
            K, seed, b = int(e.attrs["probe_len"]), int(e.attrs["probe_seed"]), int(e.attrs["probe_bos"])
            ver = e.attrs["transformers_version"]
        out = os.path.join(TMP, f"hfprobe_{fam}.h5")
        r = attnscope("--probe", "induction", "--model", os.path.join(FX, fam), "--out", out, "--probe-len", K,
                      "--probe-samples", hf_ids.shape[0], "--probe-seed", seed, "--backend", "cpu", "--quiet")
        if not check(r.returncode == 0, f"hf probe {fam}: exit {r.returncode} {r.stderr.strip()[-300:]}"):
            continue
        ref = stats_ref.all_probe_scores(hf_att, K, b)
        with h5py.File(out, "r") as f:
            same = np.array_equal(f["samples/input_ids"][()], hf_ids)
            errs = {n: (maxerr(f["probe"][n + "_per_sample"][()], ref[n]), maxerr(f["probe"][n][()], ref[n].mean(axis=0)))
                    for n in stats_ref.PROBE_SCORES}
        check(same, f"hf probe {fam}: --probe-seed {seed} draws the fixture's ids {hf_ids.shape}")
        for n, (e1, e2) in errs.items():
            check(same and e1 <= TOL and e2 <= TOL, f"hf probe {fam}: {n:<22s} vs reference on HF {ver} eager attentions: "
                  f"per sample {e1:.3e}, mean {e2:.3e} (tol {TOL:g})")


def figures():
    """reduce draws each probe score as a layer x head heatmap, listed in the index page"""
    out = os.path.join(TMP, "run_gpt2_tiny.h5")
    figs = os.path.join(TMP, "figs")
    cmd = MPIRUN + ["-n", "1", BIN, "reduce", out, "--figures", figs]
    r = subprocess.run(cmd, capture_output=True, text=True)
    names = [f"probe_{n}.png" for n in stats_ref.PROBE_SCORES]
    pngs = [n for n in names if os.path.exists(os.path.join(figs, n)) and open(os.path.join(figs, n), "rb").read(8) == b"\x89PNG\r\n\x1a\n"]
    index = open(os.path.join(figs, "index.html")).read() if os.path.exists(os.path.join(figs, "index.html")) else ""
    check(r.returncode == 0 and len(pngs) == 3 and all(n in index for n in names),
          f"reduce --figures on a probe run: {pngs} drawn and in index.html (exit {r.returncode})")


def main():
    for p in (BIN, PROBE):
        if not os.path.exists(p):
            print(f"FAIL {p} not found: run `make` first")
            return 1
    exact_heads()
    c_vs_ref_on_hf()
    binary()
    against_hf_probe()
    figures()
    status = summary()
    shutil.rmtree(TMP, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
