#!/usr/bin/env python3
"""vision_peer.py — the vision benchmark's model, images and peer (GPU host).

ViT-B/16 at 224 x 224 (ViTConfig's defaults: 12 layers, 768 wide, 12 heads, 197 tokens) with random
weights (torch.manual_seed(--seed)), and N random normalised images:

    vision_peer.py --save DIR --images 256        # save_pretrained (fp32) + DIR/pixels.h5, DIR/pixels_u8.h5
    vision_peer.py --batches 16,32,64              # the peer: images/s at each batch size

The peer is what a user of transformers writes for issue 12's outputs: the eager forward with
output_attentions=True, then on the GPU in PyTorch the attention rollout (heads averaged,
(A + I)/2 with rows renormalised, the product over the layers), the [CLS] row of every layer and
head, and the mean attention distance in pixels (patch-centre distances, prefix token left out);
the small results copied to the host. Also the SDPA forward alone (the model's own speed). Warm-up
excluded, timed between torch.cuda.synchronize() calls.
"""
import argparse, os, sys, time


def images_per_second(torch, fn, x, reps):
    """fn(x) timed over reps calls after 2 of warm-up, between torch.cuda.synchronize() calls"""
    with torch.inference_mode():
        for _ in range(2):
            fn(x)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(reps):
            fn(x)
        torch.cuda.synchronize()
        return reps * x.shape[0] / (time.perf_counter() - t)


def build(torch, transformers, seed, impl):
    torch.manual_seed(seed)
    cfg = transformers.ViTConfig()
    cfg._attn_implementation = impl
    with torch.device("cuda"):
        m = transformers.ViTModel(cfg, add_pooling_layer=False)
    return m.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--save", metavar="DIR")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=1, help="--save: pixels.h5 holds the images this many times "
                    "(long runs without the cost of drawing more random numbers)")
    ap.add_argument("--batches", default="16,32,64")
    ap.add_argument("--reps", type=int, default=8, help="timed batches per batch size (a burst of 8 runs at the clocks "
                    "of a cool GPU; vision_sustained.sh times as many images as attnscope's run)")
    ap.add_argument("--only", choices=["peer", "sdpa"], help="time only the peer, or only the SDPA forward")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    import numpy as np, torch, transformers
    if args.save:
        m = build(torch, transformers, args.seed, "eager")
        m.save_pretrained(args.save, safe_serialization=True)
        import h5py
        # random 8-bit images; pixels.h5 holds them rescaled and normalized as ViTImageProcessor
        # does (float32, what the processor returns), pixels_u8.h5 as they are (uint8: attnscope applies
        # the processor's preprocessor_config.json, saved beside the weights)
        # (the slow processor's rescale and normalize in NumPy, as transformers' image_transforms:
        # float64 multiply to float32, then float32 subtract and divide; transformers 5's default
        # processor is the torchvision one)
        open(os.path.join(args.save, "preprocessor_config.json"), "w").write(
            '{"image_processor_type": "ViTImageProcessor", "do_resize": true, "size": {"height": 224, "width": 224}, '
            '"do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true, '
            '"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}')
        u8 = np.random.default_rng(args.seed).integers(0, 256, (args.images, 3, 224, 224), dtype=np.uint8)
        px = (u8.astype(np.float64) * 0.00392156862745098).astype(np.float32)
        px = ((px - np.float32(0.5)) / np.float32(0.5)).astype(np.float32)
        for name, arr in (("pixels.h5", px), ("pixels_u8.h5", u8)):
            with h5py.File(os.path.join(args.save, name), "w") as f:
                ds = f.create_dataset("pixel_values", (args.images * args.repeat, 3, 224, 224), arr.dtype)
                for r in range(args.repeat):
                    ds[r * args.images:(r + 1) * args.images] = arr
        print(f"saved {args.save}: ViT-B/16, {args.images} images x {args.repeat} (float32 and uint8)")
        return
    dt = torch.float32 if args.dtype == "fp32" else torch.bfloat16
    if args.dtype == "fp32":
        torch.backends.cuda.matmul.allow_tf32 = False
    m = build(torch, transformers, args.seed, "eager").to(dt)
    g = 14
    q = torch.arange(g * g, device="cuda")
    yx = torch.stack([q // g, q % g], 1).float()
    dist = 16 * torch.cdist(yx, yx)                         # pixels between patch centres
    eye = torch.eye(197, device="cuda")

    def peer(x):
        out = m(pixel_values=x, output_attentions=True)
        att = torch.stack(out.attentions, 1).float()       # [B, L, H, T, T]
        cls = att[:, :, :, 0, 1:]
        d = (att[:, :, :, 1:, 1:] * dist).sum(-1).mean(-1)
        r = eye.expand(x.shape[0], 197, 197)
        for l in range(att.shape[1]):
            a = (att[:, l].mean(1) + eye) / 2
            a = a / a.sum(-1, keepdim=True)
            r = a @ r
        return cls.cpu(), d.cpu(), r.cpu()

    def sdpa(x):
        m(pixel_values=x)

    print(f"peer: transformers {transformers.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name(0)}, {args.dtype}")
    for name, impl, fn in (("eager + attentions + rollout/CLS/distance", "eager", peer), ("SDPA forward", "sdpa", sdpa)):
        if args.only and args.only != impl.replace("eager", "peer"):
            continue
        m.set_attn_implementation(impl)
        for B in [int(b) for b in args.batches.split(",")]:
            ips = images_per_second(torch, fn, torch.randn(B, 3, 224, 224, device="cuda", dtype=dt), args.reps)
            print(f"  {name:44s} B={B:3d}: {ips:9.1f} images/s ({args.reps * B} images)", flush=True)


if __name__ == "__main__":
    main()
