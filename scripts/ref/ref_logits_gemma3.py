#!/usr/bin/env python3
"""Independent float64 reference logits for Gemma 3 270M (the gemma3 architecture).

Lumen's test_families compares its logits for a few token sequences against the values
this script writes. The reference shares no code with Lumen: the GGUF is read with
`gguf.GGUFReader`, weights are dequantized with `gguf.quants.dequantize`, and the Gemma 3
forward pass below is plain numpy in float64, written from the Hugging Face Gemma3 text
model and llama.cpp's graph:

  x = embedding * sqrt(n_embd)
  per layer: h = rms(x) * attn_norm; q, k, v = h W^T (no bias); per-head rms(q) * q_norm,
    rms(k) * k_norm; NeoX RoPE (rotate halves) with base 10000 on local layers and
    rope.freq_base (1e6) on global ones (layer il is global iff il % 6 == 5); causal
    attention with scale 1/sqrt(key_length), local layers seeing only the last
    sliding_window (512) positions; o = att W_o^T; x += rms(o) * post_attention_norm;
    h = rms(x) * ffn_norm; f = (gelu_tanh(h W_g^T) * (h W_u^T)) W_d^T; x += rms(f) *
    post_ffw_norm
  logits = (rms(x) * output_norm) token_embd^T (tied)
  (The converter already added 1 to every Gemma norm weight, so they multiply as stored.)

Lumen keeps K and V in float16 in its cache; the reference rounds K (after RoPE) and V to
float16 the same way, because over the long record attention amplifies that rounding to
~1e-2 of the logits, far above everything else. Everything else is float64.

Token ids are given as SentencePiece pieces of the model's vocabulary (so no tokenizer is
involved; test_tokenizer covers it). The long record repeats a sentence past the sliding
window so that the window changes what the local layers see.

Regenerate (needs `pip install gguf numpy`; takes a few minutes):

    python3 scripts/ref/ref_logits_gemma3.py \
        [--model models/gemma-3-270m-q4_k_m.gguf] [--out tests/fixtures/ref_logits_gemma3.txt]

Format: that of scripts/ref/ref_logits.py (read by tests/helpers/ref_logits.c); the
`prompt` field holds the pieces joined, for display only; `ids` are what Lumen decodes.
"""

import argparse
import os
import time

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
A = "gemma3"
N_TOP = 20
N_PROBES = 64
PROBE_SEED = 20240607

SENTENCE = ("\u2581The \u2581old \u2581fisherman \u2581pushed \u2581his \u2581wooden \u2581boat "
            "\u2581into \u2581the \u2581calm \u2581water ,").split()
PROMPTS = [
    "<bos> The \u2581capital \u2581of \u2581France \u2581is".split(),
    ["<bos>"] + SENTENCE + ["\u2581and"],
    ["<bos>"] + SENTENCE * 45,  # 541 tokens: past the 512-token window
]


def field(reader, key):
    return reader.fields[key].contents()


class Model:
    def __init__(self, reader):
        assert field(reader, "general.architecture") == A
        self.n_layer = int(field(reader, A + ".block_count"))
        self.n_embd = int(field(reader, A + ".embedding_length"))
        self.n_head = int(field(reader, A + ".attention.head_count"))
        self.n_head_kv = int(field(reader, A + ".attention.head_count_kv"))
        self.hd = int(field(reader, A + ".attention.key_length"))
        self.base = float(field(reader, A + ".rope.freq_base"))
        self.window = int(field(reader, A + ".attention.sliding_window"))
        self.eps = float(field(reader, A + ".attention.layer_norm_rms_epsilon"))
        self.w = {t.name: t for t in reader.tensors}

    def get(self, name):
        t = self.w[name]
        return dequantize(t.data, t.tensor_type).astype(np.float64)

    def layer(self, i, name):
        return self.get("blk.%d.%s.weight" % (i, name))


def rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope_neox(x, base):
    """x (n, heads, hd): rotate (x[j], x[j + hd/2]) by pos * base^(-2j/hd)."""
    n, hd = x.shape[0], x.shape[-1]
    ang = np.arange(n)[:, None] * base ** (-np.arange(hd // 2) * 2.0 / hd)[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., : hd // 2], x[..., hd // 2:]
    return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def f16(x):
    return x.astype(np.float16).astype(np.float64)


def forward(m, ids, emb):
    n = len(ids)
    x = emb[np.asarray(ids)] * np.sqrt(m.n_embd)
    i = np.arange(n)
    causal = i[None, :] <= i[:, None]
    for il in range(m.n_layer):
        local = il % 6 != 5
        h = rms(x, m.layer(il, "attn_norm"), m.eps)
        q = (h @ m.layer(il, "attn_q").T).reshape(n, m.n_head, m.hd)
        k = (h @ m.layer(il, "attn_k").T).reshape(n, m.n_head_kv, m.hd)
        v = (h @ m.layer(il, "attn_v").T).reshape(n, m.n_head_kv, m.hd)
        q = rms(q, m.layer(il, "attn_q_norm"), m.eps)
        k = rms(k, m.layer(il, "attn_k_norm"), m.eps)
        base = 10000.0 if local else m.base
        q, k, v = rope_neox(q, base), f16(rope_neox(k, base)), f16(v)
        mask = causal & ((i[:, None] - i[None, :] < m.window) if local else True)
        att = np.empty((n, m.n_head, m.hd))
        for hh in range(m.n_head):
            kh = hh // (m.n_head // m.n_head_kv)
            s = q[:, hh] @ k[:, kh].T / np.sqrt(m.hd)
            s = np.where(mask, s, -np.inf)
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            att[:, hh] = (s / s.sum(axis=-1, keepdims=True)) @ v[:, kh]
        o = att.reshape(n, -1) @ m.layer(il, "attn_output").T
        x = x + rms(o, m.layer(il, "post_attention_norm"), m.eps)
        h = rms(x, m.layer(il, "ffn_norm"), m.eps)
        f = (gelu_tanh(h @ m.layer(il, "ffn_gate").T) * (h @ m.layer(il, "ffn_up").T))
        x = x + rms(f @ m.layer(il, "ffn_down").T, m.layer(il, "post_ffw_norm"), m.eps)
    x = rms(x[-1:], m.get("output_norm.weight"), m.eps)
    return (x @ emb.T)[0]


def g6(v):
    return "%.6g" % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models/gemma-3-270m-q4_k_m.gguf"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/ref_logits_gemma3.txt"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    reader = GGUFReader(args.model)
    tokens = field(reader, "tokenizer.ggml.tokens")
    vocab = {t: i for i, t in enumerate(tokens)}
    m = Model(reader)
    emb = m.get("token_embd.weight")
    n_vocab = emb.shape[0]
    probes = sorted(np.random.default_rng(PROBE_SEED).choice(n_vocab, N_PROBES, replace=False))
    with open(args.out, "w", encoding="ascii") as f:
        f.write("# Reference logits for %s, written by scripts/ref/ref_logits_gemma3.py\n"
                % os.path.basename(args.model))
        f.write("# float64 numpy Gemma 3 forward pass (K, V rounded to f16 like Lumen's cache)\n")
        f.write("n_vocab %d\n" % n_vocab)
        f.write("probes %s\n" % " ".join(str(int(p)) for p in probes))
        for pieces in PROMPTS:
            ids = [vocab[p] for p in pieces]
            logits = forward(m, ids, emb)
            top = np.argsort(-logits, kind="stable")[:N_TOP]
            text = "".join(pieces).replace("\u2581", " ")
            f.write("# %d tokens %s... -> top5 %s\n" % (len(ids), ascii(text[:60]), " ".join(
                ascii(tokens[t]) for t in top[:5])))
            f.write("prompt %s\n" % text.encode("utf-8").hex())
            f.write("ids %d %s\n" % (len(ids), " ".join(str(t) for t in ids)))
            f.write("top %s\n" % " ".join("%d:%s" % (t, g6(logits[t])) for t in top))
            f.write("probe %s\n" % " ".join(g6(logits[p]) for p in probes))
            f.write("stats %s %s\nend\n" % (g6(logits.mean()), g6(logits.std())))
            print("%4d tokens  top: %s  (%.0f s)" % (len(ids), " ".join(
                "%r(%.3f)" % (tokens[t], logits[t]) for t in top[:5]), time.perf_counter() - t0))
    print("wrote %s in %.0f s" % (args.out, time.perf_counter() - t0))


if __name__ == "__main__":
    main()
