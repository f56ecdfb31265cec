#!/usr/bin/env python3
"""Reference quantization fixtures for test_quant.c, made with gguf-py (the GGUF project's
own Python package, whose quantizers are written to match ggml's C reference bit for bit).

Output (tests/fixtures/quant_ref.txt), line based, '#' lines are comments:

  quant <TYPE> <n> <label>   a quantization case of one row of n floats, then:
  in  <n words>              the float32 inputs as 8-hex-digit IEEE bit patterns
  q   <hex bytes>            gguf.quants.quantize(row, TYPE) as bytes
  deq <n words>              gguf.quants.dequantize(q, TYPE) as float32 bit patterns

  dequant <TYPE> <n> <label> a dequantization case: random block bytes, then:
  q   <hex bytes>            random blocks (scales: random finite f16)
  deq <n words>              gguf.quants.dequantize(q, TYPE)

Quantization cases exist for the types gguf-py can quantize (F16, BF16, Q4_0, Q4_1, Q5_0,
Q5_1, Q8_0); dequantization cases for every block type. gguf-py has no Q8_K (an
activation format): its reference dequantization, float32(d) * qs, is computed here.

test_quant.c requires lm_quantize_row to produce the bytes exactly and lm_dequantize_row
to produce the floats bit-identically. The suite reads this file; it never runs Python.

Usage: python3 scripts/ref/make_quant_fixtures.py [out.txt]
"""
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "quant_ref.txt"
SEED = 20240611
QUANT_TYPES = ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]
# block types: (elements, bytes, byte offsets of f16 scale fields)
BLOCK = {
    "Q4_0": (32, 18, (0,)),
    "Q4_1": (32, 20, (0, 2)),
    "Q5_0": (32, 22, (0,)),
    "Q5_1": (32, 24, (0, 2)),
    "Q8_0": (32, 34, (0,)),
    "Q2_K": (256, 84, (80, 82)),
    "Q3_K": (256, 110, (108,)),
    "Q4_K": (256, 144, (0, 2)),
    "Q5_K": (256, 176, (0, 2)),
    "Q6_K": (256, 210, (208,)),
    "Q8_K": (256, 292, ()),  # float32 d at 0, set below
}


def words(a):
    return " ".join(f"{v:08x}" for v in np.asarray(a, dtype=np.float32).view(np.uint32))


def as_bytes(q):
    return np.ascontiguousarray(q).view(np.uint8).tobytes().hex()


def input_rows(rng):
    """(label, float32 row) pairs: scales, outliers, constant rows, edge values."""
    rows = []
    for scale in (1e-3, 1.0, 30.0, 1e4):
        rows.append((f"normal*{scale:g}", rng.standard_normal(64) * scale))
    r = rng.standard_normal(64)
    r[5], r[40] = 50.0, -80.0
    rows.append(("outliers", r))
    rows.append(("all-equal", np.full(32, 0.7)))
    rows.append(("all-equal-negative", np.full(32, -3.25)))
    rows.append(("zeros", np.zeros(32)))
    r = rng.uniform(-1, 1, 32)
    r[7] = -2.0  # largest magnitude is negative: q4_0 scale is positive
    rows.append(("neg-max", r))
    r = rng.uniform(0.5, 1.5, 32)  # all positive: q4_1 min > 0
    rows.append(("positive", r))
    rows.append(("ramp", np.linspace(-1, 1, 32)))
    r = rng.standard_normal(32) * 1e-6  # q scales become f16 subnormals
    rows.append(("tiny", r))
    return [(label, np.asarray(x, dtype=np.float32)) for label, x in rows]


def float_edge_row():
    """Values that exercise f16/bf16 rounding: ties, subnormals, overflow, infinities."""
    v = [0.0, -0.0, 1.0, -2.5, 65504.0, 65520.0, 65519.99, 1e6, -1e6, np.inf, -np.inf,
         5.96e-8, 2.98e-8, 2.99e-8, 6.1e-5, 6.09e-5, 1.0 + 2**-11, 1.0 + 3 * 2**-11,
         1.0 + 2**-8, 1.0 + 3 * 2**-8, 3.4e38, 1e-40, -1e-45, 0.1, 0.2, 0.3, 1 / 3, 2 / 3,
         np.pi, np.e, -1e-3, 1234.5678]
    return np.asarray(v, dtype=np.float32)


def random_blocks(rng, name, n_blocks):
    qk, size, f16_at = BLOCK[name]
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for b in range(n_blocks):
        for off in f16_at:  # a random finite f16 scale / min
            h = np.float16(rng.standard_normal() * 10 ** rng.uniform(-4, 1))
            raw[b, off:off + 2] = np.frombuffer(h.tobytes(), dtype=np.uint8)
        if name == "Q8_K":
            d = np.float32(rng.standard_normal() * 10 ** rng.uniform(-6, 1))
            raw[b, 0:4] = np.frombuffer(d.tobytes(), dtype=np.uint8)
    return raw.reshape(-1), n_blocks * qk


def reference_dequantize(raw, name):
    if name == "Q8_K":  # float d, int8 qs[256], int16 bsums[16] (unused here)
        blocks = raw.reshape(-1, 292)
        d = blocks[:, 0:4].copy().view(np.float32)
        qs = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
        return (qs * d).reshape(-1)
    return dequantize(raw, getattr(T, name))


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    rng = np.random.default_rng(SEED)
    lines = [f"# made by scripts/ref/make_quant_fixtures.py with gguf-py, seed {SEED}"]
    rows = input_rows(rng)
    for name in QUANT_TYPES:
        qt = getattr(T, name)
        cases = list(rows)
        if name in ("F16", "BF16"):
            cases.append(("edges", float_edge_row()))
            if name == "BF16":  # gguf-py keeps NaN payloads for bf16 as ggml does
                cases.append(("nan", np.array([np.nan] * 2, dtype=np.float32)))
        for label, x in cases:
            q = quantize(x, qt)
            d = dequantize(q, qt)
            lines += [f"quant {name} {x.size} {label}", f"in {words(x)}", f"q {as_bytes(q)}",
                      f"deq {words(d)}"]
    for name, (qk, _, _) in BLOCK.items():
        for i in range(3):
            raw, n = random_blocks(rng, name, 2 if qk == 256 else 4)
            d = reference_dequantize(raw, name)
            lines += [f"dequant {name} {n} random-{i}", f"q {raw.tobytes().hex()}",
                      f"deq {words(d)}"]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out} ({len(lines)} lines)")


if __name__ == "__main__":
    main()
