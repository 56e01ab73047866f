#!/usr/bin/env python3
"""train_digits.py — the small vision models of attnscope's demo, trained by us: no pretrained ViT or
ResNet ships in a package reachable from our machines, so we train two tiny ones on scikit-learn's
handwritten digits (1,797 8×8 images, shipped inside scikit-learn) and save them in Hugging Face
layout. They are toys for looking at attention maps, not models of natural images.

    python3 analysis/train_digits.py OUTDIR [--epochs 40] [--demo-images 32]

Needs torch, transformers, pillow and scikit-learn. Writes:
  OUTDIR/vit-digits/     ViTForImageClassification (save_pretrained, safetensors) + the
                         ViTImageProcessor's preprocessor_config.json + README.md (what it is, accuracy)
  OUTDIR/resnet-digits/  ResNetForImageClassification + ConvNextImageProcessor config + README.md
  OUTDIR/digits/         the first --demo-images digits of the held-out split as 64×64 grey PNGs
                         (named test_<index>_<label>.png)
The images: each 8×8 digit (ink 0..16) rendered dark on white, 0..255, upsampled to 64×64 with
PIL's bicubic filter, saved as 8-bit grey PNGs; the models see them through their own image
processors (grey → RGB, ViT: bilinear to 32×32; ResNet: 64×64 as they are), in training as at
inference. Split: a fixed permutation (seed 0), 1,497 images to train, 300 held out. Training: AdamW,
batch 64, cosine schedule, random shifts of up to 4 pixels (of 64), CPU or GPU, seed 0.
"""
import argparse, json, os
import numpy as np


def render(digits):
    from PIL import Image
    out = []
    for d in digits:
        g = (255 - np.round(d / 16.0 * 255)).astype(np.uint8)
        out.append(Image.fromarray(g, mode="L").resize((64, 64), Image.BICUBIC))
    return out


def shift(x, torch, gen, max_px):
    """random translation of a batch by whole pixels, filled with white (the background)"""
    n, c, h, w = x.shape
    out = torch.full_like(x, float(x.max()))
    for i in range(n):
        dy, dx = (torch.randint(-max_px, max_px + 1, (2,), generator=gen)).tolist()
        ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
        xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        out[i, :, yd, xd] = x[i, :, ys, xs]
    return out


def train(model, px_train, y_train, px_test, y_test, epochs, torch, max_px, label):
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(dev).train()
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    steps = epochs * ((len(px_train) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    for ep in range(epochs):
        perm = torch.randperm(len(px_train), generator=gen)
        total = 0.0
        for k in range(0, len(perm), 64):
            idx = perm[k:k + 64]
            x = shift(px_train[idx], torch, gen, max_px).to(dev)
            loss = model(pixel_values=x, labels=y_train[idx].to(dev)).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if ep % 10 == 9 or ep == epochs - 1:
            acc = accuracy(model, px_test, y_test, torch, dev)
            print(f"{label} epoch {ep + 1}: train loss {total / len(perm):.4f}, held-out accuracy {acc:.3f}", flush=True)
            model.train()
    model.eval().to("cpu")
    return accuracy(model, px_test, y_test, torch, "cpu")


def accuracy(model, px, y, torch, dev):
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(pixel_values=px[k:k + 256].to(dev)).logits.argmax(-1).cpu() for k in range(0, len(px), 256)])
    return float((pred == y).float().mean())


