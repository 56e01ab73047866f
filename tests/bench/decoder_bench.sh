#!/usr/bin/env bash
set -u
# The decoder benchmark on the GPU host (runtime sourced, repo root): a Llama-3.2-1B-sized model with
# random weights in bf16 (decoder_peer.py), HF's SDPA forward over a sweep of batch sizes (the peer
# at its best batch) and, in the same call, attnscope's per-head scalars in bf16 (the fused kernel:
# --topk 0 --no-key-importance) over a sweep of its own. Peak GPU memory of attnscope: the most
# nvidia-smi saw while it ran (the peer's: torch.cuda.max_memory_allocated, and nvidia-smi's in a
# process of its own per batch size, PEER_SMI_BATCHES).
#   LENS (2048), SAMPLES (128 rows per length), PEER_BATCHES (1,2,4,8,16), OUR_BATCHES ("2 4 8"),
#   DIR (/dev/shm/llama1b), ATTNSCOPE (build-cuda/attnscope), EAGER (1: also eager + attentions),
#   TOKEN_OPTS (below)
. tests/bench/timed_run.sh
LENS=${LENS:-2048}
DIR=${DIR:-/dev/shm/llama1b}
BIN=${ATTNSCOPE:-build-cuda/attnscope}
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader
[ -f "$DIR/config.json" ] || python3 tests/bench/decoder_peer.py --save "$DIR" --lengths "$LENS" --samples "${SAMPLES:-128}"
eager=$([ "${EAGER:-1}" = 1 ] && echo --eager || echo)
python3 tests/bench/decoder_peer.py --lengths "$LENS" --batches "${PEER_BATCHES:-1,2,4,8,16}" $eager --json /tmp/decoder_peer.json
# the peer's memory as attnscope's is measured: the whole device by nvidia-smi (CUDA context and the
# allocator's reserve included), one process per (L, B) of PEER_SMI_BATCHES (default: the first
# of PEER_BATCHES; empty: none)
SMI_B=${PEER_SMI_BATCHES-$(echo "${PEER_BATCHES:-1,2,4,8,16}" | cut -d, -f1)}
for L in ${LENS//,/ }; do
  for B in ${SMI_B//,/ }; do
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > /tmp/dec_mem.txt &
    smi=$!
    python3 tests/bench/decoder_peer.py --lengths "$L" --batches "$B" > /dev/null 2>&1
    kill $smi; wait $smi 2>/dev/null
    echo "== peer SDPA L=$L B=$B: peak GPU memory (nvidia-smi, whole device): $(sort -n /tmp/dec_mem.txt | tail -1) MiB"
  done
done
# TOKEN_OPTS (e.g. "--topk 3 --key-importance"): also one run per length with those per-token
# outputs, at the first of OUR_BATCHES
for L in ${LENS//,/ }; do
  B1=$(echo ${OUR_BATCHES:-2 4 8} | cut -d' ' -f1)
  for B in ${OUR_BATCHES:-2 4 8} ${TOKEN_OPTS:+tok$B1}; do
    opts="--topk 0 --no-key-importance"; what=scalars
    case "$B" in tok*) B=${B#tok}; opts=$TOKEN_OPTS; what="$TOKEN_OPTS";; esac
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > /tmp/dec_mem.txt &
    smi=$!
    echo "== attnscope bf16 $what L=$L B=$B"
    timed_run /tmp/dec_run.txt "$BIN" run --model "$DIR" --input "$DIR/input_L$L.h5" --out /dev/shm/dec.h5 --overwrite \
      --batch "$B" --max-tokens $((B * L)) --precision bf16 $opts --quiet
    echo "   $(closing_line /tmp/dec_run.txt)"
    echo "   load excluded: $(tps_excl /tmp/dec_run.txt) tokens/s"
    kill $smi; wait $smi 2>/dev/null
    echo "   peak GPU memory (nvidia-smi, whole device): $(sort -n /tmp/dec_mem.txt | tail -1) MiB"
    rm -f /dev/shm/dec.h5
  done
done
