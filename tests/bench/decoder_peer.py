#!/usr/bin/env python3
"""decoder_peer.py — the decoder benchmark's model, tokens and peer (GPU host).

A Llama-3.2-1B-sized LlamaModel (the published config: 16 layers, hidden 2048, 32 query heads of
64, 8 kv heads, SwiGLU 8192, vocab 128256, rope_theta 500000 with llama3 scaling factor 32, tied
embeddings) with random weights (torch.manual_seed(--seed), transformers' own init) in bf16:

    decoder_peer.py --save DIR --lengths 2048 --samples 256     # save_pretrained (bf16) + tokens
    decoder_peer.py --lengths 2048 --batches 1,2,4,8,16          # the peer: tokens/s, peak memory

The peer is the model's own speed: the SDPA forward (attn_implementation="sdpa", use_cache=False,
no attentions returned) at every batch size of the sweep, so that its best batch is known; with
--eager also the eager forward with output_attentions=True (what attention tools call). Warm-up
excluded; the timed region is bracketed by torch.cuda.synchronize(); peak memory is
torch.cuda.max_memory_allocated() over the timed batches, weights included. Tokens: tokens.py's
make_tokens (ids uniform in [1000, vocab)), full-length rows; the peer times the first rows of the
file attnscope reads.
"""
import argparse, json, os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokens  # noqa: E402


def llama_1b_config(transformers):
    return transformers.LlamaConfig(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072,
        rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True, hidden_act="silu",
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192},
        bos_token_id=128000, eos_token_id=128001)


def build(torch, transformers, seed, impl):
    torch.manual_seed(seed)
    cfg = llama_1b_config(transformers)
    cfg._attn_implementation = impl
    with torch.device("cuda"):
        model = transformers.LlamaModel(cfg)
    return model.to(torch.bfloat16).eval()


def time_forward(torch, model, ids, B, reps, warmup, attentions):
    n = ids.shape[0] // B
    xs = [torch.from_numpy(ids[k * B:(k + 1) * B]).to("cuda", torch.long) for k in range(n)]
    with torch.inference_mode():
        for k in range(warmup):
            model(input_ids=xs[k % n], use_cache=False, output_attentions=attentions)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        for k in range(reps):
            out = model(input_ids=xs[k % n], use_cache=False, output_attentions=attentions)
            if attentions and (out.attentions is None or out.attentions[0] is None):
                raise RuntimeError("no attentions returned with output_attentions=True")
            del out
        torch.cuda.synchronize()
        sec = time.perf_counter() - t
    return sec, torch.cuda.max_memory_allocated()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--save", metavar="DIR", help="save_pretrained (bf16 safetensors) and the tokens, then exit")
    ap.add_argument("--lengths", default="2048", help="comma list of sequence lengths")
    ap.add_argument("--samples", type=int, default=256, help="rows of each token file (--save)")
    ap.add_argument("--batches", default="1,2,4,8,16", help="the peer's batch sizes (a sweep)")
    ap.add_argument("--tokens", type=int, default=262144, help="tokens timed per batch size (at least one batch)")
    ap.add_argument("--eager", action="store_true", help="also time eager + output_attentions at the smallest batch")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    import torch, transformers
    Ls = [int(x) for x in args.lengths.split(",")]
    vocab = llama_1b_config(transformers).vocab_size
    if args.save:
        model = build(torch, transformers, args.seed, "sdpa")
        model.save_pretrained(args.save, safe_serialization=True)
        for L in Ls:
            tokens.write_input(os.path.join(args.save, f"input_L{L}.h5"), tokens.make_tokens(args.seed, args.samples, L, vocab))
        n = sum(p.numel() for p in model.parameters())
        print(f"saved {args.save}: {n / 1e9:.3f}B parameters (bf16), tokens for L = {Ls}, {args.samples} rows each")
        return
    gpu = torch.cuda.get_device_name(0)
    print(f"peer: transformers {transformers.__version__}, torch {torch.__version__}, {gpu}", flush=True)
    rows = []
    model = build(torch, transformers, args.seed, "sdpa")
    for L in Ls:
        for B in [int(x) for x in args.batches.split(",")]:
            reps = max(1, args.tokens // (B * L))
            ids = tokens.make_tokens(args.seed, B * min(reps, 8), L, vocab)
            try:
                sec, peak = time_forward(torch, model, ids, B, reps, 2, False)
            except torch.cuda.OutOfMemoryError:
                print(f"  SDPA bf16 B={B:3d} L={L:5d}: out of memory", flush=True)
                torch.cuda.empty_cache()
                continue
            tok = reps * B * L
            rows.append({"pipeline": "sdpa", "B": B, "L": L, "tokens_per_s": tok / sec, "peak_bytes": peak, "seconds": sec})
            print(f"  SDPA bf16 B={B:3d} L={L:5d}: {tok / sec:12,.0f} tokens/s, peak {peak / 2**30:6.2f} GiB "
                  f"({reps} batches, {sec:.2f} s)", flush=True)
            torch.cuda.empty_cache()
        best = max((r for r in rows if r["L"] == L), key=lambda r: r["tokens_per_s"], default=None)
        if best:
            print(f"  best SDPA L={L}: B={best['B']} {best['tokens_per_s']:,.0f} tokens/s, peak {best['peak_bytes'] / 2**30:.2f} GiB")
    if args.eager:
        model.set_attn_implementation("eager")
        for L in Ls:
            B = int(args.batches.split(",")[0])
            ids = tokens.make_tokens(args.seed, B, L, vocab)
            try:
                sec, peak = time_forward(torch, model, ids, B, 2, 1, True)
            except torch.cuda.OutOfMemoryError:
                print(f"  eager+attentions bf16 B={B} L={L}: out of memory", flush=True)
                torch.cuda.empty_cache()
                continue
            rows.append({"pipeline": "eager", "B": B, "L": L, "tokens_per_s": 2 * B * L / sec, "peak_bytes": peak})
            print(f"  eager+attentions bf16 B={B:3d} L={L:5d}: {2 * B * L / sec:12,.0f} tokens/s, peak {peak / 2**30:6.2f} GiB")
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gpu": gpu, "transformers": transformers.__version__, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