def card(path, name, arch, acc, extra):
    with open(os.path.join(path, "README.md"), "w") as f:
        f.write(f"# {name}\n\nA {arch} trained by attnscope's `analysis/train_digits.py` on scikit-learn's handwritten "
                f"digits (8×8 images upsampled to 64×64 grey PNGs, dark ink on white), 1,497 training images. "
                f"Held-out accuracy on the other 300: {acc:.3f}. {extra}\n\nA toy for looking at attention and "
                f"feature maps in attnscope's demo, not a model of natural images; random weights would show "
                f"nothing, a pretrained ViT or ResNet is not available from our package sources.\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--demo-images", type=int, default=32)
    args = ap.parse_args()
    import torch, transformers
    from sklearn.datasets import load_digits
    from transformers import (ViTConfig, ViTForImageClassification, ViTImageProcessor, ResNetConfig,
                              ResNetForImageClassification, ConvNextImageProcessor)
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    d = load_digits()
    images, labels = render(d.images), np.asarray(d.target)
    perm = np.random.default_rng(0).permutation(len(images))
    test_idx, train_idx = perm[:300], perm[300:]
    y_train, y_test = torch.tensor(labels[train_idx]), torch.tensor(labels[test_idx])
    os.makedirs(os.path.join(args.out, "digits"), exist_ok=True)
    for k, i in enumerate(test_idx[:args.demo_images]):
        images[i].save(os.path.join(args.out, "digits", f"test_{k:03d}_{labels[i]}.png"))
    id2label = {i: str(i) for i in range(10)}

    # ---- ViT: 32×32 input, patches of 4 (64 patches + CLS), 4 layers of 4 heads of 32 --------------
    vproc = ViTImageProcessor(size={"height": 32, "width": 32}, resample=2, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    px = lambda proc, idx: proc([images[i].convert("RGB") for i in idx], return_tensors="pt")["pixel_values"]
    vit = ViTForImageClassification(ViTConfig(image_size=32, patch_size=4, num_channels=3, hidden_size=128,
                                              num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
                                              hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.0,
                                              num_labels=10, id2label=id2label, label2id={v: k for k, v in id2label.items()}))
    acc_v = train(vit, px(vproc, train_idx), y_train, px(vproc, test_idx), y_test, args.epochs, torch, 2, "vit")
    vdir = os.path.join(args.out, "vit-digits")
    vit.config.hidden_dropout_prob = 0.0
    vit.save_pretrained(vdir, safe_serialization=True)
    vproc.save_pretrained(vdir)
    card(vdir, "vit-digits", "ViT (4 layers, 4 heads of 32, patches of 4 on 32×32)", acc_v,
         "Input: the 64×64 PNGs resized to 32×32 (bilinear) by its ViTImageProcessor.")

    # ---- ResNet: 64×64 input, basic blocks 32-64-128 -------------------------------------------------
    rproc = ConvNextImageProcessor(size={"shortest_edge": 64}, crop_pct=1.0, resample=3, image_mean=[0.5] * 3,
                                   image_std=[0.5] * 3)
    res = ResNetForImageClassification(ResNetConfig(num_channels=3, embedding_size=32, hidden_sizes=[32, 64, 128],
                                                    depths=[1, 1, 1], layer_type="basic", hidden_act="relu",
                                                    num_labels=10, id2label=id2label,
                                                    label2id={v: k for k, v in id2label.items()}))
    acc_r = train(res, px(rproc, train_idx), y_train, px(rproc, test_idx), y_test, args.epochs, torch, 4, "resnet")
    rdir = os.path.join(args.out, "resnet-digits")
    res.save_pretrained(rdir, safe_serialization=True)
    rproc.save_pretrained(rdir)
    card(rdir, "resnet-digits", "ResNet (basic blocks, stages of 32, 64 and 128 channels)", acc_r,
         "Input: the 64×64 PNGs as they are (ConvNextImageProcessor, shortest edge 64, crop_pct 1).")
    with open(os.path.join(args.out, "train_digits.json"), "w") as f:
        json.dump({"vit_accuracy": acc_v, "resnet_accuracy": acc_r, "epochs": args.epochs,
                   "transformers": transformers.__version__, "torch": torch.__version__}, f, indent=1)
    print(f"held-out accuracy: vit {acc_v:.3f}, resnet {acc_r:.3f}")


if __name__ == "__main__":
    main()
