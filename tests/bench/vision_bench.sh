#!/usr/bin/env bash
set -u
# The vision benchmark on the GPU host (runtime sourced, repo root): ViT-B/16 with random weights
# (vision_peer.py) over IMAGES random images; the peer (eager + attentions + rollout, [CLS] rows and
# distance in PyTorch; and the SDPA forward alone) over a sweep of batch sizes, and attnscope's run
# with every /vision output (its "forward, statistics and writes" rate, load excluded).
#   DIR (/dev/shm/vitb), ATTNSCOPE (build-cuda/attnscope), IMAGES (2048; REPEAT (1) times in the file),
#   PEER_BATCHES (16,32,64,128,256), PXS ("pixels pixels_u8": the --input files, float32 and uint8),
#   OUR_BATCHES ("64 128 256"), PRECS ("fp32 bf16"), SKIP_PEER (1: ours only), EXPLICIT (1: also the
#   explicit path, ATTNSCOPE_NO_FUSED=1, at B = 128, and its outputs against the fused path's; with
#   REPEAT > 1 also each path's copies of the images against the first copy: they must be equal).
#   Every attnscope run prints ATTNSCOPE_PHASES's line (where the loop's time went).
DIR=${DIR:-/dev/shm/vitb}
BIN=${ATTNSCOPE:-build-cuda/attnscope}
[ -f "$DIR/config.json" ] || python3 tests/bench/vision_peer.py --save "$DIR" --images "${IMAGES:-2048}" --repeat "${REPEAT:-1}"
[ "${SKIP_PEER:-0}" = 1 ] || for p in ${PRECS:-fp32 bf16}; do
  python3 tests/bench/vision_peer.py --dtype $p --batches "${PEER_BATCHES:-16,32,64,128,256}"; done
compare() {   # the /vision and /stats datasets of two runs: max abs difference, and relative to the largest value
  python3 - "$1" "$2" <<'PY'
import h5py, numpy as np, sys
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
for g in ("vision", "stats"):
    for k in sorted(a[g]):
        x, y = a[g][k][()].astype(np.float64), b[g][k][()].astype(np.float64)
        d = np.nanmax(np.abs(x - y)) if x.size else 0.0
        print(f"   {g}/{k:22s} max abs {d:.3g}  rel {d / max(np.nanmax(np.abs(y)), 1e-30):.3g}")
PY
}
for p in ${PRECS:-fp32 bf16}; do
  for B in ${OUR_BATCHES:-64 128 256}; do
    for px in ${PXS:-pixels pixels_u8}; do
      echo "== attnscope $p B=$B --input $px.h5 (every /vision output; images/s = tokens/s / 197)"
      ATTNSCOPE_PHASES=1 "$BIN" run --model "$DIR" --input "$DIR/$px.h5" --out /dev/shm/vis_$px.h5 --overwrite --batch "$B" \
        --max-tokens $((B * 197)) --precision $p --topk 0 --no-key-importance --quiet 2>&1 | grep -E 'wrote|rror|phases'
    done
    if [ -f /dev/shm/vis_pixels.h5 ] && [ -f /dev/shm/vis_pixels_u8.h5 ]; then
      echo "   uint8 input against float32 input (the processor's floats of the same images):"
      compare /dev/shm/vis_pixels_u8.h5 /dev/shm/vis_pixels.h5
    fi
    rm -f /dev/shm/vis_pixels.h5 /dev/shm/vis_pixels_u8.h5
  done
done
copies() {   # a run over REPEAT copies of the images: every /vision and /stats dataset's largest difference between copies
  python3 - "$1" "${REPEAT:-1}" <<'PY'
import h5py, numpy as np, sys
f, R = h5py.File(sys.argv[1]), int(sys.argv[2])
worst = {}
for g in ("stats", "vision"):
    for k in f[g]:
        x = f[g][k][()].astype(np.float64)
        if x.shape[0] % R: continue
        x = x.reshape(R, x.shape[0] // R, -1)
        worst[f"{g}/{k}"] = float(np.nanmax(np.abs(x - x[:1])))
k = max(worst, key=worst.get)
print(f"   {R} copies of the images: largest difference between copies {worst[k]:.3g} ({k}; {len(worst)} datasets)")
PY
}
[ "${EXPLICIT:-0}" = 1 ] && for p in ${PRECS:-fp32 bf16}; do
  for mode in fused explicit; do
    env=$([ $mode = explicit ] && echo ATTNSCOPE_NO_FUSED=1 || echo ATTNSCOPE_X=0)
    echo "== attnscope $p B=128 $mode path (every /vision output)"
    env $env ATTNSCOPE_PHASES=1 "$BIN" run --model "$DIR" --input "$DIR/pixels.h5" --out /dev/shm/vis_$mode.h5 --overwrite --batch 128 \
      --max-tokens $((128 * 197)) --precision $p --topk 0 --no-key-importance --quiet 2>&1 | grep -E 'wrote|rror|phases'
  done
  echo "== $p: fused against explicit"
  compare /dev/shm/vis_fused.h5 /dev/shm/vis_explicit.h5
  if [ "${REPEAT:-1}" -gt 1 ]; then for mode in fused explicit; do echo "== $p $mode path"; copies /dev/shm/vis_$mode.h5; done; fi
  rm -f /dev/shm/vis_fused.h5 /dev/shm/vis_explicit.h5
done
for p in ${PRECS:-fp32 bf16}; do
  echo "== attnscope $p B=128, default options (also top-k and key importance per token)"
  "$BIN" run --model "$DIR" --input "$DIR/pixels.h5" --out /dev/shm/vis.h5 --overwrite --batch 128 \
    --max-tokens $((128 * 197)) --precision $p --quiet 2>&1 | grep -E 'wrote|rror'
  rm -f /dev/shm/vis.h5
done
