#!/usr/bin/env python3
"""Load test for `lumen serve`: N concurrent streaming clients for a fixed time.

Each client sends streaming /v1/completions requests back to back (different prompts,
ignore_eos so every request generates max_tokens), and times every token as it arrives.
Reports aggregate tokens/s over the window, time to first token and inter-token latency
percentiles, errors, and the server's RSS before and after (a leak shows as growth).

    python3 bench/serve_load.py --streams 1 8 32 --duration 60            # starts the server
    python3 bench/serve_load.py --url http://127.0.0.1:8080 --pid PID ... # an existing one

Standard library only. Tokens are counted exactly: each request asks for logprobs=0, so
every chunk lists the tokens it carries.
"""
import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPICS = ["the sea", "a mountain village", "an old clock", "a robot learning to paint",
          "the first day of winter", "a lost cat", "a busy train station", "a lighthouse",
          "the desert at night", "a bakery", "a chess match", "a thunderstorm", "bees",
          "a library after closing", "a river", "the moon landing"]


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def start_server(args, parallel):
    cmd = [args.lumen, "serve", "-m", args.model, "--port", "0", "-t", str(args.threads),
           "--parallel", str(parallel), "--ctx", str(args.ctx), "--queue", "1024", "-q"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        m = re.search(r"listening on http://([\d.]+):(\d+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            return p, f"http://{m.group(1)}:{m.group(2)}"
    raise RuntimeError("the server did not start")


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.tokens = 0
        self.requests = 0
        self.errors = []
        self.ttft = []
        self.itl = []


def one_request(host, port, key, body, stats, deadline):
    """Stream one completion; returns False once the window is over."""
    c = http.client.HTTPConnection(host, port, timeout=600)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    t0 = time.perf_counter()
    last, n_tok, ttft, itl = None, 0, None, []
    try:
        c.request("POST", "/v1/completions", body=body, headers=headers)
        r = c.getresponse()
        if r.status != 200:
            with stats.lock:
                stats.errors.append(f"HTTP {r.status}: {r.read()[:200]!r}")
            return time.perf_counter() < deadline
        while True:
            line = r.readline()
            if not line:
                raise RuntimeError("stream ended without [DONE]")
            now = time.perf_counter()
            if now >= deadline:  # the window is over: count nothing after it
                break
            if not line.startswith(b"data: "):
                continue
            data = line[6:].strip()
            if data == b"[DONE]":
                with stats.lock:
                    stats.requests += 1
                break
            ev = json.loads(data)
            if "error" in ev:
                raise RuntimeError(ev["error"]["message"])
            lp = ev["choices"][0].get("logprobs") or {}
            k = len(lp.get("tokens", []))
            if k == 0:
                continue
            if ttft is None:
                ttft = now - t0
            else:  # a chunk with k tokens: k gaps of equal share
                itl.extend([(now - last) / k] * k)
            last = now
            n_tok += k
    except Exception as ex:  # noqa: BLE001 - counted and reported
        with stats.lock:
            stats.errors.append(repr(ex))
    finally:
        c.close()
        with stats.lock:
            stats.tokens += n_tok
            if ttft is not None:
                stats.ttft.append(ttft)
            stats.itl.extend(itl)
    return time.perf_counter() < deadline


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run(url, key, streams, duration, max_tokens, pid):
    u = urllib.parse.urlparse(url)
    host, port = u.hostname, u.port
    # warm up (and fill the prefix cache as a steady state would)
    one_request(host, port, key, json.dumps({"prompt": "Hello", "max_tokens": 4}), Stats(),
                time.perf_counter() + 600)
    rss0 = rss_kib(pid) if pid else None
    stats = Stats()
    t_start = time.perf_counter()
    deadline = t_start + duration

    def worker(i):
        k = 0
        while time.perf_counter() < deadline:
            topic = TOPICS[(i + k) % len(TOPICS)]
            body = json.dumps({"prompt": f"Story {i}.{k}: a short story about {topic}.\n",
                               "max_tokens": max_tokens, "temperature": 0.8, "seed": i * 1000 + k,
                               "stream": True, "ignore_eos": True, "logprobs": 0})
            k += 1
            if not one_request(host, port, key, body, stats, deadline):
                break

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = min(time.perf_counter(), deadline) - t_start
    time.sleep(1.0)  # let the server drop the cut streams
    rss1 = rss_kib(pid) if pid else None
    return {
        "streams": streams, "seconds": round(elapsed, 1), "requests_done": stats.requests,
        "errors": len(stats.errors), "error_samples": stats.errors[:3], "tokens": stats.tokens,
        "tok_per_s": round(stats.tokens / elapsed, 2),
        "ttft_ms": {p: round(1e3 * pct(stats.ttft, p), 1) for p in (50, 90, 99)},
        "itl_ms": {p: round(1e3 * pct(stats.itl, p), 1) for p in (50, 90, 99)},
        "itl_mean_ms": round(1e3 * statistics.fmean(stats.itl), 1) if stats.itl else None,
        "rss_mib_before": round(rss0 / 1024, 1) if rss0 else None,
        "rss_mib_after": round(rss1 / 1024, 1) if rss1 else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="an existing server (default: start one per stream count)")
    ap.add_argument("--pid", type=int, help="the existing server's pid, for its RSS")
    ap.add_argument("--api-key", default=os.environ.get("LUMEN_API_KEY"))
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--lumen", default=os.path.join(ROOT, "build", "lumen"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=512, help="per sequence")
    ap.add_argument("--json", action="store_true", help="one JSON line per run")
    args = ap.parse_args()
    results = []
    for n in args.streams:
        proc = None
        if args.url:
            url, pid = args.url, args.pid
        else:
            proc, url = start_server(args, max(n, 1))
            pid = proc.pid
        try:
            res = run(url, args.api_key, n, args.duration, args.max_tokens, pid)
        finally:
            if proc:
                proc.terminate()
                proc.wait(timeout=120)
        results.append(res)
        if args.json:
            print(json.dumps(res), flush=True)
        else:
            print(f"{n:3d} streams: {res['tok_per_s']:8.2f} tok/s  {res['tokens']} tokens in "
                  f"{res['seconds']} s, {res['requests_done']} requests done, {res['errors']} errors | "
                  f"TTFT p50/p90/p99 {res['ttft_ms'][50]}/{res['ttft_ms'][90]}/{res['ttft_ms'][99]} ms | "
                  f"ITL p50/p90/p99 {res['itl_ms'][50]}/{res['itl_ms'][90]}/{res['itl_ms'][99]} ms | "
                  f"RSS {res['rss_mib_before']} -> {res['rss_mib_after']} MiB", flush=True)
            for e in res["error_samples"]:
                print(f"      error: {e}", flush=True)
    if len(results) > 1 and results[0]["tok_per_s"] > 0:
        base = results[0]["tok_per_s"]
        print("scaling vs the first: " + ", ".join(
            f"{r['streams']}: {r['tok_per_s'] / base:.1f}x" for r in results), flush=True)
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
