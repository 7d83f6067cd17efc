#!/usr/bin/env bash
# The full test suite, as CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
swift build --build-tests
swift test --skip-build
# Fuzzing smoke: each reader of outside bytes for 20000 inputs under libFuzzer + AddressSanitizer
# (its own build in .build-fuzz; about a minute in all). The seed is fixed, so in a fresh clone, as
# CI runs it, every run tries the same inputs. The long run: docs/fuzzing.md.
FUZZ_FLAGS=-seed=1 scripts/fuzz.sh all 20000
