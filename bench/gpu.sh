#!/usr/bin/env bash
# GPU check and benchmark, for a machine with an NVIDIA GPU and no network:
#   bench/gpu.sh [STEP...]      steps: info build test sanitize bw bench synth table
#                               (default: all, in that order; "all" also works)
# Builds with CUDA for the GPU it finds (and Vulkan when a loader and glslang are there),
# runs the CUDA op and end-to-end tests first, then the whole suite, compute-sanitizer on
# the op tests, the device's read and copy bandwidth, `lumen bench` (and --ops) on the
# default model, and on synthetic 1B- and 7B-class Llama shapes with random weights it
# generates (bandwidth does not care what the weights mean). Prints one table: model,
# type, pp512 t/s, tg128 t/s, decode GB/s, % of the measured read bandwidth.
#
# Everything goes under $OUT (default ./gpu-out): one log per step, the bench JSON, the
# table. Steps can run in separate invocations (the build directory is kept), so each
# fits a time limit. Knobs:
#   LUMEN_GPU_ARCHS   CUDA architectures to build (default: the GPU's own, e.g. 90)
#   LUMEN_GPU_BUILD   build directory (default build-gpu)
#   LUMEN_GPU_SYNTH   synthetic models, "SHAPE:TYPE ..." with SHAPE 1b or 7b and TYPE any
#                     weight type (F16, Q4_0 .. Q8_0, Q2_K .. Q6_K); default "1b:Q4_0
#                     1b:Q8_0 1b:Q4_K 7b:Q4_0 7b:Q4_K 7b:Q8_0"; "none" to skip
#   LUMEN_GPU_MODELS  where synthetic models go (default $LUMEN_GPU_BUILD/synth; ~6 GB)
# Untested until a GPU session runs it: fix what it shows first.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-out}
BUILD=${LUMEN_GPU_BUILD:-build-gpu}
MODELS=${LUMEN_GPU_MODELS:-$BUILD/synth}
SYNTH=${LUMEN_GPU_SYNTH:-1b:Q4_0 1b:Q8_0 1b:Q4_K 7b:Q4_0 7b:Q4_K 7b:Q8_0}
DEFAULT_MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
JOBS=$(nproc)
mkdir -p "$OUT"

say() { printf '\033[1m[gpu]\033[0m %s\n' "$*" | tee -a "$OUT/gpu.log" >&2; }
# run NAME CMD...: CMD's output to $OUT/NAME.log (and the terminal's tail), status kept
run() {
    local name=$1
    shift
    say "$name: $*"
    local t0
    t0=$(date +%s)
    "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 15 "$OUT/$name.log" >&2
    say "$name: exit $rc in $(($(date +%s) - t0)) s (log: $OUT/$name.log)"
    return $rc
}

nvcc_bin() { command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null; }

step_info() {
    {
        date -u
        uname -a
        nvidia-smi || echo "nvidia-smi failed"
        nvidia-smi --query-gpu=name,compute_cap,memory.total,clocks.max.memory --format=csv
        "$(nvcc_bin)" --version
        cmake --version | head -1
        command -v vulkaninfo >/dev/null && vulkaninfo --summary 2>&1 | head -30
        command -v compute-sanitizer >/dev/null && compute-sanitizer --version | head -2
        git -C "$ROOT" log --oneline -1
    } >"$OUT/info.log" 2>&1
    cat "$OUT/info.log" >&2
}

gpu_arch() {
    if [ -n "${LUMEN_GPU_ARCHS:-}" ]; then
        echo "$LUMEN_GPU_ARCHS"
        return
    fi
    local cc
    cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
    echo "${cc:-90}"
}

step_build() {
    local arch
    arch=$(gpu_arch)
    PATH="$(dirname "$(nvcc_bin)"):$PATH"
    export PATH
    run configure cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLUMEN_WERROR=ON \
        -DLUMEN_CUDA=ON -DLUMEN_CUDA_ARCHS="$arch" || return 1
    grep -E "lumen: CUDA backend" "$OUT/configure.log" >&2
    run build cmake --build "$BUILD" -j"$JOBS" || return 1
}

