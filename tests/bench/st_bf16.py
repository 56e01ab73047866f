#!/usr/bin/env python3
"""st_bf16.py — a safetensors checkpoint with every F32 tensor rounded to BF16 (nearest even), so
that a real model fits a GPU-host call (all-MiniLM-L6-v2: 91 MB -> 45 MB). Copies the directory's
other files. Used with tests/bench/gelu_accuracy.sh; NumPy (and h5py with IDS).
  st_bf16.py SRC_DIR DST_DIR [IDS]
IDS: the token ids of a text, one sample a line (`attnscope tokenize --tokenizer SRC_DIR --text F`):
then the BERT word-embedding table keeps only the rows those ids use (MiniLM: 23 MB in all), the
ids are renumbered into DST_DIR/input.h5 (/input_ids, /attention_mask, padded), config.json's
vocab_size follows, and the tokenizer files are left out (they no longer match the ids)."""
import json, os, shutil, struct, sys
import numpy as np

src, dst = sys.argv[1], sys.argv[2]
ids = [list(map(int, l.split())) for l in open(sys.argv[3]) if l.strip()] if len(sys.argv) > 3 else None
keep = sorted({i for row in ids for i in row}) if ids else None
os.makedirs(dst, exist_ok=True)
for name in os.listdir(src):
    p = os.path.join(src, name)
    if os.path.isfile(p) and name != "model.safetensors" and not (ids and name.startswith(("tokenizer", "vocab", "special"))):
        shutil.copy(p, os.path.join(dst, name))
if ids:
    import h5py
    new = {old: k for k, old in enumerate(keep)}
    L = max(map(len, ids))
    a = np.zeros((len(ids), L), np.int32)
    m = np.zeros((len(ids), L), np.int32)
    for r, row in enumerate(ids):
        a[r, :len(row)] = [new[i] for i in row]
        m[r, :len(row)] = 1
    with h5py.File(os.path.join(dst, "input.h5"), "w") as f:
        f["input_ids"], f["attention_mask"] = a, m
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg["vocab_size"] = len(keep)
    json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=1)
raw = open(os.path.join(src, "model.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
data = raw[8 + n:]
out_head, blobs, off = {}, [], 0
for k, v in head.items():
    if k == "__metadata__":
        out_head[k] = v
        continue
    a, b = v["data_offsets"]
    buf = data[a:b]
    if keep and k.endswith("word_embeddings.weight"):        # the rows the ids use, renumbered
        assert v["dtype"] == "F32"
        rows = np.frombuffer(buf, np.float32).reshape(v["shape"])[keep]
        buf, v = rows.tobytes(), dict(v, shape=list(rows.shape))
    if v["dtype"] == "F32":
        u = np.frombuffer(buf, np.uint32).astype(np.uint64)
        u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)   # round to nearest even
        buf, dt = u.tobytes(), "BF16"
    else:
        dt = v["dtype"]
    out_head[k] = {"dtype": dt, "shape": v["shape"], "data_offsets": [off, off + len(buf)]}
    blobs.append(buf)
    off += len(buf)
h = json.dumps(out_head).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(dst, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for b in blobs:
        f.write(b)
print(f"{dst}/model.safetensors: {8 + len(h) + off} bytes")
