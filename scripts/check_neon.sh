#!/usr/bin/env bash
# The AArch64 NEON kernels, checked without an ARM machine: cross-compile the CPU kernel
# files and tests/neon/neon_check.c with aarch64-linux-gnu-gcc (warnings are errors),
# make sure the oracle and the NEON objects hold no fused multiply-add (it would change
# roundings), then run the checker under qemu-aarch64: every NEON output is compared with
# the scalar oracle's, bit for bit, on fresh random inputs.
#   scripts/check_neon.sh [build dir]     (default build-neon/, kept out of git)
#   LUMEN_TEST_SEED=<seed> scripts/check_neon.sh   replays a run
# Without the cross tools it prints "SKIP: <reason>" and exits 0, except under CI=true,
# where missing tools are an error (scripts/setup.sh installs them).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$src/build-neon}

CC=${LUMEN_AARCH64_CC:-aarch64-linux-gnu-gcc}
OBJDUMP=${LUMEN_AARCH64_OBJDUMP:-aarch64-linux-gnu-objdump}
QEMU=${LUMEN_QEMU_AARCH64:-qemu-aarch64}
SYSROOT=${LUMEN_AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}

missing=()
for tool in "$CC" "$OBJDUMP" "$QEMU"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -d "$SYSROOT/lib" ] || missing+=("$SYSROOT (libc6-dev-arm64-cross)")
if [ ${#missing[@]} -gt 0 ]; then
    reason="no AArch64 cross tools: missing ${missing[*]} (Debian: gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)"
    if [ "${CI:-}" = true ]; then
        echo "ERROR: $reason" >&2
        exit 1
    fi
    echo "SKIP: $reason"
    exit 0
fi

mkdir -p "$out"
# The project's flags (CMakeLists.txt): ISO C11, so no contraction, _GNU_SOURCE, its
# warnings as errors; the NEON files and the checker also with -Wunused-parameter.
flags=(-O2 -std=c11 -ffp-contract=off -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Werror
       -D_GNU_SOURCE -I"$src/include")

# Every CPU kernel file must cross-compile cleanly (the x86 ones to their stubs); the
# checker links the scalar and NEON tables, the dispatch and the weight quantizers.
objs=()
for f in "$src"/kernels/cpu/*.c; do
    extra=()
    case $(basename "$f") in cpu_dot_neon.c | cpu_dispatch.c) extra=(-Wunused-parameter) ;; esac
    "$CC" "${flags[@]}" "${extra[@]}" -c "$f" -o "$out/$(basename "$f" .c).o"
done
for f in cpu_dot_neon cpu_dot_scalar cpu_dispatch cpu_dot_avx2 cpu_dot_avx512 cpu_act_avx2; do
    objs+=("$out/$f.o")
done
for f in runtime/quant.c runtime/quant_k.c runtime/status.c tests/neon/neon_check.c; do
    extra=()
    [ "$f" = tests/neon/neon_check.c ] && extra=(-Wunused-parameter)
    "$CC" "${flags[@]}" "${extra[@]}" -c "$src/$f" -o "$out/$(basename "$f" .c).o"
    objs+=("$out/$(basename "$f" .c).o")
done
"$CC" -o "$out/neon_check" "${objs[@]}" -lm -lpthread

# fmadd/fmsub/fnmadd/fnmsub (scalar) and fmla/fmls (vector) round once where the oracle
# rounds twice
for o in cpu_dot_neon cpu_dot_scalar; do
    fused=$("$OBJDUMP" -d "$out/$o.o" | grep -cE $'\t''f(n?m(add|sub)|mla|mls)[[:space:]]' || true)
    if [ "$fused" != 0 ]; then
        echo "FAIL: $o.o holds $fused fused multiply-add instructions" >&2
        exit 1
    fi
done

exec "$QEMU" -L "$SYSROOT" "$out/neon_check"
