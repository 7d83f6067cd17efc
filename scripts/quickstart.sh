#!/usr/bin/env bash
# Sets up a fresh machine and runs the main job on the embedded default model:
# installs the system libraries, builds the release binary, then inspects and evaluates
# Fixtures/default-model on held-out text.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
swift build -c release --product moe-compress
binary="$(swift build -c release --show-bin-path)/moe-compress"
"$binary" inspect Fixtures/default-model
"$binary" eval Fixtures/default-model --text Fixtures/text/heldout.txt --seq-len 128 --max-tokens 4096
# The same in bf16 compute (faster on CPUs with AVX512-BF16, at bf16's accuracy).
"$binary" eval Fixtures/default-model --text Fixtures/text/heldout.txt --seq-len 128 --max-tokens 4096 --compute bf16
