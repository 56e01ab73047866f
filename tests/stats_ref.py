"""stats_ref.py — an independent NumPy reference of every attnscope attention statistic, written
from the definitions in the cited papers and the task card (NOT from src/stats.c), so that
tests/test_stats.py can check the C code against it.

One head of one sample: P is a (T, T) array (row i = query, column j = key), n <= T valid tokens.
Visible keys of row i: K_i = {0..n-1} (bidirectional) or {0..i} (causal); with a sliding window sw
(Mistral, Qwen2: transformers' sliding_window_overlay, key j visible iff j > i - sw) only the keys
j > i - sw of those, so every statistic counts the sw most recent keys only. "Mean over rows" is
(1/n) * sum over i < n. Everything is computed in float64 from the float32 probabilities; loops
are written row by row on purpose, to read like the formulas (the arrays are small).

Sources:
  Clark et al. 2019, "What Does BERT Look At?": entropy, attention to [CLS]/[SEP]/punctuation,
    and head similarity (their head_distances.py: p' = 0.001/n + 0.999 p, Jensen-Shannon summed
    over the whole n x n map, natural log).
  Gu et al. 2025, "When Attention Sink Emerges in Language Models": importance score
    alpha_k = (1/|Q_k|) sum_{i in Q_k} p_ik, with Q_k the queries that can see key k.
  Olsson et al. 2022, "In-context Learning and Induction Heads", and TransformerLens
    (head_detector.py's previous/duplicate/induction head patterns; the induction demo's score on
    repeated random tokens): the probe scores of probe_scores() on [BOS] + R + R.
"""
import math
import numpy as np

SCALARS = ["entropy", "entropy_norm", "distance", "locality", "attn_cls", "attn_sep", "attn_punct",
           "attn_self", "attn_prev", "attn_next", "sink_importance"]


def visible(i, n, causal, sw=0):
    """K_i: the keys row i may attend to (sw > 0: a sliding window of sw keys, i itself included)."""
    return range(max(0, i - sw + 1) if sw > 0 else 0, i + 1 if causal else n)


def head_scalars(P, n, causal, window, sep=None, punct=None, sw=0):
    """Per-head scalars of one sample, as a dict keyed by SCALARS. sep/punct: per-token flags
    (length >= n) or None (then those masses are 0); sw: the attention's sliding window (0: none)."""
    P = np.asarray(P, np.float64)
    ent = dist = loc = cls = sepm = punm = selfm = prev = nxt = 0.0
    norm_sum, norm_rows = 0.0, 0
    for i in range(n):
        K = list(visible(i, n, causal, sw))
        h = 0.0
        for j in K:
            p = P[i, j]
            if p > 0:                      # 0 ln 0 = 0
                h -= p * math.log(p)
        ent += h
        if len(K) > 1:
            norm_sum += h / math.log(len(K))
            norm_rows += 1
        for j in K:
            dist += P[i, j] * abs(i - j)
            if abs(i - j) <= window:
                loc += P[i, j]
            if sep is not None and sep[j]:
                sepm += P[i, j]
            if punct is not None and punct[j]:
                punm += P[i, j]
        cls += P[i, 0]
        selfm += P[i, i]
        if i >= 1:
            prev += P[i, i - 1]
        if i + 1 < n and (i + 1) in K:     # under causal, key i+1 is never visible to row i
            nxt += P[i, i + 1]
    out = {"entropy": ent / n, "entropy_norm": norm_sum / norm_rows if norm_rows else 0.0,
           "distance": dist / n, "locality": loc / n, "attn_cls": cls / n, "attn_sep": sepm / n,
           "attn_punct": punm / n, "attn_self": selfm / n, "attn_prev": prev / n, "attn_next": nxt / n}
    out["sink_importance"] = key_importance(P, n, causal, sw)[0]
    return out


def key_importance(P, n, causal, sw=0):
    """alpha_k for k < n (Gu et al. 2025); entries k >= n are 0. Returns a (T,) float64 array.
    Q_k = all n rows (bidirectional) or rows i >= k (causal), so |Q_k| = n or n - k; with a
    sliding window only the rows i < k + sw of those."""
    P = np.asarray(P, np.float64)
    a = np.zeros(P.shape[1])
    for k in range(n):
        Q = [i for i in range(n) if k in visible(i, n, causal, sw)]
        a[k] = sum(P[i, k] for i in Q) / len(Q)
    return a