step_test() {
    local rc=0
    # the GPU suites first, verbose: each case's largest differences
    for t in test_cuda_ops test_cuda_e2e test_vulkan_ops test_vulkan_e2e; do
        [ -x "$BUILD/$t" ] || continue
        LUMEN_TEST_VERBOSE=1 run "$t" "$BUILD/$t" --verbose --jobs 1 || rc=1
    done
    if grep -q "Failing: [1-9]" "$OUT/test_cuda_e2e.log" 2>/dev/null; then
        # localise: matrix-vector kernels only, then no attention splits
        LUMEN_CUDA_MATMUL=vec run test_cuda_e2e_vec "$BUILD/test_cuda_e2e" --jobs 1
        LUMEN_CUDA_MATMUL=vec LUMEN_CUDA_SPLITS=-1 run test_cuda_e2e_vec_nosplit \
            "$BUILD/test_cuda_e2e" --jobs 1
    fi
    # what the backends see, and each GPU backend against the CPU oracle layer by layer
    run devices "$BUILD/lumen" devices -o json || rc=1
    if [ -f "$DEFAULT_MODEL" ]; then
        for b in cuda vulkan; do
            run "verify_$b" "$BUILD/lumen" verify -m "$DEFAULT_MODEL" --backend "$b" -n 8 || rc=1
            LUMEN_KV_TYPE=q8_0 run "verify_${b}_q8_0" "$BUILD/lumen" verify -m "$DEFAULT_MODEL" \
                --backend "$b" -n 8 || true # CUDA refuses q8_0 KV caches for now
        done
    fi
    (cd "$BUILD" && run ctest ctest --output-on-failure --timeout 900 -j4) || rc=1
    return $rc
}

step_sanitize() {
    if ! command -v compute-sanitizer >/dev/null; then
        say "sanitize: no compute-sanitizer on this machine"
        return 0
    fi
    # Criterion runs each test in a child process: follow them
    run sanitize compute-sanitizer --tool memcheck --target-processes all --error-exitcode 99 \
        "$BUILD/test_cuda_ops" --jobs 1
}

# The device's bandwidth: a read-only kernel (what decode is bound by) and cudaMemcpy
# device to device (read + write), over 2 GiB, best of 20.
step_bw() {
    local src="$BUILD/gpu_bw.cu" bin="$BUILD/gpu_bw"
    cat >"$src" <<'EOF'
#include <cstdio>
#include <cuda_runtime.h>
__global__ void rd(const int4 *p, size_t n, int *out) {
    int4 a = make_int4(0, 0, 0, 0);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const int4 v = __ldcs(p + i);
        a.x ^= v.x, a.y ^= v.y, a.z ^= v.z, a.w ^= v.w;
    }
    if ((a.x ^ a.y ^ a.z ^ a.w) == 0x12345678) *out = 1; /* keeps the loads */
}
#define CK(x) do { cudaError_t e = (x); if (e) { printf("error: %s: %s\n", #x, cudaGetErrorString(e)); return 1; } } while (0)
int main() {
    const size_t bytes = (size_t)2 << 30, n = bytes / 16;
    int4 *a, *b; int *o; int sms;
    CK(cudaMalloc(&a, bytes)); CK(cudaMalloc(&b, bytes)); CK(cudaMalloc(&o, 4));
    CK(cudaMemset(a, 1, bytes)); CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
    float best_rd = 1e30f, best_cp = 1e30f, ms;
    for (int i = 0; i < 20; i++) {
        cudaEventRecord(e0); rd<<<sms * 8, 512>>>(a, n, o); cudaEventRecord(e1);
        CK(cudaEventSynchronize(e1)); cudaEventElapsedTime(&ms, e0, e1); if (ms < best_rd) best_rd = ms;
        cudaEventRecord(e0); cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice); cudaEventRecord(e1);
        CK(cudaEventSynchronize(e1)); cudaEventElapsedTime(&ms, e0, e1); if (ms < best_cp) best_cp = ms;
    }
    printf("read_gb_per_s %.1f\ncopy_gb_per_s %.1f\n", bytes / best_rd / 1e6, 2.0 * bytes / best_cp / 1e6);
    return 0;
}
EOF
    local arch
    arch=$(gpu_arch)
    run bw_build "$(nvcc_bin)" -O2 -arch=sm_"${arch%%;*}" -o "$bin" "$src" || return 1
    run bw "$bin" || return 1
    cp "$OUT/bw.log" "$OUT/bandwidth.txt"
}

bench_model() { # bench_model NAME FILE BACKEND
    local name=$1 file=$2 be=$3
    run "bench_${name}_$be" "$BUILD/lumen" bench -m "$file" --backend "$be" -p 512 -n 128 -r 3 -o json -q
    # keep only the JSON records
    grep '^ *{' "$OUT/bench_${name}_$be.log" | sed 's/^ *//; s/,$//' >>"$OUT/bench.jsonl"
}

