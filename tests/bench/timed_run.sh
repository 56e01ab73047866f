# timed_run.sh — sourced by the bench scripts: an attnscope run with every output line stamped with
# its arrival time, and its tokens/s without the load (model, input), as bench.py's "load excl.":
# from the start line ("attnscope V: N samples, M tokens, ...") to the closing line ("wrote ...").
#   timed_run LOG cmd...   runs cmd (stdout and stderr) into LOG, one "epoch-seconds line" per line
#   tps_excl LOG           prints those tokens/s (nothing when a line is missing)
#   closing_line LOG       prints the closing line, or the last error line
timed_run() {
  local log=$1; shift
  "$@" 2>&1 | while IFS= read -r l; do echo "$(date +%s.%N) $l"; done > "$log"
}
tps_excl() {
  python3 - "$1" <<'PY'
import re, sys
t0 = t1 = n = None
for l in open(sys.argv[1]):
    t, _, rest = l.partition(" ")
    m = re.match(r"attnscope \S+: (\d+) samples, (\d+) tokens", rest)
    if m: t0, n = float(t), int(m.group(2))
    if re.search(r"wrote \S+: \d+ samples", rest): t1 = float(t)
print(f"{n / (t1 - t0):.0f}" if t0 and t1 and t1 > t0 else "")
PY
}
closing_line() { grep -E "wrote|rror|memory" "$1" | tail -1 | cut -d' ' -f2-; }
