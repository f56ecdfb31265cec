#!/usr/bin/env bash
# Second command of the README: set up, then run the whole test suite:
#   1. release build (warnings are errors under CI=true) and every Criterion suite
#   2. the same suites under AddressSanitizer + UndefinedBehaviorSanitizer
#   2b. the parser suites under valgrind
#   3. every libFuzzer target for a bounded time (LUMEN_FUZZ_SECONDS, default 30)
# LUMEN_SKIP_ASAN=1 / LUMEN_SKIP_FUZZ=1 skip steps 2 / 3 for a quick local run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-build

say() { printf '\033[1m[test]\033[0m %s\n' "$*" >&2; }
jobs=$(nproc)
t0=$(date +%s)

say "release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
say "unit and end-to-end suites (release)"
(cd build && ctest --output-on-failure --timeout 900)

# `lumen quantize` output read back by llama.cpp's own Python reader (the gguf package):
# a generated F32 model in every type, and the default model re-quantized to Q4_K_M.
if python3 -c "import gguf, numpy" 2>/dev/null; then
    say "quantized files checked with the gguf package (scripts/check_quantized.py)"
    qdir=$(mktemp -d)
    LUMEN_KEEP_QUANT_DIR="$qdir" build/test_quantize --filter 'quantize/every_type_wide_model' \
        >/dev/null
    python3 scripts/check_quantized.py "$qdir/tiny-wide-source.gguf" \
        $(ls "$qdir"/tiny-wide-*.gguf | grep -v -- -source.gguf)
    build/lumen quantize models/SmolLM2-135M-Instruct.Q4_1.gguf "$qdir/smollm2-q4_k_m.gguf" \
        Q4_K_M --allow-requantize 2>/dev/null
    python3 scripts/check_quantized.py models/SmolLM2-135M-Instruct.Q4_1.gguf \
        "$qdir/smollm2-q4_k_m.gguf"
    rm -rf "$qdir"
else
    say "skipping the gguf-package check of quantized files: python3 gguf/numpy missing"
fi

if [ -x build/test_vulkan_ops ]; then
    # the Khronos layer with synchronization validation: any message fails the suite
    say "Vulkan op suite under the validation layers"
    LUMEN_VULKAN_VALIDATE=1 build/test_vulkan_ops --jobs 2
fi

if [ "${LUMEN_SKIP_VALGRIND:-0}" != 1 ] && command -v valgrind >/dev/null; then
    # --trace-children: Criterion runs each test in a child process
    for t in test_gguf test_gguf_malformed test_tokenizer; do
        say "$t under valgrind"
        valgrind -q --trace-children=yes --leak-check=full --errors-for-leak-kinds=definite \
            --error-exitcode=99 "build/$t" --jobs 1
    done
fi

if [ "${LUMEN_SKIP_ASAN:-0}" != 1 ]; then
    say "sanitizer build (ASan + UBSan)"
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLUMEN_SANITIZE=ON >/dev/null
    cmake --build build-asan -j"$jobs"
    say "suites under ASan + UBSan"
    # the openai-client server suite (16 concurrent streams) runs in the release step only;
    # the suites that open Vulkan devices (test_vulkan_*, and test_verify through `lumen
    # devices` / `verify --backend vulkan`) run with leak checks off: lavapipe's driver
    # (unloaded at exit, so its frames cannot even be named) keeps allocations; ASan still
    # checks every access
    export LUMEN_SKIP_PY_SERVE=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp"
    (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        ctest --output-on-failure --timeout 1500 -E '^test_v(ulkan|erify)')
    (cd build-asan && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
        ctest --output-on-failure --timeout 1500 -R '^test_v(ulkan|erify)')
    unset LUMEN_SKIP_PY_SERVE
fi

if [ "${LUMEN_SKIP_FUZZ:-0}" != 1 ] && [ -x scripts/fuzz.sh ]; then
    say "fuzzers, ${LUMEN_FUZZ_SECONDS:-30} s each"
    scripts/fuzz.sh "${LUMEN_FUZZ_SECONDS:-30}"
fi
say "all done in $(( $(date +%s) - t0 )) s"
