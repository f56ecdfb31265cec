#!/usr/bin/env bash
# First command of the README: set everything up, then ask the default model a question.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/lumen run --chat -n 96 --temp 0.3 --seed 42 \
    -p "${1:-Give me three short tips for learning to cook.}"