step_bench() {
    [ -f "$DEFAULT_MODEL" ] || say "bench: $DEFAULT_MODEL missing (scripts/setup.sh fetches it)"
    : >"$OUT/bench.jsonl"
    if [ -f "$DEFAULT_MODEL" ]; then
        bench_model default "$DEFAULT_MODEL" cuda
        bench_model default "$DEFAULT_MODEL" cpu
        [ -x "$BUILD/test_vulkan_ops" ] && bench_model default "$DEFAULT_MODEL" vulkan
        run bench_ops_cuda "$BUILD/lumen" bench --ops --backend cuda -o md -q
    fi
    return 0
}

# A Llama-shaped GGUF with random weights written straight as blocks (random levels,
# small valid f16 scales: seconds for a 7B shape), with the keys and tokenizer of the test
# suite's tiny model (tests/helpers/tiny_model.c), streamed through runtime/gguf.h.
gen_build() {
    local src="$BUILD/gen_model.c" bin="$BUILD/gen_model"
    [ -x "$bin" ] && return 0
    cat >"$src" <<'EOF'
#include "gguf.h"
#include "helpers/tiny_model.h"
#include "quant.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t g_rs = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    g_rs ^= g_rs << 13, g_rs ^= g_rs >> 7, g_rs ^= g_rs << 17;
    return g_rs;
}

/* offsets of the f16 scale fields in a block of t (-1: none) */
static void scale_offsets(lm_type t, int off[2]) {
    off[0] = off[1] = -1;
    switch (t) {
    case LM_TYPE_Q4_0:
    case LM_TYPE_Q5_0:
    case LM_TYPE_Q8_0:
        off[0] = 0;
        break;
    case LM_TYPE_Q4_1:
    case LM_TYPE_Q5_1:
    case LM_TYPE_Q4_K:
    case LM_TYPE_Q5_K:
        off[0] = 0, off[1] = 2;
        break;
    case LM_TYPE_Q2_K:
        off[0] = 80, off[1] = 82;
        break;
    case LM_TYPE_Q3_K:
        off[0] = 108;
        break;
    case LM_TYPE_Q6_K:
        off[0] = 208;
        break;
    default:
        break;
    }
}

/* n bytes of tensor data of type t: random, with scales small and finite */
static void fill(lm_type t, unsigned char *p, size_t n) {
    if (t == LM_TYPE_F32) { /* norms */
        for (size_t i = 0; i < n / 4; i++) ((float *)p)[i] = 1.0f;
        return;
    }
    for (size_t i = 0; i + 8 <= n; i += 8) {
        const uint64_t r = rnd();
        memcpy(p + i, &r, 8);
    }
    if (t == LM_TYPE_F16) { /* |x| < 2^-5 */
        for (size_t i = 0; i < n / 2; i++)
            ((uint16_t *)p)[i] = (((uint16_t *)p)[i] & 0x83ffu) | 0x2400u;
        return;
    }
    int off[2];
    scale_offsets(t, off);
    const size_t bs = (size_t)lm_type_get((uint32_t)t).size;
    for (size_t b = 0; b + bs <= n; b += bs)
        for (int k = 0; k < 2; k++)
            if (off[k] >= 0) {
                const uint16_t h = (uint16_t)(0x1c00u + (rnd() & 0x3ffu)); /* [2^-8, 2^-7) */
                memcpy(p + b + off[k], &h, 2);
            }
}