def topk(P, n, causal, k, sw=0):
    """Each valid row's k visible keys of largest p, descending, ties to the lower key index.
    Returns index (T, k) int32 and weight (T, k) float64; rows >= n and entries beyond |K_i| get
    index -1 and weight 0. Visible keys of weight 0 are still keys: they are listed."""
    P = np.asarray(P, np.float64)
    T = P.shape[0]
    idx = np.full((T, k), -1, np.int32)
    w = np.zeros((T, k))
    for i in range(n):
        order = sorted(visible(i, n, causal, sw), key=lambda j: (-P[i, j], j))[:k]
        for r, j in enumerate(order):
            idx[i, r] = j
            w[i, r] = P[i, j]
    return idx, w


def js_pair(pa, pb, n):
    """Clark et al.'s Jensen-Shannon divergence between two heads' n x n maps of one sample."""
    a = 0.001 / n + 0.999 * np.asarray(pa, np.float64)
    b = 0.001 / n + 0.999 * np.asarray(pb, np.float64)
    m = (a + b) / 2
    return 0.5 * float(np.sum(a * np.log(a / m)) + np.sum(b * np.log(b / m)))


def head_similarity(att, lengths):
    """att [N, L, H, T, T], lengths [N]. Returns js_sum, gram (both (L*H, L*H) float64, head index
    l*H + h) and n_rows = sum of lengths. js_sum sums js_pair over samples; gram sums the inner
    product of the raw n x n maps over samples."""
    N, L, H = att.shape[:3]
    nh = L * H
    js = np.zeros((nh, nh))
    gram = np.zeros((nh, nh))
    for s in range(N):
        n = int(lengths[s])
        maps = att[s].reshape(nh, att.shape[3], att.shape[4])[:, :n, :n].astype(np.float64)
        for a in range(nh):
            for b in range(nh):
                if a != b:
                    js[a, b] += js_pair(maps[a], maps[b], n)
                gram[a, b] += float(np.sum(maps[a] * maps[b]))
    return js, gram, float(sum(int(x) for x in lengths))


PROBE_SCORES = ["previous_token_score", "duplicate_token_score", "induction_score"]


def probe_scores(P, K, b):
    """The induction probe's scores of one head on one sample [b BOS] + R + R (|R| = K), P (T, T)
    with T = b + 2K. The second repeat is S = {b+K .. b+2K-1}; token i of S is a copy of token
    i-K, and the token that followed that copy is i-K+1.
      previous_token_score  = mean over i = 1..T-1 of P[i, i-1]
      duplicate_token_score = mean over i in S of P[i, i-K]
      induction_score       = mean over i in S of P[i, i-K+1]"""
    P = np.asarray(P, np.float64)
    T = b + 2 * K
    assert P.shape == (T, T)
    S = range(b + K, T)
    return {"previous_token_score": sum(P[i, i - 1] for i in range(1, T)) / (T - 1),
            "duplicate_token_score": sum(P[i, i - K] for i in S) / K,
            "induction_score": sum(P[i, i - K + 1] for i in S) / K}


def all_probe_scores(att, K, b):
    """probe_scores for every head of att [N, L, H, T, T]: a dict of [N, L, H] arrays."""
    N, L, H = att.shape[:3]
    out = {n: np.zeros((N, L, H)) for n in PROBE_SCORES}
    for s in range(N):
        for l in range(L):
            for h in range(H):
                for n, v in probe_scores(att[s, l, h], K, b).items():
                    out[n][s, l, h] = v
    return out


def all_stats(att, lengths, causal, window, k, sep=None, punct=None, sw=0):
    """Every statistic the probe writes, for att [N, L, H, T, T]; sw: the sliding window, one for
    every layer or a list of L (0: none). Returns a dict of arrays with
    the probe's names: the SCALARS [N, L, H], key_importance [N, L, H, T], topk_index and
    topk_weight [N, L, H, T, k], head_similarity_js_sum/_gram [L*H, L*H], n_rows."""
    N, L, H, T = att.shape[:4]
    out = {name: np.zeros((N, L, H)) for name in SCALARS}
    out["key_importance"] = np.zeros((N, L, H, T))
    out["topk_index"] = np.zeros((N, L, H, T, k), np.int32)
    out["topk_weight"] = np.zeros((N, L, H, T, k))
    for s in range(N):
        n = int(lengths[s])
        fs = None if sep is None else sep[s]
        fp = None if punct is None else punct[s]
        for l in range(L):
            w = sw[l] if isinstance(sw, (list, tuple)) else sw
            for h in range(H):
                P = att[s, l, h]
                for name, v in head_scalars(P, n, causal, window, fs, fp, w).items():
                    out[name][s, l, h] = v
                out["key_importance"][s, l, h] = key_importance(P, n, causal, w)
                out["topk_index"][s, l, h], out["topk_weight"][s, l, h] = topk(P, n, causal, k, w)
    js, gram, n_rows = head_similarity(att, lengths)
    out["head_similarity_js_sum"], out["head_similarity_gram"], out["n_rows"] = js, gram, n_rows
    return out
