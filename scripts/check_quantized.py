#!/usr/bin/env python3
"""Check files written by `lumen quantize` with an independent GGUF reader.

    python3 scripts/check_quantized.py SOURCE.gguf OUT.gguf [OUT2.gguf ...]

Each OUT is opened with the `gguf` PyPI package's GGUFReader (llama.cpp's own Python
reader: it checks the header, the tensor table and that every tensor lies inside the file),
and compared with SOURCE:
  - every key of SOURCE is in OUT with the same value, except general.file_type, which must
    be a llama.cpp file type; general.quantization_version is 2; general.quantized_by is set;
  - the same tensors in the same order with the same shapes; 1-D tensors keep their type;
  - every tensor, dequantized with gguf.quants.dequantize, is within the bound of its type
    of SOURCE's tensor (also dequantized): relative RMS error sqrt(sum d^2 / sum x^2).
It prints a table per output type (tensors, worst and mean relative error) and exits 1 on
any failure. Needs `pip install gguf numpy` (scripts/setup.sh installs them).
"""

import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType, LlamaFileType
from gguf.quants import dequantize

# Relative RMS error bounds per stored type. Rounding to a grid of step s costs s/sqrt(12)
# RMS; for weights whose block maximum is about 2-3 standard deviations this gives about
# 0.5 % for Q8_0, 4 % for the 5-bit types, 8 % for the 4-bit types; Q3_K and Q2_K (8 and 4
# levels) reach about 15 % and 30 %. Real weights have heavier tails than the generated
# ones, so the bounds leave room (measured on SmolLM2: see the docs).
BOUNDS = {
    "F32": 0.0,
    "F16": 1e-3,
    "BF16": 8e-3,
    "Q8_0": 0.012,
    "Q6_K": 0.035,
    "Q5_0": 0.075,
    "Q5_1": 0.07,
    "Q5_K": 0.07,
    "Q4_0": 0.15,
    "Q4_1": 0.14,
    "Q4_K": 0.13,
    "Q3_K": 0.27,
    "Q2_K": 0.50,
}

FILE_TYPES = {t.value for t in LlamaFileType if t != LlamaFileType.GUESSED}
SET_BY_QUANTIZE = {"general.file_type", "general.quantization_version", "general.quantized_by"}


def value(field):
    v = field.contents()
    return v.tolist() if isinstance(v, np.ndarray) else v


def check_keys(src, out, errors):
    for key, f in src.fields.items():
        if key.startswith("GGUF.") or key in SET_BY_QUANTIZE or key.startswith("split."):
            continue
        if key not in out.fields:
            errors.append("key %s lost" % key)
        elif value(out.fields[key]) != value(f) or out.fields[key].types != f.types:
            errors.append("key %s changed" % key)
    ft = value(out.fields["general.file_type"]) if "general.file_type" in out.fields else None
    if ft not in FILE_TYPES:
        errors.append("general.file_type %r is not a llama.cpp file type" % ft)
    qv = out.fields.get("general.quantization_version")
    if qv is None or value(qv) != 2:
        errors.append("general.quantization_version is not 2")
    if "general.quantized_by" not in out.fields:
        errors.append("general.quantized_by missing")
    return ft


def check_tensors(src, out, errors, table):
    if [t.name for t in src.tensors] != [t.name for t in out.tensors]:
        errors.append("tensor names or order differ")
        return
    for s, o in zip(src.tensors, out.tensors):
        if list(s.shape) != list(o.shape):
            errors.append("%s: shape %s, source %s" % (o.name, list(o.shape), list(s.shape)))
            continue
        tname = GGMLQuantizationType(o.tensor_type).name
        if len(s.shape) == 1 and o.tensor_type != s.tensor_type:
            errors.append("%s: 1-D tensor changed type to %s" % (o.name, tname))
        x = dequantize(s.data, s.tensor_type).astype(np.float64).ravel()
        y = dequantize(o.data, o.tensor_type).astype(np.float64).ravel()
        ss = float(np.sum(x * x))
        err = float(np.sqrt(np.sum((x - y) ** 2) / ss)) if ss > 0 else float(np.abs(y).max())
        bound = BOUNDS.get(tname)
        if bound is None:
            errors.append("%s: type %s has no bound here" % (o.name, tname))
        elif not np.isfinite(err) or err > bound:
            errors.append("%s (%s): relative RMS error %.4g > %.4g" % (o.name, tname, err, bound))
        table.setdefault(tname, []).append(err)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    src = GGUFReader(sys.argv[1])
    failed = 0
    for path in sys.argv[2:]:
        errors, table = [], {}
        try:
            out = GGUFReader(path)
        except Exception as e:  # the reader's own validation failed
            print("FAIL %s: gguf reader: %s" % (path, e))
            failed += 1
            continue
        ft = check_keys(src, out, errors)
        check_tensors(src, out, errors, table)
        ftname = LlamaFileType(ft).name if ft in FILE_TYPES else "?"
        print("%s %s (file type %s = %s, %d tensors)"
              % ("ok  " if not errors else "FAIL", path, ft, ftname, len(out.tensors)))
        for t in sorted(table, key=lambda k: -BOUNDS.get(k, 1)):
            e = table[t]
            print("     %-5s %4d tensors  rel. RMS error max %.4f mean %.4f (bound %.4f)"
                  % (t, len(e), max(e), sum(e) / len(e), BOUNDS.get(t, float("nan"))))
        for e in errors[:20]:
            print("     error: %s" % e)
        failed += bool(errors)
    print("%d passed, %d failed" % (len(sys.argv) - 2 - failed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