static lm_type type_of(const char *s) {
    static const lm_type ts[] = {LM_TYPE_F16,  LM_TYPE_Q4_0, LM_TYPE_Q4_1, LM_TYPE_Q5_0,
                                 LM_TYPE_Q5_1, LM_TYPE_Q8_0, LM_TYPE_Q2_K, LM_TYPE_Q3_K,
                                 LM_TYPE_Q4_K, LM_TYPE_Q5_K, LM_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        if (!strcmp(s, lm_type_get((uint32_t)ts[i]).name)) return ts[i];
    return LM_TYPE_COUNT;
}

typedef struct {
    char name[64];
    lm_type type;
    int64_t ne[2]; /* ne[1] = 0: 1-D */
} gen_tensor;

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s OUT n_embd n_layer n_head n_head_kv n_ff TYPE\n", argv[0]);
        return 2;
    }
    const int64_t E = atoll(argv[2]), L = atoll(argv[3]), H = atoll(argv[4]), HK = atoll(argv[5]),
                  F = atoll(argv[6]), D = E / H;
    const lm_type wt = type_of(argv[7]);
    if (wt == LM_TYPE_COUNT) return fprintf(stderr, "gen_model: unknown type %s\n", argv[7]), 2;
    /* keys and tokenizer of the tiny model, with this shape's hyper-parameters */
    lm_tiny_spec spec = lm_tiny_default_spec();
    void *tmem;
    size_t tsize;
    lm_gguf *tg = NULL;
    if (!lm_tiny_write_memory(&spec, &tmem, &tsize) ||
        lm_gguf_open_memory(tmem, tsize, NULL, &tg) != LM_OK)
        return fprintf(stderr, "gen_model: template: %s\n", lm_last_error()), 1;
    lm_gguf_writer *w = NULL;
    if (lm_gguf_writer_create(3, &w) != LM_OK) return 1;
    const struct {
        const char *key;
        int64_t v;
    } hp[] = {{"llama.embedding_length", E},     {"llama.block_count", L},
              {"llama.attention.head_count", H}, {"llama.attention.head_count_kv", HK},
              {"llama.feed_forward_length", F},  {"llama.context_length", 4096},
              {"llama.rope.dimension_count", D}};
    for (int64_t i = 0; i < lm_gguf_n_kv(tg); i++) {
        const lm_gguf_kv *kv = lm_gguf_kv_at(tg, i);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.data);
        int done = !strcmp(key, "general.alignment"); /* the writer's own (32) */
        for (size_t j = 0; j < sizeof hp / sizeof hp[0]; j++)
            if (!strcmp(key, hp[j].key))
                done = lm_gguf_writer_add_u32(w, key, (uint32_t)hp[j].v) == LM_OK ? 1 : -1;
        if (!done && lm_gguf_writer_add_kv(w, key, &kv->value) != LM_OK) done = -1;
        if (done < 0) return fprintf(stderr, "gen_model: key %s: %s\n", key, lm_last_error()), 1;
    }
    const lm_gguf_tensor *te = lm_gguf_find_tensor(tg, "token_embd.weight");
    if (!te) return fprintf(stderr, "gen_model: the template has no token_embd\n"), 1;
    const int64_t vocab = te->ne[1];
    gen_tensor *ts = calloc((size_t)(2 + 9 * L), sizeof *ts);
    int n = 0;
#define ADD(nm, ty, a, b)                                                                          \
    (snprintf(ts[n].name, sizeof ts[n].name, "%s", nm), ts[n].type = ty, ts[n].ne[0] = a,          \
     ts[n].ne[1] = b, n++)
    ADD("token_embd.weight", wt, E, vocab);
    ADD("output_norm.weight", LM_TYPE_F32, E, 0);
    for (int64_t l = 0; l < L; l++) {
        char nm[64];
#define LAYER(sfx, ty, a, b)                                                                       \
    (snprintf(nm, sizeof nm, "blk.%lld.%s", (long long)l, sfx), ADD(nm, ty, a, b))
        LAYER("attn_norm.weight", LM_TYPE_F32, E, 0);
        LAYER("attn_q.weight", wt, E, H * D);
        LAYER("attn_k.weight", wt, E, HK * D);
        LAYER("attn_v.weight", wt, E, HK * D);
        LAYER("attn_output.weight", wt, H * D, E);
        LAYER("ffn_norm.weight", LM_TYPE_F32, E, 0);
        LAYER("ffn_gate.weight", wt, E, F);
        LAYER("ffn_up.weight", wt, E, F);
        LAYER("ffn_down.weight", wt, F, E);
    }
    for (int i = 0; i < n; i++)
        if (lm_gguf_writer_add_tensor_info(w, ts[i].name, ts[i].type, ts[i].ne[1] ? 2 : 1,
                                           ts[i].ne) != LM_OK)
            return fprintf(stderr, "gen_model: %s: %s\n", ts[i].name, lm_last_error()), 1;
    void *meta;
    size_t msize;
    FILE *f = fopen(argv[1], "wb");
    if (!f || lm_gguf_writer_write_meta(w, &meta, &msize) != LM_OK ||
        fwrite(meta, 1, msize, f) != msize)
        return fprintf(stderr, "gen_model: cannot write %s\n", argv[1]), 1;
    const size_t chunk = (size_t)64 << 20, align = 32; /* the writer's default alignment */
    unsigned char *buf = malloc(chunk), zero[32] = {0};
    for (int i = 0; i < n; i++) {
        uint64_t bytes = 0;
        lm_gguf_tensor_nbytes(ts[i].type, ts[i].ne[1] ? 2 : 1, ts[i].ne, &bytes);
        const size_t bs = (size_t)lm_type_get((uint32_t)ts[i].type).size, step = chunk / bs * bs;
        for (uint64_t done = 0; done < bytes; done += step) {
            const size_t k = bytes - done < step ? (size_t)(bytes - done) : step;
            fill(ts[i].type, buf, k);
            if (fwrite(buf, 1, k, f) != k) return fprintf(stderr, "gen_model: write failed\n"), 1;
        }
        if (bytes % align && fwrite(zero, 1, align - bytes % align, f) != align - bytes % align)
            return fprintf(stderr, "gen_model: write failed\n"), 1;
    }
    if (fclose(f) != 0) return fprintf(stderr, "gen_model: write failed\n"), 1;
    printf("%s: %d tensors, %s weights\n", argv[1], n, argv[7]);
    return 0;
}
EOF
    local cudalib
    cudalib="$(dirname "$(readlink -f "$(nvcc_bin)")")/../lib64"
    run gen_build cc -O2 -std=c11 -D_GNU_SOURCE -DLM_SOURCE_DIR="\"$ROOT\"" \
        -DLM_BINARY_DIR="\"$ROOT/$BUILD\"" -Iinclude -Iruntime -Ikernels -Itests "$src" \
        tests/helpers/tiny_model.c tests/helpers/test_util.c "$BUILD/liblumen.a" -L"$cudalib" \
        -lcudart_static -lpcre2-8 -lpthread -ldl -lrt -lm -o "$bin"
}

