#!/usr/bin/env python3
"""Replays every committed fuzz input once: the seed corpora (tests/fuzz/corpus/<target>/) and
the reproducers of fixed findings (tests/fuzz/regress/<target>/), through the libFuzzer targets
built by `make fuzz-build` (ASan + UBSan, tests/fuzz/fuzz.mk), with OSS-Fuzz's limits. A fast
check that no input that once crashed a parser (tests/fuzz/FINDINGS.md) crashes it again.

Needs clang (Debian package `clang`, installed by `make deps`): without it this test fails and
says so. Prints one line per target (inputs replayed, result); exits non-zero on any failure."""
import os, shutil, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUZZ = os.path.join(ROOT, "tests/fuzz")
LIMITS = ["-rss_limit_mb=2048", "-malloc_limit_mb=1024", "-timeout=10"]


def main():
    if not shutil.which("clang"):
        check(False, "clang is needed to build the fuzz targets: install the Debian package clang (make deps does)")
        return summary()
    b = subprocess.run(["make", "--no-print-directory", "-j2", "fuzz-build"], cwd=ROOT, capture_output=True, text=True)
    if not check(b.returncode == 0, "make fuzz-build"):
        print(b.stdout[-3000:], b.stderr[-3000:])
        return summary()
    env = dict(os.environ, ATTNSCOPE_ROOT=ROOT, UBSAN_OPTIONS="print_stacktrace=1")
    sym = shutil.which("llvm-symbolizer") or "/usr/lib/llvm-14/bin/llvm-symbolizer"
    if os.path.exists(sym): env["ASAN_SYMBOLIZER_PATH"] = sym
    targets = sorted(f[len("fuzz_"):-2] for f in os.listdir(FUZZ) if f.startswith("fuzz_") and f.endswith(".c") and f != "fuzz_common.c")
    for t in targets:
        files = []
        for sub in ("corpus", "regress"):
            d = os.path.join(FUZZ, sub, t)
            if os.path.isdir(d): files += sorted(os.path.join(d, f) for f in os.listdir(d))
        if not files:
            check(False, f"{t}: no committed inputs in tests/fuzz/corpus/{t}/")
            continue
        r = subprocess.run([os.path.join(ROOT, "build-fuzz", "fuzz_" + t)] + LIMITS + files, cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
        if not check(r.returncode == 0, f"{t}: {len(files)} committed inputs replayed, exit {r.returncode}"):
            print("\n".join(l for l in r.stderr.splitlines() if "Running:" in l or "ERROR" in l or "runtime error" in l
                            or "SUMMARY" in l or "#0 " in l or "#1 " in l or "#2 " in l)[-4000:])
    return summary()


if __name__ == "__main__":
    sys.exit(main())
