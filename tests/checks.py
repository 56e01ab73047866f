"""checks.py — the pass/fail counting the Python test scripts share: check() prints one line per
comparison ("ok   ..." or "FAIL ...") and counts it; summary() prints "N passed, N failed" and
returns the exit status (1 on any failure). SLOW scales the time limits of the tests that detect a
hang or a slow exit: ATTNSCOPE_TEST_SLOW (1 by default; `make sanitize` sets 3, the sanitized
binary runs about that much slower)."""
import os

SLOW = float(os.environ.get("ATTNSCOPE_TEST_SLOW", "1"))
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
