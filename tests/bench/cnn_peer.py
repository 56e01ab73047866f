#!/usr/bin/env python3
"""cnn_peer.py — the CNN benchmark's model, images and peer (GPU host).

ResNet-50 (transformers' ResNetConfig() defaults: bottleneck, 3-4-6-3, 224 x 224) with random
weights (torch.manual_seed(--seed)), and N random normalised images:

    cnn_peer.py --save DIR --images 512      # save_pretrained (fp32) + DIR/pixels.h5
    cnn_peer.py --batches 16,32,64,128       # the peer: images/s at each batch size

The peer is what a user of transformers writes for attnscope's always-stored CNN outputs: the
forward with output_hidden_states=True, then per image, stage and channel on the GPU in PyTorch
the mean activation, the fraction of positions > 0 and the spatial entropy of max(x, 0) normalised
to sum 1, copied to the host. Warm-up excluded, timed between torch.cuda.synchronize() calls;
fp32 with TF32 off.
"""
import argparse, os
from vision_peer import images_per_second   # same folder: the timing of both image benchmarks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--save", metavar="DIR")
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--batches", default="16,32,64,128")
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    import numpy as np, torch, transformers
    torch.manual_seed(args.seed)
    if args.save:
        m = transformers.ResNetModel(transformers.ResNetConfig()).eval()
        m.save_pretrained(args.save, safe_serialization=True)
        import h5py
        px = np.random.default_rng(args.seed).standard_normal((args.images, 3, 224, 224)).astype(np.float32)
        with h5py.File(os.path.join(args.save, "pixels.h5"), "w") as f:
            f["pixel_values"] = px
        print(f"saved {args.save}: ResNet-50, {args.images} images")
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with torch.device("cuda"):
        m = transformers.ResNetModel(transformers.ResNetConfig()).eval()

    def peer(x):
        hs = m(pixel_values=x, output_hidden_states=True).hidden_states
        outs = []
        for h in hs:
            f = h.flatten(2)                                    # [B, C, h·w]
            pos = f.clamp(min=0)
            p = pos / pos.sum(-1, keepdim=True)
            ent = -(p * torch.log(p.clamp(min=1e-30))).sum(-1)
            outs.append(torch.stack([f.mean(-1), (f > 0).float().mean(-1), ent]).cpu())
        return outs

    print(f"peer: transformers {transformers.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name(0)}, fp32")
    for B in [int(b) for b in args.batches.split(",")]:
        ips = images_per_second(torch, peer, torch.randn(B, 3, 224, 224, device="cuda"), args.reps)
        print(f"  forward + hidden states + channel statistics  B={B:3d}: {ips:9.1f} images/s", flush=True)


if __name__ == "__main__":
    main()
