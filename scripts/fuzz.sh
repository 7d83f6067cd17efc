#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer + AddressSanitizer) of the readers of outside bytes:
#
#   scripts/fuzz.sh [safetensors|index|config|tokenizer|gguf|all] [runs]
#
# Default: every target for 20000 runs (a smoke, about a minute after the build). docs/fuzzing.md
# records the long run (1000000 runs per target). Each target's corpus grows across runs in
# .build-fuzz/corpus/TARGET; seeds are made afresh from Fixtures/ and ../shared/tokenizers by
# scripts/fuzz-seeds.py. A crash, hang (-timeout), oversized allocation (-rss_limit_mb) or
# malformed error report leaves its input in .build-fuzz/findings/TARGET/ and fails the script;
# rerun one with MOE_COMPRESS_FUZZ_TARGET=TARGET SWIFT_DETERMINISTIC_HASHING=1 SWIFT_BACKTRACE=enable=no
# .build-fuzz/release/moe-compress-fuzz FILE.
# Extra libFuzzer flags can be passed in FUZZ_FLAGS (e.g. FUZZ_FLAGS=-seed=1).
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:-all}
runs=${2:-20000}
targets=(safetensors index config tokenizer gguf)
if [ "$target" != all ]; then
  [[ " ${targets[*]} " == *" $target "* ]] || { echo "unknown target '$target' (${targets[*]} or all)" >&2; exit 2; }
  targets=("$target")
fi

scratch=.build-fuzz
# Not `--sanitize fuzzer --sanitize address`: SwiftPM passes those to swiftc as two flags in no
# fixed order and swiftc keeps only the last, so coverage or ASan went missing by chance. SwiftPM
# must still be told of the fuzzer (it then links libFuzzer's main instead of the module's); the
# later -sanitize= list is the one swiftc keeps, and clang (the C targets) takes every -fsanitize.
MOE_COMPRESS_FUZZ=1 swift build -c release --product moe-compress-fuzz --scratch-path "$scratch" \
  --sanitize fuzzer -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=address
binary=$scratch/release/moe-compress-fuzz

rm -rf "$scratch/seeds"
python3 scripts/fuzz-seeds.py "$scratch/seeds"

# Readers that open a path get the input as a file here; tmpfs keeps that off the disk.
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=${TMPDIR:-/tmp}
scratch_files=$(mktemp -d "$shm/moe-compress-fuzz.XXXXXX")
trap 'rm -rf "$scratch_files"' EXIT

for name in "${targets[@]}"; do
  corpus=$scratch/corpus/$name seeds=$scratch/seeds/$name findings=$scratch/findings/$name
  mkdir -p "$corpus" "$findings"
  cat Fuzz/dictionaries/json.dict "Fuzz/dictionaries/$name.dict" > "$scratch/$name.dict"
  # Room for the largest seed (the real tokenizers are megabytes), and at least 1 MiB.
  largest=$(find "$seeds" -type f -printf '%s\n' | sort -n | tail -1)
  max_len=$(( largest > 1048576 ? largest : 1048576 ))
  echo "== $name: $runs runs (seeds $(ls "$seeds" | wc -l), corpus $(ls "$corpus" | wc -l), max_len $max_len)"
  # shellcheck disable=SC2086
  # Fixed hashing makes dictionary order, and so each input's path, the same on every rerun; the
  # Swift backtracer would race libFuzzer's and ASan's own crash reports.
  MOE_COMPRESS_FUZZ_TARGET=$name TMPDIR=$scratch_files SWIFT_DETERMINISTIC_HASHING=1 SWIFT_BACKTRACE=enable=no \
    LSAN_OPTIONS=suppressions=Fuzz/lsan.supp "$binary" \
    -runs="$runs" -max_len="$max_len" -timeout=25 -rss_limit_mb=4096 -dict="$scratch/$name.dict" \
    -artifact_prefix="$findings/" -print_final_stats=1 ${FUZZ_FLAGS:-} "$corpus" "$seeds"
done
