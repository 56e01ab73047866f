#!/usr/bin/env python3
"""attnscope_summary.py — read an attnscope HDF5 output file and print or export what it holds.

Subcommands:
  info FILE                 root attributes, every dataset (shape, dtype), the model config's sizes
  sample FILE I [--layer L --head H]
                            sample I (0-based row of /samples): source line, length, tokens, the
                            [layers x heads] entropy table; with --layer/--head and /attention
                            stored, each token's three most attended tokens
  csv FILE OUT.csv          long table: sample, layer, head, entropy, length (pandas if installed)
  summary FILE [--stat S] [--top N]
                            per statistic: the N highest and lowest heads by /summary/<S>_mean
                            (± <S>_std); /summary/sink_rate_mean; the most similar and most
                            different head pairs by /summary/head_similarity_js_mean
  heads FILE --stat S       the [layers x heads] table of <S>_mean ± <S>_std (+ <S>_group_mean)
  export FILE OUT.csv|OUT.parquet
                            long table: sample, layer, head, one column per /stats/<S> present
  exemplars FILE --stat S --layer L --head H
                            the samples in /summary/exemplars_<S> for that head: value, text

Invariant: this tool only reads. Every number it prints comes from the file as the C code wrote
it (entropy from /stats/entropy, attention weights from /attention, dataset means, stds and
similarities from /summary); the only work done here is indexing, sorting stored values to pick
the largest or smallest (top-3 weights of one row, top/bottom heads, head pairs), and formatting.
Errors (missing file or dataset, bad index) print one line naming the file and exit 1.
"""
import argparse
import json
import os
import signal
import sys

import numpy as np

try:
    import h5py
except ImportError:  # a clear message instead of a traceback
    sys.exit("attnscope_summary: h5py is not installed (pip install h5py numpy)")

# Sizes worth showing from a Hugging Face config.json, in this order, when present.
CONFIG_KEYS = ("model_type", "architectures", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "intermediate_size", "hidden_act", "max_position_embeddings", "vocab_size",
               "type_vocab_size", "layer_norm_eps", "pad_token_id")
# Long text attributes summarised rather than dumped by `info`.
LONG_ATTRS = ("config_json", "weights_sha256")
# The per-head statistics, in the C code's order (src/stats.c stats_names): /stats/<s> [N, L, H].
STATS = ("entropy", "entropy_norm", "distance", "locality", "attn_cls", "attn_sep", "attn_punct",
         "attn_self", "attn_prev", "attn_next", "sink_importance")
# Figure and heading titles (src/stats.c stats_titles); units come from the file's `units` attributes.
TITLES = dict(zip(STATS, (
    "Attention entropy", "Normalised attention entropy", "Mean attention distance", "Local attention mass",
    "Attention to the first token ([CLS]/BOS)", "Attention to [SEP]/EOS", "Attention to punctuation",
    "Attention to the token itself", "Attention to the previous token", "Attention to the next token",
    "Sink importance of the first token")))
REDUCE_HINT = "written by `attnscope reduce FILE`"


