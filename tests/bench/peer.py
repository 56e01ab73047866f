#!/usr/bin/env python3
"""peer.py — the peer of attnscope's benchmark: Hugging Face transformers + statistics in PyTorch.

Times three pipelines on the same model and tokens (tokens.py) for each dtype and shape B x L:
  P0  SDPA forward, no attention returned (the speed of the model alone);
  P1  eager forward with output_attentions=True, then, on the GPU in torch, from the returned
      attentions: entropy, mean distance, locality(w) per (sample, layer, head) and the cosine
      head similarity (Gram of the flattened maps summed over the batch, normalised); the small
      results are copied to the host (one .cpu(), which synchronises);
  P2  P1 + torch.stack(attentions).to(torch.float16).cpu() (pageable host memory by default,
      --pinned copies into a page-locked buffer allocated once before timing).
Warm-up batches are excluded; the timed region is bracketed by torch.cuda.synchronize() and
perf_counter. tokens/s = batches * B * L / seconds.

    peer.py --model bert-base --dtypes fp32,bf16 --shapes 64x128,16x512 --json peer.json
    peer.py --model bert-base --save DIR --save-only      # the model + tokens for attnscope
    peer.py --tiny --dry-run                               # seconds on CPU torch, tiny model

--model bert-base is BertConfig() (12 layers, 768, 12 heads, 3072, vocab 30522) initialised with
torch.manual_seed(--seed); --model DIR loads a checkpoint (e.g. all-MiniLM-L6-v2). --save DIR
writes save_pretrained(DIR, safe_serialization=True) (fp32 weights) and the tokens as
DIR/input_L<L>.h5 (and DIR/input.h5 when one shape is given).
"""
import argparse, json, os, platform, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokens  # noqa: E402

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def parse_shapes(s):
    out = []
    for part in s.split(","):
        b, l = part.lower().split("x")
        out.append((int(b), int(l)))
    return out


def build_model(args, torch, transformers):
    torch.manual_seed(args.seed)
    if args.tiny:
        cfg = transformers.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=128, max_position_embeddings=512)
        model = transformers.BertModel(cfg)
    elif args.model == "bert-base":
        model = transformers.BertModel(transformers.BertConfig())
    else:
        model = transformers.AutoModel.from_pretrained(args.model)
    return model.eval()


def set_attn(model, impl):
    """Switches the attention implementation in place (same weights)."""
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(impl)
    else:
        model.config._attn_implementation = impl
    return model


class Stats:
    """P1's statistics on the device, buffers made once per shape: D = |i-j|, M = (|i-j| <= w)."""

    def __init__(self, torch, L, window, device):
        i = torch.arange(L, device=device)
        self.D = (i[:, None] - i[None, :]).abs().to(torch.float32)       # [L, L]
        self.M = (self.D <= window).to(torch.float32)                    # [L, L]
        self.torch = torch

    def __call__(self, attentions):
        """attentions: tuple of n_layers [B, H, L, L]. Returns one host tensor (synchronises):
        entropy, distance, locality [n_layers, B, H] each, then cosine [n_layers*H, n_layers*H]."""
        torch = self.torch
        nl = len(attentions)
        B, H, L, _ = attentions[0].shape
        # fp32 copy laid out [layers, heads, B, L, L]: the rows for the per-head statistics and,
        # flattened, the [layers*heads, B*L*L] matrix whose Gram is the sum over samples
        Y = torch.empty((nl, H, B, L, L), dtype=torch.float32, device=attentions[0].device)
        ent = torch.empty((nl, B, H), dtype=torch.float32, device=Y.device)
        dist, loc = torch.empty_like(ent), torch.empty_like(ent)
        for l, a in enumerate(attentions):
            Y[l].copy_(a.permute(1, 0, 2, 3))
            p = Y[l]                                                     # [H, B, L, L]
            ent[l] = (-torch.special.xlogy(p, p).sum(-1).mean(-1)).T     # -sum p ln p, 0 ln 0 = 0
            dist[l] = ((p * self.D).sum(-1).mean(-1)).T
            loc[l] = ((p * self.M).sum(-1).mean(-1)).T
        X = Y.view(nl * H, B * L * L)
        G = X @ X.T                                                      # sum_b <A_a, A_b>
        d = G.diagonal().clamp_min(1e-30).sqrt()
        cos = G / (d[:, None] * d[None, :])
        return torch.cat([ent.flatten(), dist.flatten(), loc.flatten(), cos.flatten()]).cpu()


def time_pipeline(torch, model, batches, warmup, fn, device):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    for k in range(warmup):
        fn(batches[k % len(batches)])
    sync()
    t = time.perf_counter()
    for b in batches:
        fn(b)
    sync()
    return time.perf_counter() - t


