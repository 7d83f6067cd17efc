#!/usr/bin/env bash
# Makes llama.cpp available to the fixture scripts and the quality-table script.
#
# Source: the pinned PyPI sdist llama-cpp-python==0.3.36, which vendors llama.cpp in
# vendor/llama.cpp (llama.cpp commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f).
#
# What it does (each step is skipped when already done; run it again at any time):
#   1. build tools: cmake (and ninja) from Debian apt (`apt-get install -y cmake ninja-build`)
#      when cmake is missing and we are root; otherwise `pip install cmake ninja` into the venv.
#   2. downloads the sdist with `pip download --no-deps --no-binary llama-cpp-python` into
#      $LLAMA_DL_DIR (reusing a tarball already there) and checks its sha256.
#      (`--no-binary :all:` is not used: it also forces pip to compile the build
#      dependencies cmake and ninja from source, which takes tens of minutes.)
#   3. builds vendor/llama.cpp with cmake (Release, shared libs, GGML_NATIVE=OFF with
#      SSE4.2/AVX/AVX2/BMI2/FMA/F16C, no AVX-512, so the result runs on all our machines) and
#      copies the tools to $LLAMA_CPP_DIR/bin and the shared libs to $LLAMA_CPP_DIR/lib.
#   4. installs the Python binding into $VENV from the same sdist with -DLLAMA_BUILD=OFF (no
#      second compile) and links $VENV/.../llama_cpp/lib -> $LLAMA_CPP_DIR/lib, so
#      `import llama_cpp` finds libllama.so without any environment variable
#      (LLAMA_CPP_LIB_PATH=$LLAMA_CPP_DIR/lib works as well); installs gguf==0.19.0.
#   5. checks the result and prints the paths.
#
# Environment: LLAMA_CPP_DIR (default /work/llama-cpp), LLAMA_DL_DIR (default /work/llama),
#              VENV (default /work/venv), JOBS (default 2).
# The first build takes about 9 minutes on 2 cores (a rerun: seconds); logs go to $LLAMA_CPP_DIR/logs/.
set -Eeuo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
SDIST_NAME="llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}.tar.gz"
SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
GGUF_VERSION=0.19.0

LLAMA_CPP_DIR="${LLAMA_CPP_DIR:-/work/llama-cpp}"
LLAMA_DL_DIR="${LLAMA_DL_DIR:-/work/llama}"
VENV="${VENV:-/work/venv}"
JOBS="${JOBS:-2}"

SRC_DIR="$LLAMA_CPP_DIR/src/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}"
BUILD_DIR="$LLAMA_CPP_DIR/build"
LOG_DIR="$LLAMA_CPP_DIR/logs"
TOOLS=(llama-quantize llama-imatrix llama-perplexity llama-simple)
LIBS=(libllama.so libggml.so libggml-base.so libggml-cpu.so)
PY="$VENV/bin/python"

die() { trap - ERR; echo "setup_llama_cpp.sh: $*" >&2; exit 1; }
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR
say() { echo "setup_llama_cpp.sh: $*"; }
# run LOGNAME CMD...: runs CMD with its output in $LOG_DIR/LOGNAME.log; one line on failure.
run() {
    local log="$LOG_DIR/$1.log"; shift
    "$@" >"$log" 2>&1 || die "'$*' failed (exit $?), see $log"
}

[ -x "$PY" ] || die "no Python venv at $VENV (set VENV=...)"
mkdir -p "$LOG_DIR" "$LLAMA_DL_DIR" || die "cannot create $LOG_DIR or $LLAMA_DL_DIR"

