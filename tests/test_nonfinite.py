#!/usr/bin/env python3
"""Non-finite weights and statistics (issue 14), through the binary.

A copy of tests/fixtures/hf/bert_tiny gets NaN/Inf values written into one weight of its
model.safetensors (the header parsed here: 8-byte little-endian length, JSON, data offsets):
- the run is refused with one line naming the file, the tensor and the count, a non-zero exit and
  nothing at --out;
- with --allow-nonfinite it runs (one warning line, printed once over 2 ranks), the heads whose
  probabilities are NaN read NaN for every statistic (before the fix entropy read 0), the other
  heads match the unmodified model's output exactly, and the closing line counts the non-finite
  statistics written;
the ResNet loader refuses (or, allowed, warns about) a NaN convolution weight; and the C statistics
(tests/probe_stats --nonfinite) give NaN for a head with one NaN row.
Prints every comparison; exits non-zero on any failure."""
import json, os, re, shutil, struct, subprocess, sys, tempfile
import numpy as np, h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
BIN = os.path.join(BUILD, "attnscope")
FX = os.path.join(ROOT, "tests/fixtures/hf")
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
TMP = tempfile.mkdtemp(prefix="attnscope-nonfinite-")
STAT_N = 11          # the per-head scalars of /stats (src/stats.c stats_names)


def attnscope(*args, np_=1):
    cmd = MPIRUN + ["-n", str(np_), "-x", "OMP_NUM_THREADS=1", "-x", "OPENBLAS_NUM_THREADS=1", BIN] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def poison(model_dir, tensor, flat_indices, values):
    """Writes values (float32) at flat_indices of tensor in model_dir/model.safetensors (F32)."""
    path = os.path.join(model_dir, "model.safetensors")
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        t = header[tensor]
        assert t["dtype"] == "F32", t
        begin = 8 + n + t["data_offsets"][0]
        for i, v in zip(flat_indices, values):
            f.seek(begin + 4 * i)
            f.write(struct.pack("<f", v))
    return path


# ---- the C statistics: one NaN/Inf row makes every statistic of the head NaN --------------------
p = subprocess.run([os.path.join(BUILD, "tests", "probe_stats"), "--nonfinite"], capture_output=True, text=True)
print(p.stdout, end="")
check(p.returncode == 0, "probe_stats --nonfinite: stats_head gives NaN for every statistic of a head with a NaN/Inf row")

# ---- the reference: the unmodified model ----------------------------------------------------------
INPUT = f"{FX}/input_tiny.h5"
ref_out = f"{TMP}/ref.h5"
p = attnscope("run", "--model", f"{FX}/bert_tiny", "--input", INPUT, "--out", ref_out, "--batch", 3)
check(p.returncode == 0 and "non-finite" not in p.stdout + p.stderr,
      "the unmodified bert_tiny runs, without a word about non-finite values")

# ---- one NaN and two Inf in layer 1's query weight, rows of head 0 --------------------------------
# query.weight is (out 32, in 32), head h owns rows 8h..8h+7: rows 0 and 1 are head 0's, so only
# layer 1 head 0's scores (and probabilities) become NaN; layer 1 is the last, nothing reads its output
model = f"{TMP}/bert_tiny_nan"
shutil.copytree(f"{FX}/bert_tiny", model)
TENSOR = "encoder.layer.1.attention.self.query.weight"
st_path = poison(model, TENSOR, [0, 5, 33], [float("nan"), float("inf"), float("-inf")])

out = f"{TMP}/refused.h5"
p = attnscope("run", "--model", model, "--input", INPUT, "--out", out, "--batch", 3)
lines = [l for l in p.stderr.splitlines() if l.startswith("attnscope:")]   # (mpirun adds its own lines)
want = f'{st_path}: tensor "{TENSOR}" has 3 non-finite values (NaN/Inf); --allow-nonfinite to run anyway'
print("  stderr:", lines)
check(p.returncode != 0, f"a NaN in the weights is refused: exit {p.returncode} (want non-zero)")
check(len(lines) == 1 and lines[0] == "attnscope: " + want,
      f"one line naming the file, the tensor and the count ({len(lines)} attnscope: lines)")
check(not os.path.exists(out) and not os.path.exists(out + ".partial"), "nothing at --out (nor its .partial directory)")

