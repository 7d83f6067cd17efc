#!/usr/bin/env bash
# Sets up a fresh machine and runs the main job on the embedded default model:
# installs the system libraries, builds the release binary, inspects and evaluates
# Fixtures/default-model on held-out text, then calibrates it and prunes 25% of its experts with
# the default method (REAP, the best at 25% in docs/pruning.md), then merges them down to 75% with the
# default merge (docs/merging.md), then quantizes the model and its pruned output to 4.5 bits per
# weight as GGUF for llama.cpp, printing size and perplexity before and after each.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
swift build -c release --product moe-compress
binary="$(swift build -c release --show-bin-path)/moe-compress"
"$binary" inspect Fixtures/default-model
"$binary" eval Fixtures/default-model --text Fixtures/text/heldout.txt --seq-len 128 --max-tokens 4096
# The same in bf16 compute (faster on CPUs with AVX512-BF16, at bf16's accuracy).
"$binary" eval Fixtures/default-model --text Fixtures/text/heldout.txt --seq-len 128 --max-tokens 4096 --compute bf16
# Calibrate on the calibration text, then prune a quarter of the experts and measure what it cost.
work="${TMPDIR:-/tmp}/moe-compress-quickstart"
mkdir -p "$work"
"$binary" calibrate Fixtures/default-model --data Fixtures/text/calibration.txt --seq-len 128 --samples 256 \
  -o "$work/stats.safetensors" --force
"$binary" prune Fixtures/default-model -o "$work/pruned-25" --ratio 0.25 --method reap --stats "$work/stats.safetensors" \
  --eval Fixtures/text/heldout.txt --eval-seq-len 128 --eval-max-tokens 4096 --force
# Merge the experts instead, down to 75% of them (6 of 8 per layer), from the same statistics.
"$binary" merge Fixtures/default-model -o "$work/merged-25" --ratio 0.25 --stats "$work/stats.safetensors" \
  --eval Fixtures/text/heldout.txt --eval-seq-len 128 --eval-max-tokens 4096 --force
# Quantize to a GGUF llama.cpp runs, averaging 4.5 bits per weight: each tensor's type chosen by
# the measured error it causes on the calibration tokens (docs/quantization.md), the input model
# and its pruned output alike.
"$binary" quantize Fixtures/default-model -o "$work/default-4.5.gguf" --bits 4.5 --stats "$work/stats.safetensors" \
  --eval Fixtures/text/heldout.txt --eval-seq-len 128 --eval-max-tokens 4096 --force
# Its 25%-pruned output (REAP, from the same statistics), pruned in memory and quantized without
# writing the pruned checkpoint first.
"$binary" quantize Fixtures/default-model -o "$work/pruned-25-4.5.gguf" --prune-to 6 --bits 4.5 \
  --stats "$work/stats.safetensors" --eval Fixtures/text/heldout.txt --eval-seq-len 128 --eval-max-tokens 4096 --force
