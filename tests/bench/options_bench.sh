#!/usr/bin/env bash
set -u
# options_bench.sh — what each output option costs in speed, on the GPU host (runtime sourced,
# repository root), in one call: the peer's SDPA forward (HF BertModel, bert-base, random weights:
# peer.py P0) swept over batch sizes, so that the peer is at its best batch, and attnscope on the
# same weights with each option set, the output on tmpfs (the disk's bandwidth is not what is
# measured here: bench.py's storage rows measure that). Per run: tokens/s without the load (from
# the start line to the closing line, as bench.py's "load excl."),
# the file's size and the most GPU memory nvidia-smi saw (whole device, 50 ms polls).
#   DTYPES (bf16 fp32), LENS (128 512), TOKENS (1048576 per length), DIR (/dev/shm/optbench),
#   ATTNSCOPE (build-cuda/attnscope), PEER_B128 (64,128,256,512), PEER_B512 (16,32,64,128),
#   OUR_TOKENS (65536: --max-tokens and --batch = OUR_TOKENS / L), PEER_TOKENS (TOKENS: the peer's
#   timed tokens per shape), ONLY (an extended regex: the
#   option sets whose names match, e.g. '^defaults$'; default all)
. tests/bench/timed_run.sh
DTYPES=${DTYPES:-bf16 fp32}
LENS=${LENS:-128 512}
TOKENS=${TOKENS:-1048576}
DIR=${DIR:-/dev/shm/optbench}
BIN=${ATTNSCOPE:-build-cuda/attnscope}
OUR_TOKENS=${OUR_TOKENS:-65536}
# name|options (the default first; "explicit" forces the unfused path for the same outputs)
SETS=("defaults|" "gelu-exact|--gelu exact" "topk3|--topk 3" "key-importance|--key-importance" "topk3+ki|--topk 3 --key-importance"
      "topk8+ki|--topk 8 --key-importance" "explicit topk3+ki|--topk 3 --key-importance @NOFUSED")
mkdir -p "$DIR"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader
echo "attnscope: $("$BIN" --version 2>&1 | head -1)"
[ -f "$DIR/config.json" ] || python3 tests/bench/peer.py --model bert-base --save "$DIR" --save-only --shapes 64x128 >/dev/null
python3 - "$DIR" "$TOKENS" $LENS <<'EOF'
import os, sys
sys.path.insert(0, "tests/bench")
import tokens
d, total = sys.argv[1], int(sys.argv[2])
for L in map(int, sys.argv[3:]):
    p = f"{d}/opt_L{L}.h5"
    if not os.path.exists(p):
        tokens.write_input(p, tokens.make_tokens(1234, total // L, L, 30522))
EOF
shapes=""
for L in $LENS; do
  bs=$([ "$L" = 128 ] && echo "${PEER_B128:-64,128,256,512}" || echo "${PEER_B512:-16,32,64,128}")
  for b in ${bs//,/ }; do shapes="$shapes${shapes:+,}${b}x$L"; done
done
echo "== peer P0 (SDPA forward) over $shapes"
# the peer over as many tokens as our runs (PEER_TOKENS, default TOKENS): the GPU reaches its power
# cap within a second (H200: 1980 → ~1710 MHz at 700 W, both sides alike), so a 10-batch burst
# measures a speed that neither keeps over a run (BENCHMARKS.md run 35)
python3 tests/bench/peer.py --model bert-base --dtypes "$(echo $DTYPES | tr ' ' ,)" --shapes "$shapes" --pipelines P0 \
  --tokens "${PEER_TOKENS:-$TOKENS}" --warmup 3 2>&1 | tee /tmp/opt_peer.txt | grep -E "P0|rror"
for dt in $DTYPES; do
  for L in $LENS; do
    best=$(grep -E "P0 $dt +B= *[0-9]+ L= *$L:" /tmp/opt_peer.txt | sed -E 's/.*: +([0-9,]+) tokens.*/\1/' |
           tr -d , | sort -n | tail -1)
    best=${best:-0}
    echo "== $dt L=$L: peer P0 best $best tokens/s"
    for s in "${SETS[@]}"; do
      name=${s%%|*}; opts=${s#*|}; env=""
      [[ "$name" =~ ${ONLY:-.} ]] || continue
      case "$opts" in *@NOFUSED*) env="ATTNSCOPE_NO_FUSED=1"; opts=${opts/@NOFUSED/};; esac
      out=$DIR/run.h5
      nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > /tmp/opt_mem.txt &
      smi=$!
      timed_run /tmp/opt_run.txt env $env "$BIN" run --model "$DIR" --input "$DIR/opt_L$L.h5" --out "$out" --overwrite \
        --quiet --precision "$dt" --batch $((OUR_TOKENS / L)) --max-tokens "$OUR_TOKENS" $opts
      kill $smi; wait $smi 2>/dev/null
      line=$(closing_line /tmp/opt_run.txt)
      tps=$(tps_excl /tmp/opt_run.txt)
      size=$([ -f "$out" ] && du -m "$out" | cut -f1 || echo "-")
      ratio=$(python3 -c "print(f'{float(\"${tps:-0}\") / $best:.2f}' if $best else 'n/a')")
      printf "   %-20s %10s tokens/s  %5s× P0 best  file %5s MiB  peak GPU %6s MiB  %s\n" "$name" "${tps:-FAILED}" "$ratio" \
        "$size" "$(sort -n /tmp/opt_mem.txt | tail -1)" "$([ -z "$tps" ] && echo "$line")"
      rm -f "$out"
    done
  done
done