class Fail(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def attr_value(v):
    """HDF5 attribute -> Python value (str for strings, int/float for scalars)."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v[()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def attrs_of(f):
    return {k: attr_value(f.attrs[k]) for k in f.attrs}


def need(f, name, hint=""):
    """The dataset `name` of f, or Fail naming the file and the missing dataset."""
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise Fail(f"{f.filename}: no dataset {name}" + (f" ({hint})" if hint else ""))
    return obj


def attention_block(f, i, n):
    """Sample i's attention [layers, heads, n, n] (n = /samples/length[i]). /attention is packed:
    every sample's block one after another, sample i's from element /attention_offset[i]; files
    written before that hold the padded [N, layers, heads, Lmax, Lmax] array, read as well."""
    att = need(f, "/attention", "run attnscope with --save-attention to store it")
    if att.ndim == 5:
        return att[i, :, :, :n, :n]
    if att.ndim != 1:
        raise Fail(f"{f.filename}: /attention has {att.ndim} dimensions, expected 1 (packed) or 5 (padded)")
    L, H = int(att.attrs["n_layers"]), int(att.attrs["n_heads"])
    o = int(need(f, "/attention_offset", "a packed /attention needs it")[i])
    if o < 0 or o + L * H * n * n > att.shape[0]:
        raise Fail(f"{f.filename}: /attention_offset[{i}] = {o}: the sample's block lies outside /attention")
    return att[o:o + L * H * n * n].reshape(L, H, n, n)


def open_h5(path):
    if not os.path.exists(path):
        raise Fail(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise Fail(f"{path}: not a readable HDF5 file ({e})")


def dtype_text(ds):
    """Readable dtype: strings say their encoding and width instead of numpy's |S16."""
    info = h5py.check_string_dtype(ds.dtype)
    if info is not None:
        width = "variable" if info.length is None else str(info.length)
        return f"string[{width}] {info.encoding}"
    return str(ds.dtype)


def entropy_of(f):
    """/stats/entropy [N, layers, heads], checked against the file's own n_samples/n_layers/n_heads."""
    ds = need(f, "/stats/entropy", "is this an attnscope output file?")
    if ds.ndim != 3:
        raise Fail(f"{f.filename}: /stats/entropy has {ds.ndim} dimensions, expected 3 [samples, layers, heads]")
    a = attrs_of(f)
    for i, key in enumerate(("n_samples", "n_layers", "n_heads")):
        if key in a and int(a[key]) != ds.shape[i]:
            raise Fail(f"{f.filename}: /stats/entropy shape {ds.shape} disagrees with attribute {key} = {a[key]}")
    return ds


def dims_of(f):
    """(layers, heads) from the root attributes, or from /stats/entropy, or None when unknown."""
    a = attrs_of(f)
    if "n_layers" in a and "n_heads" in a:
        return int(a["n_layers"]), int(a["n_heads"])
    ds = f.get("/stats/entropy")
    return tuple(ds.shape[1:3]) if isinstance(ds, h5py.Dataset) and ds.ndim == 3 else None


def check_stat_name(f, s):
    """Fail unless s is one of STATS or has /stats/<s> or /summary/<s>_mean in the file."""
    if s in STATS or f"/stats/{s}" in f or f"/summary/{s}_mean" in f:
        return s
    raise Fail(f"unknown statistic {s!r} (known: {', '.join(STATS)})")


def head_table(f, name, ndim=2, hint=REDUCE_HINT):
    """Dataset `name` of shape [L, H, ...] read whole, or None when absent; Fail on a wrong shape."""
    obj = f.get(name)
    if obj is None:
        return None
    if not isinstance(obj, h5py.Dataset) or obj.ndim != ndim:
        raise Fail(f"{f.filename}: {name} should be a {ndim}-d dataset [layers, heads, ...]")
    lh = dims_of(f)
    if lh is not None and tuple(obj.shape[:2]) != lh:
        raise Fail(f"{f.filename}: {name} has shape {obj.shape}, expected [{lh[0]}, {lh[1]}, ...] "
                   "(attributes n_layers, n_heads)")
    return obj[()]


def units_of(f, s):
    """The `units` attribute of /stats/<s> (or of /summary/<s>_mean), '' when neither has one."""
    for name in (f"/stats/{s}", f"/summary/{s}_mean"):
        obj = f.get(name)
        if obj is not None and "units" in obj.attrs:
            return str(attr_value(obj.attrs["units"]))
    return ""


def head_name(a, H):
    """Head index a = l·H + h (the similarity matrices' order) -> 'L<l> H<h>'."""
    return f"L{a // H} H{a % H}"


def order_desc(v):
    """Indices of the flat array v, largest first, ties to the lower index, NaN last."""
    v = np.asarray(v, np.float64).ravel()
    return np.lexsort((np.arange(v.size), -v, np.isnan(v)))


def order_asc(v):
    """Indices of the flat array v, smallest first, ties to the lower index, NaN last."""
    v = np.asarray(v, np.float64).ravel()
    return np.lexsort((np.arange(v.size), v, np.isnan(v)))


def sample_text(f, i):
    """Sample i's tokens joined by spaces (/samples/tokens, up to /samples/length), or its input ids."""
    n = int(need(f, "/samples/length")[i])
    if "/samples/tokens" in f:
        return " ".join(f["/samples/tokens"].asstr()[i, :n])
    return "(ids) " + " ".join(str(x) for x in need(f, "/samples/input_ids")[i, :n])


# ---- info --------------------------------------------------------------------------------------

def cmd_info(args):
    with open_h5(args.file) as f:
        a = attrs_of(f)
        print(f"file: {args.file}")
        print("attributes:")
        width = max((len(k) for k in a), default=0)
        for k in sorted(a):
            v = a[k]
            if k in LONG_ATTRS and isinstance(v, str):
                v = f"({len(v)} chars; see below)"
            print(f"  {k:<{width}} = {v}")
        print("datasets:")
        rows = []
        f.visititems(lambda name, obj: rows.append(("/" + name, obj)) if isinstance(obj, h5py.Dataset) else None)
        width = max((len(n) for n, _ in rows), default=0)
        for name, ds in rows:
            shape = "[" + ", ".join(str(d) for d in ds.shape) + "]"
            print(f"  {name:<{width}}  {shape:<24} {dtype_text(ds)}")
        print_groups(f)
        if "config_json" in a:
            print("model config (config_json):")
            try:
                cfg = json.loads(a["config_json"])
            except (TypeError, ValueError) as e:
                raise Fail(f"{args.file}: attribute config_json is not valid JSON ({e})")
            for k in CONFIG_KEYS:
                if k in cfg:
                    print(f"  {k:<24} = {cfg[k]}")
        if "weights_sha256" in a:
            print("weights (sha256):")
            try:
                for name, digest in json.loads(a["weights_sha256"]).items():
                    print(f"  {name}: {digest}")
            except (TypeError, ValueError, AttributeError):
                print(f"  {a['weights_sha256']}")
        print_contents(f)
        if isinstance(f.get("/summary/entropy_mean"), h5py.Dataset):
            print("summary (/summary/entropy_mean, written by `attnscope reduce`), nats:")
            print_table(f["/summary/entropy_mean"][()], args.digits)
    return 0


def print_groups(f):
    """Every group with its attributes (/stats: window, topk, sink_eps, causal; /summary: n_samples)."""
    groups = []
    f.visititems(lambda name, obj: groups.append("/" + name) if isinstance(obj, h5py.Group) else None)
    print("groups:")
    for name in groups:
        g = f[name]
        n = sum(isinstance(g[k], h5py.Dataset) for k in g)
        at = ", ".join(f"{k} = {attr_value(g.attrs[k])}" for k in sorted(g.attrs))
        print(f"  {name}  ({n} datasets{'; ' + at if at else ''})")


def print_contents(f):
    """Which statistics the file has: units and definition of each /stats/<s>, and what /summary holds."""
    present = [s for s in STATS if isinstance(f.get(f"/stats/{s}"), h5py.Dataset)]
    if present:
        print("statistics (/stats/<s>: units; definition):")
        w = max(len(s) for s in present)
        for s in present:
            at = f[f"/stats/{s}"].attrs
            defn = attr_value(at["definition"]) if "definition" in at else "(no definition attribute)"
            print(f"  {s:<{w}}  {units_of(f, s) or '(no units attribute)'}; {defn}")
    missing = [s for s in STATS if s not in present]
    if missing:
        print(f"statistics not in the file: {', '.join(missing)}")
    if not isinstance(f.get("/summary"), h5py.Group):
        print(f"/summary: no such group ({REDUCE_HINT})")
        return
    print("/summary, per statistic:" + ("" if any(f"/summary/{s}_mean" in f for s in STATS) else " none"))
    for s in STATS:
        parts = [p for p in ("mean", "std", "hist", "group_mean") if f"/summary/{s}_{p}" in f]
        parts += ["exemplars"] if f"/summary/exemplars_{s}" in f else []
        if parts:
            print(f"  {s}: {' '.join(parts)}")
    other = [n for n in ("sink_rate_mean", "head_similarity_js_sum", "head_similarity_js_mean",
                         "head_similarity_cos", "head_order_clustered") if f"/summary/{n}" in f]
    print(f"/summary, dataset level: {' '.join(other) if other else 'none'}")


# ---- sample ------------------------------------------------------------------------------------

def print_table(t, digits, col="h"):
    """[layers, heads] table: one row per layer, one column per head (col: column label prefix)."""
    w = digits + 4
    print("  layer " + "".join(f"{col + str(h):>{w}}" for h in range(t.shape[1])))
    for l in range(t.shape[0]):
        print(f"  {l:>5} " + "".join(f"{float(x):>{w}.{digits}f}" for x in t[l]))


def source_line(path, row):
    """Line `row` (1-based) of the text file, or None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            for n, line in enumerate(fh, 1):
                if n == row:
                    return line.rstrip("\r\n")
    except OSError:
        return None
    return None


def cmd_sample(args):
    if (args.layer is None) != (args.head is None):
        raise Fail("--layer and --head go together")
    with open_h5(args.file) as f:
        ent = entropy_of(f)
        N, NL, NH = ent.shape
        if not 0 <= args.index < N:
            raise Fail(f"{args.file}: sample {args.index} out of range (the file has {N} samples, 0..{N - 1})")
        i = args.index
        a = attrs_of(f)
        n = int(need(f, "/samples/length")[i])
        n_full = int(f["/samples/length_untruncated"][i]) if "/samples/length_untruncated" in f else n
        row = int(need(f, "/samples/source_row")[i])
        kind = a.get("input_kind", "?")
        print(f"sample {i} of {N}  (file {args.file})")
        print(f"source: {a.get('input', '?')} ({kind}) row {row}")
        if kind == "text":
            path = args.text or a.get("input", "")
            text = source_line(path, row) if path else None
            print(f"line:   {text}" if text is not None else f"line:   (cannot read line {row} of {path!r}; give --text FILE)")
        print(f"length: {n} tokens" + (f" (truncated from {n_full})" if n_full != n else ""))
        if "/samples/tokens" in f:
            toks = list(f["/samples/tokens"].asstr()[i, :n])
            print("tokens: " + " ".join(f"{k}:{t}" for k, t in enumerate(toks)))
        else:  # pre-tokenized input without a tokenizer: only ids
            toks = [str(x) for x in need(f, "/samples/input_ids")[i, :n]]
            print("tokens: (no /samples/tokens in the file; input ids) " + " ".join(f"{k}:{t}" for k, t in enumerate(toks)))
        print(f"entropy (nats) from /stats/entropy, {NL} layers x {NH} heads:")
        print_table(ent[i], args.digits)
        if args.layer is None:
            if "/attention" in f:
                print("(/attention is stored: add --layer L --head H for each token's top-3 attended tokens)")
            return 0
        if not 0 <= args.layer < NL or not 0 <= args.head < NH:
            raise Fail(f"{args.file}: --layer {args.layer} --head {args.head} out of range ({NL} layers, {NH} heads)")
        w = attention_block(f, i, n)[args.layer, args.head].astype(np.float64)
        k = min(3, n)
        print(f"top-{k} attended tokens, layer {args.layer} head {args.head} (stored /attention, row = query):")
        tw = max(len(t) for t in toks) if toks else 1
        for q in range(n):
            top = np.argsort(-w[q], kind="stable")[:k]
            cells = "  ".join(f"{j:>3}:{toks[j]} {w[q, j]:.{args.digits}f}" for j in top)
            print(f"  {q:>3}:{toks[q]:<{tw}} -> {cells}")
    return 0


# ---- csv ---------------------------------------------------------------------------------------

def cmd_csv(args):
    with open_h5(args.file) as f:
        ent = entropy_of(f)[()]
        length = need(f, "/samples/length")[()]
    N, NL, NH = ent.shape
    if length.shape != (N,):
        raise Fail(f"{args.file}: /samples/length has shape {length.shape}, expected ({N},)")
    cols = {
        "sample": np.repeat(np.arange(N), NL * NH),
        "layer": np.tile(np.repeat(np.arange(NL), NH), N),
        "head": np.tile(np.arange(NH), N * NL),
        # float32 -> shortest decimal that reads back to the same float32
        "entropy": ent.reshape(-1).astype(str),
        "length": np.repeat(length, NL * NH),
    }
    try:
        import pandas as pd  # optional; only this subcommand uses it
    except ImportError:
        pd = None
    try:
        if pd is not None:
            pd.DataFrame(cols).to_csv(args.out, index=False)
        else:
            import csv
            with open(args.out, "w", newline="", encoding="utf-8") as fh:
                wr = csv.writer(fh)
                wr.writerow(cols.keys())
                wr.writerows(zip(*(c.tolist() for c in cols.values())))
    except OSError as e:
        raise Fail(f"{args.out}: cannot write ({e.strerror})")
    print(f"wrote {args.out}: {N * NL * NH} rows ({N} samples x {NL} layers x {NH} heads) "
          f"via {'pandas' if pd is not None else 'csv module'}")
    return 0


# ---- summary -----------------------------------------------------------------------------------

def summary_group(f):
    g = f.get("/summary")
    if not isinstance(g, h5py.Group):
        raise Fail(f"{f.filename}: no /summary group ({REDUCE_HINT})")
    return g


def cmd_summary(args):
    d = args.digits
    if args.top < 1:
        raise Fail("--top must be at least 1")
    with open_h5(args.file) as f:
        g = summary_group(f)
        stats = [check_stat_name(f, args.stat)] if args.stat else [s for s in STATS if f"/summary/{s}_mean" in f]
        lh = dims_of(f)
        n = attr_value(g.attrs["n_samples"]) if "n_samples" in g.attrs else "?"
        print(f"summary of {args.file} (/summary, n_samples = {n})")
        for s in stats:
            mean = head_table(f, f"/summary/{s}_mean")
            if mean is None:
                if args.stat:
                    raise Fail(f"{args.file}: no dataset /summary/{s}_mean ({REDUCE_HINT})")
                continue
            std = head_table(f, f"/summary/{s}_std")
            H = mean.shape[1]
            u = units_of(f, s)
            k = min(args.top, mean.size)
            note = "" if std is not None else f"; no /summary/{s}_std in the file"
            for label, order in (("top", order_desc(mean)), ("bottom", order_asc(mean))):
                print(f"{s}{' (' + u + ')' if u else ''}: {label} {k} heads by /summary/{s}_mean{note}")
                for a in order[:k]:
                    sd = f" ± {float(std.flat[a]):.{d}f}" if std is not None else ""
                    print(f"  {head_name(a, H)} {s} {float(mean.flat[a]):.{d}f}{sd}")
        if not args.stat:
            missing = [s for s in STATS if f"/summary/{s}_mean" not in f]
            if missing:
                print(f"not in the file: {', '.join('/summary/' + s + '_mean' for s in missing)}")
            sr = f.get("/summary/sink_rate_mean")
            if isinstance(sr, h5py.Dataset) and sr.size == 1:
                print(f"sink rate (/summary/sink_rate_mean): {float(sr[()]):.{d}f}")
            else:
                print(f"sink rate: no /summary/sink_rate_mean in the file ({REDUCE_HINT})")
            js = f.get("/summary/head_similarity_js_mean")
            if not isinstance(js, h5py.Dataset):
                print("head pairs: no /summary/head_similarity_js_mean in the file (written by `attnscope run`)")
                return 0
            js = js[()]
            if js.ndim != 2 or js.shape[0] != js.shape[1] or (lh is not None and js.shape[0] != lh[0] * lh[1]):
                raise Fail(f"{args.file}: /summary/head_similarity_js_mean has shape {js.shape}, expected "
                           f"[L·H, L·H]{'' if lh is None else f' = [{lh[0] * lh[1]}, {lh[0] * lh[1]}]'}")
            if lh is None:
                raise Fail(f"{args.file}: cannot name heads (no n_layers/n_heads attributes, no /stats/entropy)")
            cos = f.get("/summary/head_similarity_cos")
            cos = cos[()] if isinstance(cos, h5py.Dataset) and cos.shape == js.shape else None
            ia, ib = np.triu_indices(js.shape[0], 1)
            v = js[ia, ib]
            k = min(5, v.size)
            for label, order in (("most similar", order_asc(v)), ("most different", order_desc(v))):
                print(f"head pairs, {label} by /summary/head_similarity_js_mean (nats)"
                      f"{', with head_similarity_cos' if cos is not None else ''}:")
                for t in order[:k]:
                    a, b = ia[t], ib[t]
                    c = f" cos {float(cos[a, b]):.{d}f}" if cos is not None else ""
                    print(f"  {head_name(a, lh[1])} ~ {head_name(b, lh[1])} JS {float(js[a, b]):.{d}f}{c}")
    return 0


# ---- heads -------------------------------------------------------------------------------------

def cmd_heads(args):
    d = args.digits
    with open_h5(args.file) as f:
        s = check_stat_name(f, args.stat)
        mean = head_table(f, f"/summary/{s}_mean")
        if mean is None:
            raise Fail(f"{args.file}: no dataset /summary/{s}_mean ({REDUCE_HINT})")
        std = head_table(f, f"/summary/{s}_std")
        u = units_of(f, s)
        ds = f.get(f"/stats/{s}")
        if ds is not None and "definition" in ds.attrs:
            print(f"{s}: {attr_value(ds.attrs['definition'])}")
        print(f"{s}{' (' + u + ')' if u else ''}: /summary/{s}_mean"
              f"{f' ± /summary/{s}_std' if std is not None else f' (no /summary/{s}_std in the file)'}, "
              f"{mean.shape[0]} layers x {mean.shape[1]} heads:")
        cells = [[f"{float(mean[l, h]):.{d}f}" + (f" ± {float(std[l, h]):.{d}f}" if std is not None else "")
                  for h in range(mean.shape[1])] for l in range(mean.shape[0])]
        w = max(len(c) for row in cells for c in row) + 2
        print("  layer" + "".join(f"{'h' + str(h):>{w}}" for h in range(mean.shape[1])))
        for l, row in enumerate(cells):
            print(f"  {l:>5}" + "".join(f"{c:>{w}}" for c in row))
        gm = f.get(f"/summary/{s}_group_mean")
        kv = f.get("/model/kv_group")
        if isinstance(gm, h5py.Dataset) and gm.ndim == 2 and gm.shape[1] < mean.shape[1]:
            print(f"key/value groups (GQA): /summary/{s}_group_mean, {gm.shape[0]} layers x {gm.shape[1]} groups"
                  + ("; query heads per group from /model/kv_group: "
                     + ", ".join(f"g{g}: " + " ".join(f"h{h}" for h in np.flatnonzero(kv[()] == g))
                                 for g in range(gm.shape[1])) if isinstance(kv, h5py.Dataset) else ""))
            print_table(gm[()], d, col="g")
    return 0


# ---- export ------------------------------------------------------------------------------------

def cmd_export(args):
    kind = os.path.splitext(args.out)[1].lower()
    if kind not in (".csv", ".parquet"):
        raise Fail(f"{args.out}: the output name must end in .csv or .parquet")
    if kind == ".parquet":
        import importlib.util
        if importlib.util.find_spec("pyarrow") is None:
            raise Fail(f"{args.out}: writing parquet needs pyarrow, which is not installed "
                       "(pip install pyarrow), or export to .csv")
    with open_h5(args.file) as f:
        cols = [s for s in STATS if isinstance(f.get(f"/stats/{s}"), h5py.Dataset)]
        if not cols:
            raise Fail(f"{args.file}: no per-head statistics /stats/<s> ({', '.join(STATS)})")
        shape = f[f"/stats/{cols[0]}"].shape
        for s in cols:
            if f[f"/stats/{s}"].shape != shape or len(shape) != 3:
                raise Fail(f"{args.file}: /stats/{s} has shape {f[f'/stats/{s}'].shape}; every /stats/<s> "
                           f"exported must be [samples, layers, heads] like /stats/{cols[0]} {shape}")
        N, NL, NH = shape
        block = max(1, 1_000_000 // max(1, NL * NH))  # samples per chunk: bounded memory on large files
        tmp = args.out + ".part"
        try:
            if kind == ".csv":
                via = export_csv(f, cols, N, NL, NH, block, tmp)
            else:
                via = export_parquet(f, cols, N, NL, NH, block, tmp)
            os.replace(tmp, args.out)
        except OSError as e:
            raise Fail(f"{args.out}: cannot write ({e.strerror or e})")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    missing = [s for s in STATS if s not in cols]
    print(f"wrote {args.out}: {N * NL * NH} rows ({N} samples x {NL} layers x {NH} heads), "
          f"columns sample, layer, head, {', '.join(cols)} via {via}"
          + (f"; not in the file: {', '.join(missing)}" if missing else ""))
    return 0


def export_chunks(f, cols, N, NL, NH, block):
    """(i0, i1, {column: flat array}) for samples i0..i1-1, row order sample, layer, head."""
    for i0 in range(0, N, block):
        i1 = min(N, i0 + block)
        m = i1 - i0
        out = {"sample": np.repeat(np.arange(i0, i1, dtype=np.int64), NL * NH),
               "layer": np.tile(np.repeat(np.arange(NL, dtype=np.int32), NH), m),
               "head": np.tile(np.arange(NH, dtype=np.int32), m * NL)}
        for s in cols:
            out[s] = f[f"/stats/{s}"][i0:i1].reshape(-1)
        yield out


def export_csv(f, cols, N, NL, NH, block, path):
    try:
        import pandas as pd  # optional, imported only here
    except ImportError:
        pd = None
    import csv
    with open(path, "w", newline="", encoding="utf-8") as fh:
        wr = None if pd is not None else csv.writer(fh)
        if wr is not None:
            wr.writerow(["sample", "layer", "head"] + cols)
        for n, c in enumerate(export_chunks(f, cols, N, NL, NH, block)):
            for s in cols:  # float32 -> shortest decimal that reads back to the same float32
                c[s] = c[s].astype(str)
            if pd is not None:
                pd.DataFrame(c).to_csv(fh, index=False, header=(n == 0))
            else:
                wr.writerows(zip(*(v.tolist() for v in c.values())))
    return "pandas" if pd is not None else "csv module"


def export_parquet(f, cols, N, NL, NH, block, path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    writer = None
    try:
        for c in export_chunks(f, cols, N, NL, NH, block):  # float32 columns stay float32
            t = pa.table({k: pa.array(v) for k, v in c.items()})
            if writer is None:
                writer = pq.ParquetWriter(path, t.schema)
            writer.write_table(t)
    finally:
        if writer is not None:
            writer.close()
    return "pyarrow"


# ---- exemplars ---------------------------------------------------------------------------------

def cmd_exemplars(args):
    d = args.digits
    with open_h5(args.file) as f:
        s = check_stat_name(f, args.stat)
        ex = head_table(f, f"/summary/exemplars_{s}", ndim=3)
        if ex is None:
            raise Fail(f"{args.file}: no dataset /summary/exemplars_{s} ({REDUCE_HINT})")
        NL, NH, k = ex.shape
        if not 0 <= args.layer < NL or not 0 <= args.head < NH:
            raise Fail(f"{args.file}: --layer {args.layer} --head {args.head} out of range ({NL} layers, {NH} heads)")
        n_samples = need(f, "/samples/length").shape[0]
        vals = f.get(f"/stats/{s}")
        vals = vals if isinstance(vals, h5py.Dataset) and vals.ndim == 3 else None
        u = units_of(f, s)
        print(f"exemplars of {s}{' (' + u + ')' if u else ''}, layer {args.layer} head {args.head}: "
              f"/summary/exemplars_{s} (highest first), value from "
              + (f"/stats/{s}" if vals is not None else f"(no /stats/{s} in the file)"))
        for r, i in enumerate(int(x) for x in ex[args.layer, args.head]):
            if not 0 <= i < n_samples:  # fewer samples than k: padding
                print(f"  {r + 1}. (no sample: index {i})")
                continue
            v = f"{float(vals[i, args.layer, args.head]):.{d}f}" if vals is not None else "?"
            print(f"  {r + 1}. sample {i} {s} {v}: {sample_text(f, i)}")
    return 0


def main(argv=None):
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `... | head` ends quietly
    p = argparse.ArgumentParser(prog="attnscope_summary.py",
                                description="Read an attnscope HDF5 file (never recomputes its statistics).")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("info", help="attributes, datasets, model config sizes")
    s.add_argument("file")
    s.add_argument("--digits", type=int, default=4, help="decimals in printed tables (default 4)")
    s.set_defaults(func=cmd_info)
    s = sub.add_parser("sample", help="one sample: tokens, source line, entropy table, top-3 attention")
    s.add_argument("file")
    s.add_argument("index", type=int, help="sample index, 0-based row of /samples")
    s.add_argument("--layer", type=int, help="layer (0-based) for the top-3 attention listing")
    s.add_argument("--head", type=int, help="head (0-based) for the top-3 attention listing")
    s.add_argument("--text", help="corpus file, if the one in the 'input' attribute moved")
    s.add_argument("--digits", type=int, default=4, help="decimals in printed numbers (default 4)")
    s.set_defaults(func=cmd_sample)
    s = sub.add_parser("csv", help="long table sample, layer, head, entropy, length")
    s.add_argument("file")
    s.add_argument("out")
    s.set_defaults(func=cmd_csv)
    s = sub.add_parser("summary", help="top and bottom heads per statistic, sink rate, head pairs")
    s.add_argument("file")
    s.add_argument("--stat", help="only this statistic (default: every /summary/<s>_mean present)")
    s.add_argument("--top", type=int, default=5, help="heads listed at each end (default 5)")
    s.add_argument("--digits", type=int, default=4, help="decimals in printed numbers (default 4)")
    s.set_defaults(func=cmd_summary)
    s = sub.add_parser("heads", help="layers x heads table of one statistic's mean ± std")
    s.add_argument("file")
    s.add_argument("--stat", required=True, help="statistic, e.g. attn_prev")
    s.add_argument("--digits", type=int, default=4, help="decimals in printed numbers (default 4)")
    s.set_defaults(func=cmd_heads)
    s = sub.add_parser("export", help="long table sample, layer, head, every /stats/<s> (csv or parquet)")
    s.add_argument("file")
    s.add_argument("out", help="OUT.csv or OUT.parquet (parquet needs pyarrow)")
    s.set_defaults(func=cmd_export)
    s = sub.add_parser("exemplars", help="the samples with the highest value of a statistic for one head")
    s.add_argument("file")
    s.add_argument("--stat", required=True, help="statistic, e.g. attn_prev")
    s.add_argument("--layer", type=int, required=True, help="layer (0-based)")
    s.add_argument("--head", type=int, required=True, help="head (0-based)")
    s.add_argument("--digits", type=int, default=4, help="decimals in printed numbers (default 4)")
    s.set_defaults(func=cmd_exemplars)
    args = p.parse_args(argv)
    if getattr(args, "digits", 4) < 0 or getattr(args, "digits", 4) > 12:
        p.error("--digits must be in 0..12")
    try:
        return args.func(args)
    except Fail as e:
        print(f"attnscope_summary: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
