#!/usr/bin/env python3
"""Independent float64 reference for the default model's first-step logits.

Lumen's end-to-end test compares its own logits for a set of prompts against the values
this script writes. The reference shares no code with Lumen: the GGUF is read with
`gguf.GGUFReader`, weights are dequantized with `gguf.quants.dequantize`, the Llama
forward pass is plain numpy in float64, and prompts are tokenized with the Hugging Face
`tokenizers` library configured like SmolLM2's published tokenizer.json.

Regenerate (needs `pip install gguf numpy tokenizers`; takes well under a minute):

    python3 scripts/ref/ref_logits.py \
        [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] \
        [--out tests/fixtures/ref_logits_smollm2.txt]

Model (SmolLM2-135M-Instruct, Q4_1): Llama, 30 layers, n_embd 576, 9 query heads, 3 KV
heads (GQA: query head h uses KV head h // 3), head_dim 64, FFN 1536 (SwiGLU), RoPE base
100000 in the *normal* pairing (llama.cpp's converter permutes Q/K so adjacent pairs
(x[2i], x[2i+1]) rotate by pos * base^(-2i/64)), RMSNorm eps 1e-5, tied embeddings
(token_embd.weight, Q8_0, is also the output matrix). No BOS is added.

Fixture format (text; '#' lines are comments; values are %.6g):

    n_vocab <n>                      once, first
    probes <64 token ids>            once, chosen with a fixed seed, same for all prompts
    prompt <prompt bytes as hex>     starts a record
    ids <n> <token ids>
    top <20 pairs id:logit>          highest logits of the last prompt position, best first
    probe <64 logits>                logits at the probe ids, in the order of `probes`
    stats <mean> <std>               mean and (population) std of all n_vocab logits
    end

What is compared: the logits at the LAST prompt position after prefilling the prompt's
token ids (which a test can also use to check Lumen's tokenizer). Lumen computes in f32
from the same quantized weights, so differences come from rounding only; the end-to-end
test states its tolerance.
The script checks that the France prompt's greedy token decodes to " Paris" and prints
the top-5 per prompt and the time taken. (A NeoX-pairing variant of RoPE gives clearly
lower likelihoods on plain English prompts, which supports the normal pairing above.)
"""

import argparse
import os
import sys
import time

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:",
    "3.14159 + 2.71828 =",
    "Café au lait, naïve résumé",
    "I love 🍕 and 🚀!",
    "日本の首都は",
    "a   b\t\tc\n\n",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "In the early morning light, the old fisherman pushed his wooden boat into the calm"
    " water, hoping that today, after weeks of empty nets, the sea would finally reward"
    " his patience with a silver catch.",
    "Hello",
    "Once upon a time",
]
N_TOP = 20
N_PROBES = 64
PROBE_SEED = 20240607


def field(reader, key):
    return reader.fields[key].contents()


def build_tokenizer(reader):
    """A `tokenizers` BPE built from the GGUF vocab, like SmolLM2's tokenizer.json."""
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field(reader, "tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    # Control tokens (type 3: <|im_start|>, <|im_end|>, ...) are matched as single ids.
    tok.add_special_tokens([tokens[i] for i, t in enumerate(types) if t == 3])
    return tok, tokens


class Model:
    """Dequantized weights (float64) and hyper-parameters of a GGUF Llama model."""

    def __init__(self, reader):
        arch = field(reader, "general.architecture")
        assert arch == "llama", arch
        self.n_layer = int(field(reader, "llama.block_count"))
        self.n_embd = int(field(reader, "llama.embedding_length"))
        self.n_head = int(field(reader, "llama.attention.head_count"))
        self.n_head_kv = int(field(reader, "llama.attention.head_count_kv"))
        self.rope_base = float(field(reader, "llama.rope.freq_base"))
        self.eps = float(field(reader, "llama.attention.layer_norm_rms_epsilon"))
        self.head_dim = self.n_embd // self.n_head
        self.w = {}
        for t in reader.tensors:
            # dequantize gives the row-major (ne[1], ne[0]) matrix: y = W @ x
            self.w[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64)
        self.out = self.w.get("output.weight", self.w["token_embd.weight"])

    def layer(self, i, name):
        return self.w[f"blk.{i}.{name}.weight"]


def rms_norm(x, w, eps):
    # x (n, d) -> (n, d)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, pos, base):
    """Normal (non-NeoX) RoPE: rotate adjacent pairs. x (n, heads, hd), pos (n,)."""
    hd = x.shape[-1]
    inv = base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)  # (hd/2,)
    ang = pos[:, None].astype(np.float64) * inv[None, :]  # (n, hd/2)
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out


