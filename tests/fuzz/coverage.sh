#!/usr/bin/env bash
# coverage.sh CORPUS_ROOT — how much of each parser a corpus reaches: builds the fuzz targets with
# clang's source-based coverage (-fprofile-instr-generate -fcoverage-mapping, no sanitizers) into
# build-fuzzcov/, replays CORPUS_ROOT/<target>/ through each (libFuzzer's -runs=0 runs every file
# of a directory once), merges the profiles with llvm-profdata and prints, per target, the line
# and function coverage of the src/ files that target is about, as a Markdown table.
#   tests/fuzz/coverage.sh tests/fuzz/corpus          the committed seeds
#   tests/fuzz/coverage.sh OUTDIR                     a run_many.sh campaign's final corpora
set -u
[ $# -eq 1 ] || { echo "usage: $0 CORPUS_ROOT" >&2; exit 2; }
corpus=$(cd "$1" && pwd) || exit 2
cd "$(dirname "$0")/../.."
llvm=/usr/lib/llvm-14/bin
for tool in profdata cov; do
    [ -x "$llvm/llvm-$tool" ] || { echo "llvm-$tool not found in $llvm: install the Debian package llvm-14" >&2; exit 2; }
done
cov=build-fuzzcov
flags="-fprofile-instr-generate -fcoverage-mapping"
mkdir -p $cov
make --no-print-directory -j"$(nproc)" fuzz-build FUZZ_BUILD=$cov FUZZ_SAN="$flags" FUZZ_LINK="-fsanitize=fuzzer $flags" >$cov/build.log 2>&1 ||
    { tail -20 $cov/build.log; exit 1; }
# the modules each target is about
files_of() {
    case $1 in
    safetensors|st_index) echo safetensors.c ;;
    gguf) echo gguf.c quant.c config.c tok_gguf.c ;;
    config) echo config.c arch.c ;;
    vocabfiles) echo tok_load.c tok_vocab.c ;;
    tokenizer) echo tok_load.c tok_vocab.c tok_normalize.c tok_pretok.c tok_post.c tok_added.c tok_bpe.c tok_wordpiece.c ;;
    encode) echo tokenizer.c tok_normalize.c tok_pretok.c tok_post.c tok_added.c tok_bpe.c tok_wordpiece.c tokunicode.c ;;
    text) echo dataset.c ;;
    image) echo image.c imgproc.c ;;
    imgconfig) echo imgproc.c ;;
    jobfile) echo cli.c ;;
    h5input) echo dataset.c dataset_images.c h5out.c ;;
    h5reduce) echo summary.c report.c h5out.c ;;
    h5cnn) echo reduce_cnn.c ;;
    runstate) echo runstate.c ;;
    imagelist) echo preprocess.c dataset_images.c ;;
    h5vision) echo report_vision.c ;;
    *) echo "" ;;
    esac
}
export ATTNSCOPE_ROOT=$PWD
rm -rf $cov/prof && mkdir -p $cov/prof
echo "| target | inputs | files | lines | functions |"
echo "|---|---:|---|---:|---:|"
for b in $cov/fuzz_*; do
    t=${b##*/fuzz_}
    [ -d "$corpus/$t" ] || { echo "| $t | (no $corpus/$t) | | | |"; continue; }
    LLVM_PROFILE_FILE=$cov/prof/$t.%p.profraw "$b" -runs=0 -timeout=10 -rss_limit_mb=2048 "$corpus/$t" >$cov/prof/$t.log 2>&1
    "$llvm/llvm-profdata" merge -sparse $cov/prof/$t.*.profraw -o $cov/prof/$t.profdata || continue
    srcs=$(for f in $(files_of "$t"); do echo src/$f; done)
    # TOTAL columns: regions missed cover  functions missed executed  lines missed cover  branches ...
    "$llvm/llvm-cov" report "$b" -instr-profile=$cov/prof/$t.profdata $srcs | awk -v t="$t" -v n="$(ls "$corpus/$t" | wc -l)" \
        -v fl="$(files_of "$t" | sed 's/\.c//g; s/ /, /g')" \
        '$1 == "TOTAL" {printf "| %s | %d | %s | %s of %d | %s of %d |\n", t, n, fl, $10, $8, $7, $5}'
done
