#!/usr/bin/env python3
"""Lumen and llama.cpp side by side on the same GGUF: prefill (pp) and decode (tg) tokens/s.

llama.cpp is measured through llama-cpp-python, installed from PyPI into a throw-away virtual
environment (built from source for this CPU: GGML_NATIVE, no GPU backends; nothing of it is
committed). It is driven through its C API as llama-bench does: pp = one llama_decode of p
random tokens into an empty KV cache; tg = a 4-token prompt (untimed), then n timed
llama_decode calls of one token; with -d D both start from D random tokens already in the
cache (decoded untimed), as llama-bench's -d. `lumen bench` does exactly the same
(tools/cmd_bench.c).
Both get the same model file, threads, p, n and repetitions, and run alternately so a change
in machine load hits both. Prints a Markdown table with the ratio Lumen / llama.cpp.

  bench/llama_compare.py -m models/SmolLM2-135M-Instruct.Q4_1.gguf -t 2 -p 128,512 -n 64

The venv lives in $LUMEN_LLAMA_VENV or build/llama-cpp-venv (created on first use; the build
of llama.cpp takes a while on few cores: it is cached there).
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TG_PROMPT = 4  # as BENCH_TG_PROMPT in tools/cmd_bench.c
CMAKE_ARGS = ("-DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF "
              "-DGGML_BLAS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF "
              "-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF "
              "-DLLAVA_BUILD=OFF")


def log(msg):
    print(f"[llama_compare] {msg}", file=sys.stderr, flush=True)


# ---- the llama.cpp side: runs inside the venv ---------------------------------------------

def llama_worker(a):
    """Time pp and tg with llama.cpp's C API; print one JSON object."""
    import llama_cpp as L

    L.llama_backend_init()
    mp = L.llama_model_default_params()
    load = getattr(L, "llama_model_load_from_file", None) or L.llama_load_model_from_file
    model = load(a.model.encode(), mp)
    if not model:
        sys.exit(f"llama.cpp could not load {a.model}")
    cp = L.llama_context_default_params()
    cp.n_ctx = a.d + max(a.p, TG_PROMPT + a.n) + 16
    cp.n_batch = max(a.p, TG_PROMPT, min(a.d, 512))
    cp.n_ubatch = cp.n_batch
    cp.n_threads = a.t
    cp.n_threads_batch = a.t
    new_ctx = getattr(L, "llama_init_from_model", None) or L.llama_new_context_with_model
    ctx = new_ctx(model, cp)
    if not ctx:
        sys.exit("llama.cpp could not create a context")
    if hasattr(L, "llama_model_get_vocab"):
        n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    else:
        n_vocab = L.llama_n_vocab(model)

    def clear():
        if hasattr(L, "llama_get_memory"):
            L.llama_memory_clear(L.llama_get_memory(ctx), True)
        elif hasattr(L, "llama_kv_self_clear"):
            L.llama_kv_self_clear(ctx)
        else:
            L.llama_kv_cache_clear(ctx)

    batch = L.llama_batch_init(cp.n_batch, 0, 1)
    rng = random.Random(1234)

    def decode(tokens, pos0):
        batch.n_tokens = len(tokens)
        for i, t in enumerate(tokens):
            batch.token[i] = t
            batch.pos[i] = pos0 + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(tokens) - 1  # logits for the last token, as Lumen
        if L.llama_decode(ctx, batch) != 0:
            sys.exit("llama_decode failed")
        L.llama_synchronize(ctx)

    def toks(k):
        return [rng.randrange(n_vocab) for _ in range(k)]

    def fill():  # the depth: untimed, in batches the context takes
        clear()
        for p0 in range(0, a.d, cp.n_batch):
            decode(toks(min(cp.n_batch, a.d - p0)), p0)

    def pp_rep():
        fill()
        t = toks(a.p)
        t0 = time.perf_counter()
        decode(t, a.d)
        return a.p / (time.perf_counter() - t0)

    def tg_rep(n):
        fill()
        decode(toks(TG_PROMPT), a.d)
        t = toks(n)
        t0 = time.perf_counter()
        for i in range(n):
            decode([t[i]], a.d + TG_PROMPT + i)
        return n / (time.perf_counter() - t0)

    out = {"llama_cpp_python": L.__version__,
           "system_info": L.llama_print_system_info().decode(errors="replace").strip()}
    if a.p > 0:
        pp_rep()  # warm-up
        out["pp"] = [pp_rep() for _ in range(a.r)]
    if a.n > 0:
        tg_rep(min(a.n, 16))  # warm-up
        out["tg"] = [tg_rep(a.n) for _ in range(a.r)]
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    (getattr(L, "llama_model_free", None) or L.llama_free_model)(model)
    print(json.dumps(out))


# ---- the venv --------------------------------------------------------------------------------

def venv_python(venv):
    return os.path.join(venv, "bin", "python")


