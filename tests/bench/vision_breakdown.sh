#!/usr/bin/env bash
set -u
# Per-kernel GPU time of one ViT-B/16 vision batch (B images, default 128; PREC default fp32) with
# every /vision output, under Nsight Compute (base clocks: the shares count, not the times). GPU
# host, runtime sourced, repo root. ATTNSCOPE (build-cuda/attnscope).
B=${B:-128}; PREC=${PREC:-fp32}; BIN=${ATTNSCOPE:-build-cuda/attnscope}
[ -f /dev/shm/vitb1/config.json ] || python3 tests/bench/vision_peer.py --save /dev/shm/vitb1 --images "$B" | tail -1
timeout 300 ncu --metrics gpu__time_duration.sum --print-summary per-kernel --csv \
  "$BIN" run --model /dev/shm/vitb1 --input /dev/shm/vitb1/pixels.h5 --out /tmp/n.h5 --overwrite --batch "$B" \
  --max-tokens $((B * 197)) --precision "$PREC" --quiet --topk 0 --no-key-importance > /tmp/ncu.csv 2>/tmp/ncu.err
tail -2 /tmp/ncu.err
python3 tests/bench/ncu_summary.py /tmp/ncu.csv 24
