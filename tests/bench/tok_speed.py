#!/usr/bin/env python3
"""tok_speed.py — tokenizer throughput, attnscope against Hugging Face `tokenizers`, one core each.

    tok_speed.py --attnscope build-cuda/attnscope [--mb 16] [--tokenizers NAME=PATH ...]

The corpus: the repository's multilingual texts (tests/fixtures/bpe/train.txt and heldout.txt:
English, Chinese, Japanese, Korean, accents, emoji, URLs, numbers, code, runs of spaces and tabs;
jobs/demo_corpus.txt; tests/fixtures/tokenizer_corpus.txt) repeated to --mb megabytes, one input
per line. Repetition lets both sides' word caches hit as on a real corpus with a Zipf vocabulary;
both have one (HF's BPE cache; attnscope's word cache).

attnscope: `attnscope tokenize --tokenizer PATH --text CORPUS > FILE`, wall clock of the whole
process (loading the tokenizer, reading, writing the ids as text included), pinned to one core
with taskset, best of --reps. HF: Tokenizer.from_file(PATH) (load excluded), then
encode_batch(lines) with no padding or truncation (as attnscope tokenize) and RAYON_NUM_THREADS=1 (one thread; the batch call avoids a Python call
per line), best of --reps; ids written nowhere. Both sides' ids are compared line by line: a
speed of a tokenizer that differs is not reported as a result.
"""
import argparse, os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXTS = ["tests/fixtures/bpe/train.txt", "tests/fixtures/bpe/heldout.txt", "jobs/demo_corpus.txt",
         "tests/fixtures/tokenizer_corpus.txt"]
DEFAULT = ["gpt2=tests/fixtures/bpe/gpt2/tokenizer.json", "llama3=tests/fixtures/bpe/llama3/tokenizer.json",
           "qwen2=tests/fixtures/bpe/qwen2/tokenizer.json", "llama2-metaspace=tests/fixtures/bpe/llama2/tokenizer.json"]


def corpus(mb):
    lines = []
    for t in TEXTS:
        with open(os.path.join(ROOT, t), encoding="utf-8") as f:
            lines += [l for l in f.read().split("\n") if l]
    out, size = [], 0
    while size < mb * 1e6:
        for l in lines:
            out.append(l)
            size += len(l.encode()) + 1
    return out, size


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attnscope", default="build/attnscope")
    ap.add_argument("--mb", type=float, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--core", type=int, default=2, help="the core both sides are pinned to")
    ap.add_argument("--tokenizers", nargs="*", default=DEFAULT, help="NAME=PATH to a tokenizer.json")
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["OMP_NUM_THREADS"] = "1"
    os.sched_setaffinity(0, {args.core})
    import tokenizers
    lines, size = corpus(args.mb)
    print(f"corpus: {len(lines)} lines, {size / 1e6:.1f} MB; tokenizers {tokenizers.__version__}; one core (#{args.core})")
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "corpus.txt")
        with open(text, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        for spec in args.tokenizers:
            name, path = spec.split("=", 1)
            path = os.path.join(ROOT, path) if not os.path.isabs(path) else path
            ours, out = None, os.path.join(tmp, "ids.txt")
            for _ in range(args.reps):
                t = time.perf_counter()
                with open(out, "w") as f:
                    r = subprocess.run(["taskset", "-c", str(args.core), args.attnscope, "tokenize", "--tokenizer", path,
                                        "--text", text], stdout=f, stderr=subprocess.PIPE, text=True)
                dt = time.perf_counter() - t
                if r.returncode:
                    sys.exit(f"{name}: attnscope tokenize failed: {r.stderr.strip()}")
                ours = dt if ours is None else min(ours, dt)
            tok = tokenizers.Tokenizer.from_file(path)
            tok.no_padding()                       # as `attnscope tokenize`: each line whole, unpadded
            tok.no_truncation()
            hf = None
            for _ in range(args.reps):
                t = time.perf_counter()
                enc = tok.encode_batch(lines)
                dt = time.perf_counter() - t
                hf = dt if hf is None else min(hf, dt)
            with open(out) as f:
                got = f.read().split("\n")
            same = sum(1 for i, e in enumerate(enc) if i < len(got) and got[i] == " ".join(map(str, e.ids)))
            verdict = "identical" if same == len(lines) else f"DIFFER on {len(lines) - same} lines: speed not a result"
            print(f"  {name:17s} attnscope {size / 1e6 / ours:6.2f} MB/s  HF tokenizers {size / 1e6 / hf:6.2f} MB/s  "
                  f"ratio {hf / ours:5.2f}x  ids {verdict}", flush=True)


if __name__ == "__main__":
    main()