def run_shape(args, torch, model, dtype_name, B, L, device, vocab):
    # --tokens: as many timed batches as make that many tokens (a sustained run: see --tokens)
    nb = max(1, args.tokens // (B * L)) if args.tokens else args.batches
    n = nb * B
    ids = tokens.make_tokens(args.seed, n, L, vocab)
    batches = [torch.from_numpy(ids[k * B:(k + 1) * B]).to(device=device, dtype=torch.long)
               for k in range(nb)]
    stats = Stats(torch, L, args.window, device)
    host = None
    if args.pinned:
        nl, H = model.config.num_hidden_layers, model.config.num_attention_heads
        host = torch.empty((nl, B, H, L, L), dtype=torch.float16, pin_memory=device.type == "cuda")

    def p0(x):
        model(input_ids=x)

    def p1(x):
        out = model(input_ids=x, output_attentions=True)
        if out.attentions is None or len(out.attentions) != model.config.num_hidden_layers:
            raise RuntimeError("the model returned no attentions with output_attentions=True (eager attention not in use?)")
        stats(out.attentions)
        return out

    def p2(x):
        out = p1(x)
        if host is None:
            torch.stack(out.attentions).to(torch.float16).cpu()
        else:
            host.copy_(torch.stack(out.attentions).to(torch.float16))

    rows = []
    for name, impl, fn in (("P0", "sdpa", p0), ("P1", "eager", p1), ("P2", "eager", p2)):
        if name not in args.pipelines:
            continue
        set_attn(model, impl)
        with torch.inference_mode():
            sec = time_pipeline(torch, model, batches, args.warmup, fn, device)
        tok = nb * B * L
        rows.append({"pipeline": name, "attn_implementation": impl, "dtype": dtype_name, "B": B, "L": L,
                     "batches": nb, "warmup": args.warmup, "tokens": tok, "seconds": sec,
                     "tokens_per_s": tok / sec, "pinned": bool(args.pinned) if name == "P2" else None})
        print(f"  {name} {dtype_name:4s} B={B:3d} L={L:4d}: {tok / sec:12,.0f} tokens/s ({sec:.3f} s, {nb} batches)",
              flush=True)
    del batches, host
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def save(args, torch, model, shapes, vocab):
    os.makedirs(args.save, exist_ok=True)
    model.to(torch.float32).save_pretrained(args.save, safe_serialization=True)
    n = max(args.batches, 1)
    Ls = sorted({L for _, L in shapes})
    for B, L in shapes:
        ids = tokens.make_tokens(args.seed, n * B, L, vocab)
        tokens.write_input(os.path.join(args.save, f"input_L{L}.h5"), ids)
        if len(shapes) == 1:
            tokens.write_input(os.path.join(args.save, "input.h5"), ids)
    print(f"peer: saved the model and tokens (L = {Ls}) to {args.save}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="bert-base", help="'bert-base' (random init, --seed) or a checkpoint directory")
    ap.add_argument("--dtypes", default="fp32,bf16", help="comma list of fp32, bf16, fp16")
    ap.add_argument("--shapes", default="64x128,16x512", help="comma list of BxL")
    ap.add_argument("--pipelines", default="P0,P1,P2")
    ap.add_argument("--batches", type=int, default=10, help="timed batches per pipeline")
    ap.add_argument("--tokens", type=int, default=0,
                    help="time as many batches as make this many tokens per shape (overrides --batches): a run as "
                         "long as attnscope's. An H200 at its 700 W cap drops from 1980 to ~1710 MHz within a "
                         "second of sustained load, so 10 short batches measure a speed no long run keeps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed batches before each pipeline")
    ap.add_argument("--window", type=int, default=3, help="locality window (attnscope's --window default)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--pinned", action="store_true", help="P2 copies into a pinned buffer (default: pageable .cpu())")
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cuda or cpu")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--save", metavar="DIR", help="save_pretrained the model and write the tokens for attnscope")
    ap.add_argument("--save-only", action="store_true", help="with --save: save and exit, no timing")
    ap.add_argument("--tiny", action="store_true", help="a 2-layer 64-wide BERT (tests on CPU)")
    ap.add_argument("--dry-run", action="store_true", help="--tiny, 1 batch, 1 warm-up, shapes 2x16,1x32, fp32 on CPU")
    args = ap.parse_args()
    if args.dry_run:
        args.tiny, args.batches, args.warmup, args.shapes = True, 1, 1, "2x16,1x32"
        if args.device == "auto":
            args.device = "cpu"
        if args.dtypes == "fp32,bf16":
            args.dtypes = "fp32"
    shapes = parse_shapes(args.shapes)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    for d in dtypes:
        if d not in DTYPES:
            sys.exit(f"peer.py: unknown dtype '{d}' (fp32, bf16, fp16)")
    args.pipelines = [p.strip().upper() for p in args.pipelines.split(",")]

    try:
        import torch, transformers
    except ImportError as e:
        sys.exit(f"peer.py: {e}: the peer needs torch and transformers (the GPU host has them)")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          (args.device if args.device != "auto" else "cpu"))
    model = build_model(args, torch, transformers)
    vocab = model.config.vocab_size
    if args.save:
        save(args, torch, model, shapes, vocab)
        if args.save_only:
            return
    meta = {"model": args.model if not args.tiny else "tiny", "seed": args.seed, "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "layers": model.config.num_hidden_layers, "heads": model.config.num_attention_heads,
            "hidden": model.config.hidden_size, "vocab": vocab, "window": args.window,
            "p1_stats": "fp32 on the device: entropy, distance, locality(w), cosine head similarity",
            "p2_copy": "pinned buffer" if args.pinned else "pageable .cpu()",
            "command": " ".join(sys.argv)}
    print(f"peer: {meta['model']} on {meta['gpu']}, torch {meta['torch']}, transformers {meta['transformers']}, "
          f"TF32 matmul {'on' if meta['cuda_matmul_allow_tf32'] else 'off'}", flush=True)
    rows = []
    model.to(device)
    for d in dtypes:
        model.to(getattr(torch, DTYPES[d]))
        for B, L in shapes:
            if L > model.config.max_position_embeddings:
                sys.exit(f"peer.py: L={L} exceeds the model's {model.config.max_position_embeddings} positions")
            rows.extend(run_shape(args, torch, model, d, B, L, device, vocab))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": rows}, f, indent=1)
        print(f"peer: wrote {args.json}")


if __name__ == "__main__":
    main()
