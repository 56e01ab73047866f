"""att_read.py — /attention of a run file as the tests compare it. Runs store it packed (1-D: sample
i's [layers, heads, n, n] block, n = /samples/length[i], from element /attention_offset[i]); the
tests written for the padded [N, layers, heads, Lmax, Lmax] array get that array back from it, so
they compare the same values as before, and a wrong offset or length shows as a mismatch."""
import numpy as np


def blocks(f):
    """Every sample's block [layers, heads, n, n], in the stored dtype, read by the README's recipe."""
    a = f["attention"]
    L, H = int(a.attrs["n_layers"]), int(a.attrs["n_heads"])
    lens, offs = f["samples/length"][()], f["attention_offset"][()]
    flat = a[()]
    return [flat[o:o + L * H * n * n].reshape(L, H, n, n) for o, n in zip(offs.tolist(), lens.tolist())]


def padded(f, lmax=None):
    """The blocks zero-padded to [N, layers, heads, Lmax, Lmax] (Lmax: /samples/input_ids' width,
    else the longest sample)."""
    b = blocks(f)
    if lmax is None:
        lmax = f["samples/input_ids"].shape[1] if "samples/input_ids" in f else max(x.shape[-1] for x in b)
    L, H = b[0].shape[:2]
    out = np.zeros((len(b), L, H, lmax, lmax), f["attention"].dtype)
    for i, x in enumerate(b):
        n = x.shape[-1]
        out[i, :, :, :n, :n] = x
    return out


def packed_size(f):
    """The elements a packed /attention of f's samples holds: sum of layers·heads·n²."""
    a = f["attention"]
    lens = f["samples/length"][()].astype(np.int64)
    return int(a.attrs["n_layers"]) * int(a.attrs["n_heads"]) * int((lens * lens).sum())