shape_args() { # n_embd n_layer n_head n_head_kv n_ff
    case $1 in
    1b) echo "2048 16 32 8 8192" ;;    # Llama 3.2 1B
    7b) echo "4096 32 32 32 11008" ;; # Llama 2 7B
    *) return 1 ;;
    esac
}

step_synth() {
    [ "$SYNTH" = none ] && return 0
    gen_build || return 1
    mkdir -p "$MODELS"
    for spec in $SYNTH; do
        local shape=${spec%%:*} type=${spec##*:} args file
        args=$(shape_args "$shape") || {
            say "synth: unknown shape $shape"
            continue
        }
        file="$MODELS/llama-$shape-$type.gguf"
        if [ ! -f "$file" ]; then
            run "gen_${shape}_$type" "$BUILD/gen_model" "$file" $args "$type" || continue
        fi
        bench_model "${shape}_$type" "$file" cuda
    done
}

# model, type, pp512 t/s, tg128 t/s, decode GB/s (weights read per token x tok/s), % of
# the measured read bandwidth
step_table() {
    local bw
    bw=$(awk '/^read_gb_per_s/ {print $2}' "$OUT/bandwidth.txt" 2>/dev/null)
    [ -f "$OUT/bench.jsonl" ] || {
        say "table: no bench results"
        return 0
    }
    awk -v bw="${bw:-0}" '
    function val(k,   m) { if (match($0, "\"" k "\":[^,}]*")) { m = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3); gsub(/"/, "", m); return m } return "" }
    {
        key = val("model_desc") " | " val("backend"); d[key] = 1
        if (val("test") ~ /^pp/) pp[key] = val("avg_tok_per_s")
        if (val("test") ~ /^tg/) { tg[key] = val("avg_tok_per_s"); gb[key] = val("weight_bytes_per_token") * tg[key] / 1e9 }
    }
    END {
        printf "| model | backend | pp512 t/s | tg128 t/s | decode GB/s | %% of %s GB/s |\n", bw
        printf "|---|---|---:|---:|---:|---:|\n"
        for (k in d) {
            pct = "-"
            if (bw > 0 && k ~ /cuda/) pct = sprintf("%.1f", 100 * gb[k] / bw)
            printf "| %s | %.1f | %.1f | %.1f | %s |\n", k, pp[k], tg[k], gb[k], pct
        }
    }' "$OUT/bench.jsonl" | tee "$OUT/table.md"
}

steps=${*:-all}
[ "$steps" = all ] && steps="info build test sanitize bw bench synth table"
rc=0
for s in $steps; do
    case $s in
    info | build | test | sanitize | bw | bench | synth | table) "step_$s" || rc=1 ;;
    *)
        say "unknown step $s"
        rc=2
        ;;
    esac
done
say "done (exit $rc); results in $OUT"
exit $rc