p = attnscope("run", "--model", model, "--input", INPUT, "--out", out, "--batch", 3, np_=2)
check(p.returncode != 0 and [l for l in p.stderr.splitlines() if l.startswith("attnscope:")] == ["attnscope: " + want]
      and not os.path.exists(out), f"refused on 2 ranks too, with one line (exit {p.returncode})")

# ---- --allow-nonfinite: it runs, and the affected heads read NaN ----------------------------------
for ranks in (1, 2):
    out = f"{TMP}/allowed_{ranks}.h5"
    p = attnscope("run", "--model", model, "--input", INPUT, "--out", out, "--batch", 3, "--allow-nonfinite", np_=ranks)
    warn = [l for l in p.stderr.splitlines() if "warning" in l and TENSOR in l]
    print("  stderr:", p.stderr.strip())
    check(p.returncode == 0 and os.path.exists(out), f"--allow-nonfinite on {ranks} rank(s) runs: exit {p.returncode}")
    check(len(warn) == 1 and st_path in warn[0] and "3 non-finite values" in warn[0],
          f"one warning line naming the file, the tensor and the count ({len(warn)} on {ranks} rank(s))")
    if not os.path.exists(out):
        continue
    with h5py.File(out, "r") as f, h5py.File(ref_out, "r") as r:
        N = f["stats/entropy"].shape[0]
        names = [k for k in f["stats"].keys() if f["stats"][k].ndim == 3 and f["stats"][k].shape == f["stats/entropy"].shape]
        ent = f["stats/entropy"][:]
        check(bool(np.isnan(ent[:, 1, 0]).all()),
              f"/stats/entropy of layer 1 head 0 is NaN in all {N} samples (not 0): {ent[:, 1, 0].tolist()}")
        all_nan = all(bool(np.isnan(f["stats"][k][:, 1, 0]).all()) for k in names)
        check(all_nan, f"every per-head statistic ({len(names)}: {', '.join(sorted(names))}) of layer 1 head 0 is NaN")
        mask = np.ones(ent.shape[1:], bool)
        mask[1, 0] = False
        same = all(np.array_equal(f["stats"][k][:][:, mask], r["stats"][k][:][:, mask]) for k in names)
        check(same, "the other heads' statistics equal the unmodified model's exactly")
        n_bad = sum(int((~np.isfinite(f["stats"][k][:])).sum()) for k in names)
    m = re.search(r"; (\d+) non-finite statistics", p.stdout)
    print("  closing line:", [l for l in p.stdout.splitlines() if "tokens/s" in l])
    check(m is not None and int(m.group(1)) == N * STAT_N == n_bad,
          f"the closing line counts the non-finite statistics: {m.group(1) if m else None} "
          f"(want {N} samples x {STAT_N} statistics = {N * STAT_N}; {n_bad} in the file)")

# ---- the ResNet loader (src/cnn_load.c) checks its tensors the same way -----------------------------
rmodel = f"{TMP}/resnet_nan"
shutil.copytree(f"{FX}/resnet_basic_tiny", rmodel)
RTENSOR = "encoder.stages.0.layers.0.layer.1.convolution.weight"
rst = poison(rmodel, RTENSOR, [2], [float("nan")])
out = f"{TMP}/resnet.h5"
p = attnscope("run", "--model", rmodel, "--input", f"{FX}/input_resnet.h5", "--out", out, "--quiet")
lines = [l for l in p.stderr.splitlines() if l.startswith("attnscope:")]
print("  stderr:", lines)
check(p.returncode != 0 and lines == [f'attnscope: {rst}: tensor "{RTENSOR}" has 1 non-finite value (NaN/Inf); '
                                      "--allow-nonfinite to run anyway"] and not os.path.exists(out),
      f"ResNet: a NaN convolution weight is refused with one line, nothing at --out (exit {p.returncode})")
p = attnscope("run", "--model", rmodel, "--input", f"{FX}/input_resnet.h5", "--out", out, "--quiet", "--allow-nonfinite")
warn = [l for l in p.stderr.splitlines() if "warning" in l and RTENSOR in l]
check(p.returncode == 0 and os.path.exists(out) and len(warn) == 1,
      f"ResNet --allow-nonfinite runs with one warning line (exit {p.returncode}, {len(warn)} warnings)")

shutil.rmtree(TMP, ignore_errors=True)
sys.exit(summary())
