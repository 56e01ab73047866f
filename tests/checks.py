"""checks.py — the pass/fail counting the Python test scripts share: check() prints one line per
comparison ("ok   ..." or "FAIL ...") and counts it; summary() prints "N passed, N failed" and
returns the exit status (1 on any failure). SLOW scales the time limits of the tests that detect a
hang or a slow exit: ATTNSCOPE_TEST_SLOW (1 by default; `make sanitize` sets 3, the sanitized
binary runs about that much slower)."""
import os

SLOW = float(os.environ.get("ATTNSCOPE_TEST_SLOW", "1"))
# strace options for the tests that run attnscope under strace: LeakSanitizer cannot check a traced
# process (it stops the threads with ptrace and dies when strace holds them), so under `make
# sanitize` the traced command alone runs without leak checking; empty otherwise.
STRACE_ENV = ["-E", "ASAN_OPTIONS=" + os.environ["ASAN_OPTIONS"] + ":detect_leaks=0"] if os.environ.get("ASAN_OPTIONS") else []
passed = failed = 0


def check(ok, what):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if ok: passed += 1
    else: failed += 1
    return ok


def summary():
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
