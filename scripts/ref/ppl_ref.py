#!/usr/bin/env python3
"""Independent float64 reference for `lumen perplexity` on the default model.

Same method as llama.cpp's perplexity tool (and Lumen's): the whole text is tokenized
(BOS first if the model's tokenizer.ggml.add_bos_token says so), cut into non-overlapping
windows of `ctx` tokens (the first token of each window replaced by BOS when the model adds
one); each window is evaluated from scratch and only its second half is scored: the logits
at positions ctx/2 .. ctx-2 predict tokens ctx/2+1 .. ctx-1. PPL = exp(mean NLL); its
standard error is PPL * sqrt(var(NLL) / (N - 1)) (delta method, population variance).

The model code is scripts/ref/ref_logits.py's (imported): GGUF read with gguf.GGUFReader,
weights dequantized with gguf.quants.dequantize, a plain numpy float64 Llama forward pass,
tokens from the Hugging Face `tokenizers` library. Nothing is shared with Lumen.

Regenerate (about a minute per 10 windows of 512):

    python3 scripts/ref/ppl_ref.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] \
        [--text data/ppl/pride_and_prejudice_ch1-3.txt] \
        [--out tests/fixtures/ppl_ref_smollm2.txt] [--runs 128:4,512:0]

Each run is CTX:CHUNKS (0 = every window that fits). Fixture format (text, '#' comments):

    text <path relative to the repository>
    sha256 <SHA-256 of the text file>
    model <model file name>
    n_tokens <tokens of the whole text>
    run ctx <C> chunks <K> ppl <p> stderr <e> tokens <scored tokens>
    chunk_ppl <running PPL after each window>     (belongs to the run line above)
"""

import argparse
import hashlib
import math
import os
import sys
import time

import numpy as np
from gguf import GGUFReader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_logits as ref  # noqa: E402  (the float64 Llama of the logits fixture)

ROOT = ref.ROOT


def logits_rows(m, ids, first, last):
    """Logits (last-first, n_vocab) at positions [first, last) of one window of ids."""
    x = m.w["token_embd.weight"][np.asarray(ids)]  # (n, d)
    pos = np.arange(len(ids))
    for i in range(m.n_layer):
        x = x + ref.attention(m, ref.rms_norm(x, m.layer(i, "attn_norm"), m.eps), i, pos)
        x = x + ref.ffn(m, ref.rms_norm(x, m.layer(i, "ffn_norm"), m.eps), i)
    x = ref.rms_norm(x[first:last], m.w["output_norm.weight"], m.eps)
    return x @ m.out.T


def window_nlls(m, toks, c, ctx, bos):
    start, first = c * ctx, ctx // 2
    ids = list(toks[start : start + ctx])
    if bos is not None:
        ids[0] = bos
    lg = logits_rows(m, ids, first, ctx - 1)  # predicts tokens first+1 .. ctx-1
    mx = lg.max(axis=1, keepdims=True)
    lse = np.log(np.exp(lg - mx).sum(axis=1)) + mx[:, 0]
    targets = np.asarray(toks[start + first + 1 : start + ctx])
    return lse - lg[np.arange(len(targets)), targets]


def perplexity(m, toks, ctx, chunks, bos):
    n_chunks = len(toks) // ctx
    if chunks:
        n_chunks = min(n_chunks, chunks)
    if n_chunks == 0:
        sys.exit("text too short: %d tokens for ctx %d" % (len(toks), ctx))
    nll, running = np.empty(0), []
    for c in range(n_chunks):
        nll = np.concatenate([nll, window_nlls(m, toks, c, ctx, bos)])
        running.append(math.exp(nll.mean()))
        print("  ctx %d window %d/%d: running PPL %.4f" % (ctx, c + 1, n_chunks, running[-1]))
    ppl = math.exp(nll.mean())
    err = ppl * math.sqrt(nll.var() / (len(nll) - 1))
    return ppl, err, len(nll), n_chunks, running


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--text", default=os.path.join(ROOT, "data/ppl/pride_and_prejudice_ch1-3.txt"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/ppl_ref_smollm2.txt"))
    ap.add_argument("--runs", default="128:4,512:0", help="CTX:CHUNKS,... (0 = all windows)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    reader = GGUFReader(args.model)
    tok, _ = ref.build_tokenizer(reader)
    model = ref.Model(reader)
    add_bos = "tokenizer.ggml.add_bos_token" in reader.fields and bool(
        ref.field(reader, "tokenizer.ggml.add_bos_token"))
    bos = int(ref.field(reader, "tokenizer.ggml.bos_token_id")) if add_bos else None
    raw = open(args.text, "rb").read()
    toks = tok.encode(raw.decode("utf-8"), add_special_tokens=False).ids
    if bos is not None:
        toks = [bos] + toks
    rel = os.path.relpath(os.path.abspath(args.text), ROOT)
    lines = [
        "# Perplexity reference written by scripts/ref/ppl_ref.py (float64 numpy forward pass,",
        "# llama.cpp's method: non-overlapping windows, second half of each scored)",
        "text %s" % rel,
        "sha256 %s" % hashlib.sha256(raw).hexdigest(),
        "model %s" % os.path.basename(args.model),
        "n_tokens %d" % len(toks),
    ]
    for run in args.runs.split(","):
        ctx, chunks = (int(x) for x in run.split(":"))
        ppl, err, n, n_chunks, running = perplexity(model, toks, ctx, chunks, bos)
        print("ctx %d: PPL = %.4f +/- %.4f (%d tokens, %d chunks)" % (ctx, ppl, err, n, n_chunks))
        lines.append("run ctx %d chunks %d ppl %.6f stderr %.6f tokens %d"
                     % (ctx, n_chunks, ppl, err, n))
        lines.append("chunk_ppl %s" % " ".join("%.6f" % p for p in running))
    with open(args.out, "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s (%d text tokens) in %.1f s" % (args.out, len(toks), time.perf_counter() - t0))


if __name__ == "__main__":
    main()
