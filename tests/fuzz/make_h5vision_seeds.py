#!/usr/bin/env python3
"""make_h5vision_seeds.py OUTDIR — the seeds of fuzz_h5vision (tests/fuzz/corpus/h5vision; the
target's header comment gives the byte layout): valid vision runs that reach report_vision and draw
every figure over fixture images (check with FUZZ_VERBOSE=1 build-fuzz/fuzz_h5vision FILE), and
near-valid ones (a short dataset, one declared 2^40 and never stored, attributes off)."""
import os, sys
out = sys.argv[1]
DIM = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6, 8: 7}          # h5build's dim_of index of a small dim

def seed(name, nimg=2, k=1, N=2, L=2, H=2, gh=2, gw=2, npre=1, gkind=2, attrs=(0,) * 6, ds=None, model=1, paths=(0, 1),
         pform=0, tail=b""):
    # h5build: entropy [N, L, H] float32 written; sink_rate [N] float32 written; /samples/length absent; /summary a group
    stats = bytes([2, 8, 0x43, 0, DIM[N], DIM[L], DIM[H], 2, 8, 0x41, 0, DIM[N], 0, 1])
    g0 = (gh - 1) | (gw - 1) << 2 | npre << 4
    v = bytes([g0, gkind]) + bytes(attrs)
    for d in ds or [(2, 0, 0, 0)] * 4:                       # kind, type, shape, layout (+ shape bytes)
        v += bytes(d)
    v += bytes([model, 2 | pform << 3]) + bytes(paths) + tail
    data = bytes([nimg | (k - 1) << 2, len(stats)]) + stats + v
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)

seed("valid_2x2x2_grid2x2")
seed("valid_3x2x3_grid4x4_jpeg_deflate", N=3, L=2, H=3, gh=4, gw=4, npre=0, ds=[(2, 0, 0, 2)] * 4, paths=(2, 0, 1), tail=bytes(range(40)))
seed("valid_specials", ds=[(2, 0, 0, 0x20), (2, 6, 0, 0x20), (2, 7, 0, 0x21), (2, 8, 0, 0x22)], tail=bytes(range(0, 64, 3)))
seed("valid_model_missing_grey", model=5)
seed("valid_vlen_paths", pform=5)
seed("valid_no_token_norm_4x4x4", N=4, L=4, H=4, gh=4, gw=4, ds=[(2, 0, 0, 0)] * 3 + [(0,)], nimg=3, paths=(0, 1, 2, 4))
seed("valid_8_images_4x4_grid", N=8, L=4, H=4, gh=4, gw=3, nimg=3, paths=(0, 1, 2, 3, 4, 5, 6, 7))
seed("text_run_no_vision", gkind=0)
seed("vision_dataset_not_group", gkind=1)
seed("near_cls_rows_short", ds=[(2, 0, 0, 0), (2, 0, 0x80, 0, 5, 0, 0, 0), (2, 0, 0, 0), (2, 0, 0, 0)])
seed("near_rollout_2p40_unstored", ds=[(2, 0, 0, 0), (2, 0, 0, 0), (2, 0, 0x80, 0x10, 0, 7, 7, 0, 0), (2, 0, 0, 0)])
seed("near_grid_attr_huge", attrs=(6, 6, 0, 0, 0, 0))
seed("near_image_size_off", attrs=(0, 0, 0, 6, 0, 0, 0), tail=b"\x02\x01")
seed("near_paths_numbers", pform=6)
seed("near_paths_short", paths=(0,), pform=0x10)
