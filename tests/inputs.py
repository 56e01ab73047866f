"""inputs.py — pre-tokenized inputs for the tests that drive whole runs: random token ids for the
HF fixture bert_tiny (vocabulary 120, 64 positions), written as `attnscope run --input` reads them
(/input_ids and /attention_mask, right-padded to 64)."""
import numpy as np, h5py


def write_input(path, lens, seed=0):
    """One sample per entry of lens (3..64 tokens), ids drawn from [1, 120) with the seed."""
    r = np.random.default_rng(seed)
    ids = np.zeros((len(lens), 64), np.int32)
    mask = np.zeros((len(lens), 64), np.int8)
    for i, l in enumerate(lens):
        ids[i, :l] = r.integers(1, 120, l)
        mask[i, :l] = 1
    with h5py.File(path, "w") as f:
        f["input_ids"] = ids
        f["attention_mask"] = mask


def random_lengths(n, seed=0):
    return np.random.default_rng(seed).integers(3, 65, n)
