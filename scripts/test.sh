#!/usr/bin/env bash
# The full test suite, as CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
swift build --build-tests
swift test --skip-build