# 1. build tools ---------------------------------------------------------------------------
if ! command -v cmake >/dev/null 2>&1 && [ ! -x "$VENV/bin/cmake" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing cmake and ninja-build with apt-get"
        apt-get install -y cmake ninja-build >"$LOG_DIR/apt.log" 2>&1 ||
            { apt-get update >>"$LOG_DIR/apt.log" 2>&1 &&
              apt-get install -y cmake ninja-build >>"$LOG_DIR/apt.log" 2>&1; } ||
            die "apt-get install cmake ninja-build failed, see $LOG_DIR/apt.log"
    else
        say "installing cmake and ninja into $VENV with pip"
        run pip-cmake "$PY" -m pip install cmake ninja
    fi
fi
export PATH="$PATH:$VENV/bin"   # venv cmake/ninja, if that is where they are
command -v cmake >/dev/null 2>&1 || die "cmake not found after installing it"
command -v c++ >/dev/null 2>&1 || die "no C++ compiler (apt-get install -y g++)"
GENERATOR=()
command -v ninja >/dev/null 2>&1 && GENERATOR=(-G Ninja)

# 2. sdist -----------------------------------------------------------------------------------
sha_ok() { [ -f "$1" ] && echo "$SDIST_SHA256  $1" | sha256sum -c --status; }
SDIST=""
for f in "$LLAMA_DL_DIR/$SDIST_NAME" "$LLAMA_DL_DIR"/*/"$SDIST_NAME"; do
    if sha_ok "$f"; then SDIST="$f"; break; fi
done
if [ -z "$SDIST" ]; then
    say "downloading $SDIST_NAME into $LLAMA_DL_DIR/sdist"
    mkdir -p "$LLAMA_DL_DIR/sdist"
    run pip-download "$PY" -m pip download --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$LLAMA_DL_DIR/sdist"
    SDIST="$LLAMA_DL_DIR/sdist/$SDIST_NAME"
    sha_ok "$SDIST" || die "$SDIST is missing or its sha256 is not $SDIST_SHA256"
fi

if [ ! -f "$SRC_DIR/.extracted" ]; then
    say "extracting $SDIST"
    rm -rf "$SRC_DIR"; mkdir -p "$LLAMA_CPP_DIR/src"
    tar -xzf "$SDIST" -C "$LLAMA_CPP_DIR/src" || die "cannot extract $SDIST"
    [ -f "$SRC_DIR/vendor/llama.cpp/ggml/include/ggml.h" ] || die "$SDIST has no vendor/llama.cpp"
    touch "$SRC_DIR/.extracted"
fi

# 3. build llama.cpp ---------------------------------------------------------------------------
CMAKE_ARGS_LLAMA=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=ON
    -DGGML_NATIVE=OFF
    -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON
    -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF
    -DGGML_CCACHE=OFF
    -DLLAMA_OPENSSL=OFF            # (LLAMA_CURL is gone/deprecated in this llama.cpp; no downloads)
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=ON   # only the targets below are built
    '-DCMAKE_INSTALL_RPATH=$ORIGIN:$ORIGIN/../lib' -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON
)
ARGS_STAMP="$BUILD_DIR/.setup_cmake_args"
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ] || [ "$(cat "$ARGS_STAMP" 2>/dev/null)" != "${CMAKE_ARGS_LLAMA[*]}" ]; then
    say "configuring llama.cpp in $BUILD_DIR"
    rm -rf "$BUILD_DIR"
    run cmake-configure cmake -S "$SRC_DIR/vendor/llama.cpp" -B "$BUILD_DIR" "${GENERATOR[@]}" "${CMAKE_ARGS_LLAMA[@]}"
    echo "${CMAKE_ARGS_LLAMA[*]}" >"$ARGS_STAMP"
fi
say "building ${TOOLS[*]} with -j$JOBS (log: $LOG_DIR/cmake-build.log; about 9 min the first time)"
run cmake-build cmake --build "$BUILD_DIR" --config Release -j "$JOBS" --target "${TOOLS[@]}"

# put SRC into DIR unless an identical copy is there; rename, so running copies are not disturbed
put() {
    local dst="$2/$(basename "$1")"
    if [ -L "$1" ]; then
        [ "$(readlink "$dst" 2>/dev/null)" = "$(readlink "$1")" ] || ln -sfn "$(readlink "$1")" "$dst"
    elif ! cmp -s "$1" "$dst"; then
        cp -p "$1" "$dst.tmp.$$" && mv -f "$dst.tmp.$$" "$dst"
    fi
}
mkdir -p "$LLAMA_CPP_DIR/bin" "$LLAMA_CPP_DIR/lib"
for t in "${TOOLS[@]}"; do
    [ -x "$BUILD_DIR/bin/$t" ] || die "build did not produce $BUILD_DIR/bin/$t"
    put "$BUILD_DIR/bin/$t" "$LLAMA_CPP_DIR/bin"
done
for l in "$BUILD_DIR"/bin/lib*.so*; do put "$l" "$LLAMA_CPP_DIR/lib"; done
for l in "${LIBS[@]}"; do
    [ -e "$LLAMA_CPP_DIR/lib/$l" ] || die "build did not produce $l"
done
{
    echo "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist sha256 $SDIST_SHA256"
    echo "llama.cpp commit $(git -C "$SRC_DIR" ls-tree HEAD vendor/llama.cpp 2>/dev/null | awk '{print $3}')"
    echo "cmake args: ${CMAKE_ARGS_LLAMA[*]}"
} >"$LLAMA_CPP_DIR/BUILD_INFO.txt"

# 4. Python binding and gguf ------------------------------------------------------------------------
installed() {  # installed DIST VERSION
    [ "$("$PY" -c 'import sys, importlib.metadata as m; print(m.version(sys.argv[1]))' "$1" 2>/dev/null)" = "$2" ]
}
if ! installed llama_cpp_python "$LLAMA_CPP_PYTHON_VERSION"; then
    say "installing llama-cpp-python $LLAMA_CPP_PYTHON_VERSION into $VENV (without compiling llama.cpp)"
    CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" run pip-llama-cpp-python "$PY" -m pip install "$SDIST"
fi
if ! installed gguf "$GGUF_VERSION"; then
    say "installing gguf $GGUF_VERSION into $VENV"
    run pip-gguf "$PY" -m pip install "gguf==$GGUF_VERSION"
fi
PKG_DIR="$("$PY" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("llama_cpp").origin))')" ||
    die "llama_cpp is not importable from $VENV"
if [ "$(readlink "$PKG_DIR/lib" 2>/dev/null)" != "$LLAMA_CPP_DIR/lib" ]; then
    [ -e "$PKG_DIR/lib" ] && [ ! -L "$PKG_DIR/lib" ] && die "$PKG_DIR/lib exists and is not our link; remove it"
    ln -sfn "$LLAMA_CPP_DIR/lib" "$PKG_DIR/lib"
fi

# 5. check and report ----------------------------------------------------------------------------------
"$PY" - "$LLAMA_CPP_DIR/lib" >"$LOG_DIR/check.log" 2>&1 <<'EOF' || die "check failed: $(tail -n 1 "$LOG_DIR/check.log")"
import ctypes, sys
import llama_cpp, gguf
llama_cpp.llama_backend_init()
base = ctypes.CDLL(sys.argv[1] + "/libggml-base.so")
for sym in ("ggml_quantize_chunk", "ggml_quantize_requires_imatrix", "ggml_quantize_init", "ggml_row_size"):
    getattr(base, sym)
from importlib.metadata import version
print(f"ok: llama_cpp {llama_cpp.__version__}, gguf {version('gguf')}, llama_backend_init() ok, "
      "libggml-base.so has ggml_quantize_chunk and ggml_quantize_requires_imatrix")
EOF

echo "$(sed -n 2p "$LLAMA_CPP_DIR/BUILD_INFO.txt") (vendored by llama-cpp-python $LLAMA_CPP_PYTHON_VERSION)"
for t in "${TOOLS[@]}"; do echo "  tool: $LLAMA_CPP_DIR/bin/$t"; done
echo "  lib dir: $LLAMA_CPP_DIR/lib ($(cd "$LLAMA_CPP_DIR/lib" && ls *.so | tr '\n' ' '))"
echo "  python: $PY; llama_cpp loads libs from $PKG_DIR/lib -> $LLAMA_CPP_DIR/lib"
echo "  check: $(tail -n 1 "$LOG_DIR/check.log")"
