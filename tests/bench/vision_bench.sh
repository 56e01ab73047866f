#!/usr/bin/env bash
set -u
# The vision benchmark on the GPU host (runtime sourced, repo root): ViT-B/16 with random weights
# (vision_peer.py) over IMAGES random images; the peer (eager + attentions + rollout, [CLS] rows and
# distance in PyTorch; and the SDPA forward alone) over a sweep of batch sizes, and attnscope's run
# with every /vision output (its "forward, statistics and writes" rate, load excluded).
#   DIR (/dev/shm/vitb), ATTNSCOPE (build-cuda/attnscope), IMAGES (2048), PEER_BATCHES (16,32,64,128,256),
#   OUR_BATCHES ("64 128 256"), PRECS ("fp32 bf16"), SKIP_PEER (1: ours only)
DIR=${DIR:-/dev/shm/vitb}
BIN=${ATTNSCOPE:-build-cuda/attnscope}
[ -f "$DIR/config.json" ] || python3 tests/bench/vision_peer.py --save "$DIR" --images "${IMAGES:-2048}"
[ "${SKIP_PEER:-0}" = 1 ] || for p in ${PRECS:-fp32 bf16}; do
  python3 tests/bench/vision_peer.py --dtype $p --batches "${PEER_BATCHES:-16,32,64,128,256}"; done
for p in ${PRECS:-fp32 bf16}; do
  for B in ${OUR_BATCHES:-64 128 256}; do
    echo "== attnscope $p B=$B (every /vision output; images/s = tokens/s / 197)"
    "$BIN" run --model "$DIR" --input "$DIR/pixels.h5" --out /dev/shm/vis.h5 --overwrite --batch "$B" \
      --max-tokens $((B * 197)) --precision $p --topk 0 --no-key-importance --quiet 2>&1 | grep -E 'wrote|rror'
    rm -f /dev/shm/vis.h5
  done
done
for p in ${PRECS:-fp32 bf16}; do
  echo "== attnscope $p B=128, default options (also top-k and key importance per token)"
  "$BIN" run --model "$DIR" --input "$DIR/pixels.h5" --out /dev/shm/vis.h5 --overwrite --batch 128 \
    --max-tokens $((128 * 197)) --precision $p --quiet 2>&1 | grep -E 'wrote|rror'
  rm -f /dev/shm/vis.h5
done
