#!/usr/bin/env bash
set -u
# The CNN benchmark on the GPU host (runtime sourced, repo root): ResNet-50 with random weights
# (cnn_peer.py) over IMAGES random images; the peer (HF forward with every stage's output and the
# per-channel statistics in PyTorch) over a sweep of batch sizes, and attnscope's run (its
# "forward, statistics and writes" rate, load excluded), fp32.
#   DIR (/dev/shm/r50), ATTNSCOPE (build-cuda/attnscope), IMAGES (2048), PEER_BATCHES (16,32,64,128), OUR_BATCHES ("32 64")
DIR=${DIR:-/dev/shm/r50}
BIN=${ATTNSCOPE:-build-cuda/attnscope}
[ -f "$DIR/config.json" ] || python3 tests/bench/cnn_peer.py --save "$DIR" --images "${IMAGES:-2048}"
python3 tests/bench/cnn_peer.py --batches "${PEER_BATCHES:-16,32,64,128}"
for B in ${OUR_BATCHES:-32 64}; do
  echo "== attnscope fp32 B=$B (per-channel statistics of every stage)"
  "$BIN" run --model "$DIR" --input "$DIR/pixels.h5" --out /dev/shm/cnn.h5 --overwrite --batch "$B" --quiet 2>&1 | grep -E 'wrote|rror'
  rm -f /dev/shm/cnn.h5
done
