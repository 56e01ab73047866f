#!/usr/bin/env bash
set -u
# Issue 12's measure, like for like (GPU host, runtime sourced, repo root): the peer (vision_peer.py:
# HF ViT-B/16 eager + output_attentions + rollout, [CLS] rows and distance in PyTorch, bf16, B = 128)
# and attnscope's run (every /vision output, bf16, B = 128) each over the same IMAGES images,
# alternated for ROUNDS rounds after one round of warm-up. A burst of 8 batches (the peer's
# default --reps) runs at the clocks of a cool GPU; a run over a data set runs at the clocks the
# H200 holds under its power cap, and both sides are timed so here (as run 35 did for issue 13).
# The peer's burst figure is printed first, for comparison with earlier runs. Our runs write every
# output to DIR's file system (the rollout alone is 155 KB an image) and print how long the loop
# waited for those writes; the peer keeps its results in host memory.
#   DIR (/dev/shm/vitb: vision_peer.py --save), BINS (build-cuda/attnscope; several: A/B in one call,
#   each with its env as NAME=VALUE:path, e.g. "ATTNSCOPE_NO_LINEAR_ADD=1:b/attnscope b/attnscope"),
#   IMAGES (16384, a multiple of 2048: the images in DIR's pixels_u8.h5, which --save makes), ROUNDS (3),
#   OUTDIR (/dev/shm: where our runs write their file)
DIR=${DIR:-/dev/shm/vitb}
IMAGES=${IMAGES:-16384}
ROUNDS=${ROUNDS:-3}
BINS=${BINS:-build-cuda/attnscope}
OUTDIR=${OUTDIR:-/dev/shm}
[ -f "$DIR/config.json" ] || python3 tests/bench/vision_peer.py --save "$DIR" --images 2048 --repeat $((IMAGES / 2048))
python3 tests/bench/vision_peer.py --dtype bf16 --batches 128 --only peer | tail -1 | sed 's/^/burst: /'
ours() {   # one run of binary spec $1 (env:path or path): its images/s over IMAGES images
  local spec=$1 envs= bin=$1
  case $spec in *:*) envs=${spec%%:*}; bin=${spec#*:};; esac
  env $envs "$bin" run --model "$DIR" --input "$DIR/pixels_u8.h5" --out "$OUTDIR/sustained.h5" --overwrite --batch 128 \
    --max-tokens 25216 --precision bf16 --topk 0 --no-key-importance --quiet 2>&1 |
    sed -n 's/.*forward, statistics and writes \([0-9.]*\) s: \([0-9]*\) tokens\/s.*waited \([0-9.]*\) s for the disk.*/\1 \2 \3/p' |
    awk '{printf "%.0f images/s (waited %s s for the disk; %.0f images/s without the wait)\n", $2 / 197, $3, $2 / 197 * $1 / ($1 - $3)}'
  rm -f "$OUTDIR/sustained.h5"
}
peer() {
  python3 tests/bench/vision_peer.py --dtype bf16 --batches 128 --only peer --reps $((IMAGES / 128)) | tail -1 |
    sed 's/.*: *\([0-9.]*\) images\/s.*/\1/' | awk '{printf "%.0f images/s\n", $1}'
}
for r in $(seq 0 "$ROUNDS"); do
  tag=$([ "$r" = 0 ] && echo "warm-up" || echo "round $r")
  echo "$tag: peer $(peer)"
  for b in $BINS; do echo "$tag: $b $(ours "$b")"; done
done
