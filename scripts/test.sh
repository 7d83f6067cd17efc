#!/usr/bin/env bash
# The full test suite, as CI runs it: once with the CPU's widest kernels, then again with the wider
# instruction sets switched off (oneDNN's ONEDNN_MAX_CPU_ISA and this package's
# MOE_COMPRESS_MAX_ISA), so that any machine also exercises the AVX2 and the portable paths.
set -euo pipefail
cd "$(dirname "$0")/.."
# qemu's user-mode emulator runs the binary as CPUs without AVX-512 or AVX (EmulatedCPUTests).
scripts/install-system-packages.sh qemu-user
swift build --build-tests
echo "== tests, widest kernels this CPU has"
swift test --skip-build
echo "== tests, at most AVX2 (no AVX-512, no native bf16 matrix product)"
ONEDNN_MAX_CPU_ISA=AVX2 MOE_COMPRESS_MAX_ISA=avx2 swift test --skip-build
echo "== tests, portable C kernels, oneDNN at SSE4.1"
ONEDNN_MAX_CPU_ISA=SSE41 MOE_COMPRESS_MAX_ISA=scalar swift test --skip-build
echo "== fuzzing smoke"
# Fuzzing smoke: each reader of outside bytes for 20000 inputs under libFuzzer + AddressSanitizer
# (its own build in .build-fuzz; about a minute in all). The seed is fixed, so in a fresh clone, as
# CI runs it, every run tries the same inputs. The long run: docs/fuzzing.md.
FUZZ_FLAGS=-seed=1 scripts/fuzz.sh all 20000
