#!/usr/bin/env python3
"""vision_accuracy.py — attnscope's /vision/cls_attention against HF's eager ViT (GPU host).

    vision_accuracy.py DIR N RUN.h5 [RUN.h5 ...]

DIR: vision_peer.py --save's model and pixels.h5; N: the first N images (the runs read DIR/acc.h5,
which this script writes when it is missing: those images' pixel_values). The reference is HF's
ViTModel, attn_implementation="eager", in fp32 (TF32 off); HF's own bf16 model is printed beside
it as the peer's precision. Prints, for each file, the max and mean abs difference of the [CLS]
rows [N, layers, heads, patches] and the last layer's max."""
import os, sys
import h5py, numpy as np, torch, transformers

d, n, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
acc = os.path.join(d, "acc.h5")
if not os.path.exists(acc):
    with h5py.File(os.path.join(d, "pixels.h5")) as f, h5py.File(acc, "w") as g:
        g["pixel_values"] = f["pixel_values"][:n]
    print(f"wrote {acc}: the first {n} images")
    if not runs:
        sys.exit(0)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
px = torch.from_numpy(h5py.File(acc)["pixel_values"][:n]).cuda()


def cls_rows(dtype):
    m = transformers.ViTModel.from_pretrained(d, attn_implementation="eager", torch_dtype=dtype,
                                              add_pooling_layer=False).cuda().eval()
    rows = []
    with torch.inference_mode():
        for i in range(0, n, 64):
            out = m(pixel_values=px[i:i + 64].to(dtype), output_attentions=True)
            rows.append(torch.stack(out.attentions, 1)[:, :, :, 0, 1:].float().cpu())
    return torch.cat(rows).numpy()


ref = cls_rows(torch.float32)


def show(name, x):
    e = np.abs(x.astype(np.float64) - ref)
    print(f"  {name:40s} max abs {e.max():.3g}  mean abs {e.mean():.3g}  last layer's max {e[:, -1].max():.3g}")


print(f"[CLS] rows of {n} images against HF eager fp32:")
show("HF eager bf16 (the peer's precision)", cls_rows(torch.bfloat16))
for r in runs:
    show(r, h5py.File(r)["vision/cls_attention"][:n])
