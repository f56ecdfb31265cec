#!/usr/bin/env bash
# Build every libFuzzer target (clang) and run each for a bounded time.
#   scripts/fuzz.sh [SECONDS]   (default 60; CI passes LUMEN_FUZZ_SECONDS)
# Seed corpora are generated, never committed; crashes land in build-fuzz/findings/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
dir=build-fuzz
cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLUMEN_FUZZ=ON -DLUMEN_TESTS=OFF -DLUMEN_CUDA=OFF -DLUMEN_VULKAN=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" >/dev/null
export LUMEN_MODEL=${LUMEN_MODEL:-$PWD/models/SmolLM2-135M-Instruct.Q4_1.gguf}
mkdir -p "$dir/findings"
status=0
for bin in "$dir"/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    corpus="$dir/corpus/$name"
    mkdir -p "$corpus"
    # a target may write its own seed corpus (generated, never committed)
    if grep -q -- '--make-seeds' "fuzz/$name.c"; then
        timeout 60 "$bin" --make-seeds "$corpus" >/dev/null 2>&1 || true
    fi
    printf '[fuzz] %s for %ss: ' "$name" "$secs" >&2
    if timeout $((secs + 120)) "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$dir/findings/$name-" \
        -rss_limit_mb=2048 -timeout=10 "$corpus" >"$dir/$name.log" 2>&1; then
        grep -E "stat::number_of_executed_units|cov:" "$dir/$name.log" | tail -2 | tr '\n' ' ' >&2
        echo >&2
    else
        echo "FAILED (see $dir/$name.log)" >&2
        tail -30 "$dir/$name.log" >&2
        status=1
    fi
done
exit $status
