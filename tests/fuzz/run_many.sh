#!/usr/bin/env bash
# run_many.sh OUTDIR SECONDS JOBS — a long fuzzing campaign on a big machine: every target of
# build-fuzz/ (or $FUZZ_BIN) at once, each with -jobs=JOBS -workers=JOBS -max_total_time=SECONDS
# from its seed corpus, OSS-Fuzz's limits. Keeps OUTDIR/<target>/corpus (the final corpus),
# artifacts/ (crash-, timeout-, oom-, leak- reproducers) and the workers' logs, and writes
# OUTDIR/summary.tsv: target, CPU seconds fuzzed (jobs x seconds), runs summed over the logs,
# crashes, timeouts, OOMs, leak reports, final cov and ft (the largest of the workers').
# Needs only the built binaries, bash, coreutils and awk (no clang, llvm-symbolizer or MPI
# tools: the shared libraries come through LD_LIBRARY_PATH; fuzz_h5reduce calls MPI_Init as a
# singleton, which needs Open MPI's component tree: set OPAL_PREFIX to it when it is not installed).
# A target that does not start is skipped and listed. Exits non-zero when anything was found.
set -u
[ $# -eq 3 ] || { echo "usage: $0 OUTDIR SECONDS JOBS" >&2; exit 2; }
out=$1 secs=$2 jobs=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${FUZZ_BIN:-$root/build-fuzz}
export ATTNSCOPE_ROOT=${ATTNSCOPE_ROOT:-$root}
command -v llvm-symbolizer >/dev/null || export ASAN_OPTIONS=${ASAN_OPTIONS:-symbolize=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
mkdir -p "$out" && out=$(cd "$out" && pwd)
targets=() broken=()
for b in "$bin"/fuzz_*; do     # a missing shared library (or Open MPI tree: OPAL_PREFIX) fails at once
    [ -x "$b" ] || continue
    t=${b##*/fuzz_}
    if "$b" -runs=0 </dev/null >/dev/null 2>"$out/$t.check"; then targets+=("$t"); rm -f "$out/$t.check"
    else broken+=("$t"); echo "fuzz_$t does not run, skipped (its output: $out/$t.check):"; tail -3 "$out/$t.check"; fi
done
[ ${#targets[@]} -gt 0 ] || { echo "no runnable fuzz targets in $bin (make fuzz-build, or set FUZZ_BIN)" >&2; exit 2; }
echo "fuzzing ${targets[*]}: $jobs workers each for $secs s into $out"
for t in "${targets[@]}"; do
    d=$out/$t
    mkdir -p "$d/corpus" "$d/artifacts"
    cp "$root/tests/fuzz/corpus/$t/"* "$d/corpus/" 2>/dev/null
    dict=(); [ -f "$root/tests/fuzz/dict/$t.dict" ] && dict=(-dict="$root/tests/fuzz/dict/$t.dict")
    (cd "$d" && "$bin/fuzz_$t" "${dict[@]}" -jobs="$jobs" -workers="$jobs" -max_total_time="$secs" -rss_limit_mb=2048 \
        -malloc_limit_mb=1024 -timeout=10 -print_final_stats=1 -artifact_prefix="$d/artifacts/" corpus >main.log 2>&1) &
done
wait
printf 'target\tcpu_seconds\truns\tcrashes\ttimeouts\tooms\tleaks\tcov\tft\tcorpus_files\n' >"$out/summary.tsv"
bad=0
for t in "${targets[@]}"; do
    d=$out/$t
    n() { ls "$d/artifacts" | grep -c "^$1-"; }
    c=$(n crash) to=$(n timeout) o=$(n oom) l=$(n leak)
    stats=$(cat "$d"/fuzz-*.log 2>/dev/null | awk '
        /stat::number_of_executed_units/ {runs += $2}
        /^#[0-9]+.*cov: / {for (i = 1; i < NF; i++) {if ($i == "cov:" && $(i+1) > cov) cov = $(i+1); if ($i == "ft:" && $(i+1) > ft) ft = $(i+1)}}
        END {printf "%d\t%d\t%d", runs, cov, ft}')
    runs=${stats%%$'\t'*} covft=${stats#*$'\t'}
    printf '%s\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t%d\n' "$t" $((jobs * secs)) "$runs" "$c" "$to" "$o" "$l" "$covft" \
        "$(ls "$d/corpus" | wc -l)" >>"$out/summary.tsv"
    [ $((c + to + o + l)) -eq 0 ] || bad=1
done
for t in "${broken[@]}"; do printf '%s\tdid not run\n' "$t" >>"$out/summary.tsv"; bad=1; done
column -t -s $'\t' "$out/summary.tsv" 2>/dev/null || cat "$out/summary.tsv"
[ "$bad" -eq 0 ] && echo "no findings" || echo "FINDINGS (reproducers in $out/*/artifacts/) or targets that did not run"
exit "$bad"