def attention(m, xn, i, pos):
    n, hd = xn.shape[0], m.head_dim
    q = (xn @ m.layer(i, "attn_q").T).reshape(n, m.n_head, hd)  # (n, H, hd)
    k = (xn @ m.layer(i, "attn_k").T).reshape(n, m.n_head_kv, hd)  # (n, Hkv, hd)
    v = (xn @ m.layer(i, "attn_v").T).reshape(n, m.n_head_kv, hd)
    q, k = rope(q, pos, m.rope_base), rope(k, pos, m.rope_base)
    group = m.n_head // m.n_head_kv
    mask = np.triu(np.full((n, n), -np.inf), k=1)  # causal
    out = np.empty((n, m.n_head, hd))
    for h in range(m.n_head):
        kv = h // group
        s = q[:, h, :] @ k[:, kv, :].T / np.sqrt(hd) + mask  # (n, n)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        out[:, h, :] = s @ v[:, kv, :]
    return out.reshape(n, m.n_embd) @ m.layer(i, "attn_output").T


def ffn(m, xn, i):
    g = xn @ m.layer(i, "ffn_gate").T  # (n, ffn)
    u = xn @ m.layer(i, "ffn_up").T
    return (g / (1.0 + np.exp(-g)) * u) @ m.layer(i, "ffn_down").T  # (n, d)


def forward(m, ids):
    """Logits (n_vocab,) at the last position of the token ids."""
    x = m.w["token_embd.weight"][np.asarray(ids)]  # (n, d)
    pos = np.arange(len(ids))
    for i in range(m.n_layer):
        x = x + attention(m, rms_norm(x, m.layer(i, "attn_norm"), m.eps), i, pos)
        x = x + ffn(m, rms_norm(x, m.layer(i, "ffn_norm"), m.eps), i)
    x = rms_norm(x[-1:], m.w["output_norm.weight"], m.eps)
    return (x @ m.out.T)[0]


def g6(v):
    return "%.6g" % v


def write_record(f, prompt, ids, logits, probes, tokens):
    top = np.argsort(-logits, kind="stable")[:N_TOP]
    # comments stay ASCII so the fixture is plain text everywhere
    f.write("# %s -> top5 %s\n" % (ascii(prompt), " ".join(ascii(tokens[t]) for t in top[:5])))
    f.write("prompt %s\n" % prompt.encode("utf-8").hex())
    f.write("ids %d %s\n" % (len(ids), " ".join(str(t) for t in ids)))
    f.write("top %s\n" % " ".join("%d:%s" % (t, g6(logits[t])) for t in top))
    f.write("probe %s\n" % " ".join(g6(logits[p]) for p in probes))
    f.write("stats %s %s\nend\n" % (g6(logits.mean()), g6(logits.std())))
    return top


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/ref_logits_smollm2.txt"))
    args = ap.parse_args()

    t0 = time.perf_counter()
    reader = GGUFReader(args.model)
    tok, tokens = build_tokenizer(reader)
    model = Model(reader)
    t_load = time.perf_counter() - t0
    n_vocab = model.out.shape[0]
    probes = sorted(np.random.default_rng(PROBE_SEED).choice(n_vocab, N_PROBES, replace=False))

    with open(args.out, "w", encoding="ascii") as f:
        f.write("# Reference logits for %s, written by scripts/ref/ref_logits.py\n"
                % os.path.basename(args.model))
        f.write("# float64 numpy forward pass; format described in the script's docstring\n")
        f.write("n_vocab %d\n" % n_vocab)
        f.write("probes %s\n" % " ".join(str(int(p)) for p in probes))
        for prompt in PROMPTS:
            ids = tok.encode(prompt, add_special_tokens=False).ids
            logits = forward(model, ids)
            top = write_record(f, prompt, ids, logits, probes, tokens)
            print("%-40r %3d tokens  top: %s" % (prompt[:40], len(ids), " ".join(
                "%r(%d,%.3f)" % (tok.decode([int(t)]), t, logits[t]) for t in top[:5])))
            if prompt == PROMPTS[0]:
                best = tok.decode([int(top[0])])
                if best != " Paris":
                    sys.exit("sanity check failed: France prompt -> %r, not ' Paris'" % best)
    t_all = time.perf_counter() - t0
    print("wrote %s: %d prompts; load+dequant %.1f s, total %.1f s"
          % (args.out, len(PROMPTS), t_load, t_all))


if __name__ == "__main__":
    main()