def ensure_venv(venv):
    py = venv_python(venv)
    if os.path.exists(py) and subprocess.run([py, "-c", "import llama_cpp"],
                                             capture_output=True).returncode == 0:
        return py
    log(f"creating {venv} and building llama-cpp-python from PyPI (CPU build; takes a while)")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    env = dict(os.environ, CMAKE_ARGS=CMAKE_ARGS,
               CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
    subprocess.run([py, "-m", "pip", "install", "--no-cache-dir", "llama-cpp-python"],
                   check=True, env=env)
    return py


# ---- one measurement of each side --------------------------------------------------------------

def run_llama(py, model, t, p, n, r, d):
    cmd = [py, os.path.abspath(__file__), "--llama-worker", "-m", model, "-t", str(t),
           "-p", str(p), "-n", str(n), "-r", str(r), "-d", str(d)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"llama.cpp worker failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_lumen(lumen, model, t, p, n, r, d):
    cmd = [lumen, "bench", "-m", model, "-t", str(t), "-p", str(p), "-n", str(n), "-r", str(r),
           "-d", str(d), "-o", "json", "-q"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"lumen bench failed: {' '.join(cmd)}\n{res.stderr[-3000:]}")
    recs = json.loads(res.stdout)
    return {rec["test"][:2]: rec for rec in recs}


def fmt(xs):
    m = statistics.mean(xs)
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return m, f"{m:.2f} ± {sd:.2f}"


def loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", action="append", help="GGUF (repeatable)")
    ap.add_argument("-t", type=int, default=2, help="threads (default 2)")
    ap.add_argument("-p", default="128", help="prompt lengths, comma-separated (default 128)")
    ap.add_argument("-n", type=int, default=64, help="generated tokens (default 64)")
    ap.add_argument("-r", type=int, default=5, help="repetitions per measurement (default 5)")
    ap.add_argument("-d", type=int, default=0,
                    help="KV-cache depth: tokens already cached before each test (default 0)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate llama.cpp and Lumen this many times (samples pooled)")
    ap.add_argument("--lumen", default=os.environ.get("LUMEN_BIN",
                                                      os.path.join(ROOT, "build", "lumen")))
    ap.add_argument("--venv", default=os.environ.get(
        "LUMEN_LLAMA_VENV", os.path.join(ROOT, "build", "llama-cpp-venv")))
    ap.add_argument("--json", help="also write all samples to this file")
    ap.add_argument("--llama-worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.llama_worker:
        a.model, a.p = a.model[0], int(a.p)
        return llama_worker(a)

    models = a.model or [os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")]
    pps = [int(x) for x in a.p.split(",")]
    if not os.access(a.lumen, os.X_OK):
        sys.exit(f"{a.lumen} not found: build Lumen first or pass --lumen")
    py = ensure_venv(a.venv)
    log(f"load average before: {loadavg()}")
    rows, dump, info = [], [], {}
    for model in models:
        for p in pps:
            llama = {"pp": [], "tg": []}
            lumen = {"pp": [], "tg": []}
            lrec = None
            for rnd in range(a.rounds):
                log(f"{os.path.basename(model)} p={p} n={a.n} d={a.d} t={a.t}: round {rnd + 1}")
                lc = run_llama(py, model, a.t, p, a.n, a.r, a.d)
                lu = run_lumen(a.lumen, model, a.t, p, a.n, a.r, a.d)
                info = {k: lc[k] for k in ("llama_cpp_python", "system_info")}
                for k in ("pp", "tg"):
                    llama[k] += lc[k]
                    lumen[k] += lu[k]["samples_tok_per_s"]
                lrec = lu
            dump.append({"model": model, "threads": a.t, "p": p, "n": a.n, "d": a.d, "llama_cpp": llama,
                         "lumen": lumen})
            for k, size in (("pp", p), ("tg", a.n)):
                if k == "tg" and p != pps[0]:
                    continue  # tg does not depend on p: report it once
                lm, ls = fmt(llama[k])
                um, us = fmt(lumen[k])
                bw = ""
                if k == "tg":
                    r = lrec["tg"]
                    kv = "_kv" if a.d else ""  # at depth: weights + the KV rows read
                    bw = (f"{r[f'bandwidth{kv}_gb_per_s'] * um / r['avg_tok_per_s']:.2f} GB/s = "
                          f"{r[f'bandwidth{kv}_pct_of_peak'] * um / r['avg_tok_per_s']:.0f}% of "
                          f"{r['peak_bandwidth_gb_per_s']:.2f}{' (+KV)' if a.d else ''}"
                          f"; {r['decode_bound']}-bound, step roof "
                          f"{r['decode_step_roof_gb_per_s']:.2f} (matrix ops "
                          f"{r['decode_roof_gb_per_s']:.2f})")
                depth = f" @ d{a.d}" if a.d else ""
                rows.append((lrec["pp" if k == "pp" else "tg"]["model_desc"], a.t,
                             f"{k}{size}{depth}", ls, us, um / lm, bw))
    log(f"load average after: {loadavg()}")
    print(f"llama-cpp-python {info.get('llama_cpp_python')} | {info.get('system_info')}")
    print(f"Lumen: {a.lumen} | load average (1/5/15 min) at the end: {loadavg()}\n")
    print("| model | threads | test | llama.cpp t/s | Lumen t/s | Lumen / llama.cpp | "
          "Lumen decode bandwidth |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for m, t, test, ls, us, ratio, bw in rows:
        print(f"| {m} | {t} | {test} | {ls} | {us} | {ratio:.2f} | {bw} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"info": info, "runs": dump}, f, indent=1)


if __name__ == "__main__":
    main()
