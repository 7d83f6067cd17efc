"""Access to the llama.cpp build made by Fixtures/scripts/setup_llama_cpp.sh.

    from llama_cpp_tools import tool, ggml_library, quantize_rows
    subprocess.run([tool("llama-quantize"), ...])
    q = quantize_rows(12, rows)            # Q4_K, rows: float32 [n, k]

The build lives in $LLAMA_CPP_DIR (default /work/llama-cpp): tools in bin/, shared libraries
in lib/. The ctypes prototypes below follow ggml/include/ggml.h of the llama.cpp that
llama-cpp-python 0.3.36 vendors (commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f).
ggml_quantize_chunk lives in libggml-base.so, which is built without AVX flags (the SIMD code
is in libggml-cpu.so), so quantize_rows gives the same bytes on all our machines.

Running this file checks the library: it quantizes a random 4x256 matrix to Q4_K with and
without an importance matrix and prints the RMS error after dequantizing with gguf.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

DEFAULT_LLAMA_CPP_DIR = "/work/llama-cpp"
_SETUP_HINT = "run Fixtures/scripts/setup_llama_cpp.sh (or set LLAMA_CPP_DIR to its build)"

# ggml_type values that ggml_quantize_chunk handles (its switch in ggml/src/ggml.c); any other
# value makes it abort the process, so quantize_rows refuses them first.
QUANTIZE_CHUNK_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K",
    16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S",
    22: "IQ2_S", 23: "IQ4_XS", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0",
    39: "MXFP4", 40: "NVFP4", 41: "Q1_0", 42: "Q2_0",
}


def llama_cpp_dir() -> Path:
    return Path(os.environ.get("LLAMA_CPP_DIR", DEFAULT_LLAMA_CPP_DIR))


def lib_dir() -> Path:
    return llama_cpp_dir() / "lib"


def tool(name: str) -> str:
    """Path of a llama.cpp tool, e.g. tool("llama-quantize")."""
    path = llama_cpp_dir() / "bin" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise FileNotFoundError(f"llama.cpp tool {name!r} not found at {path}; {_SETUP_HINT}")
    return str(path)


_ggml: ctypes.CDLL | None = None


def ggml_library() -> ctypes.CDLL:
    """libggml-base.so with the quantization functions' prototypes declared."""
    global _ggml
    if _ggml is not None:
        return _ggml
    path = lib_dir() / "libggml-base.so"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; {_SETUP_HINT}")
    lib = ctypes.CDLL(str(path))
    ggml_type = ctypes.c_int  # enum ggml_type
    f32p = ctypes.POINTER(ctypes.c_float)

    # size_t ggml_quantize_chunk(enum ggml_type type, const float * src, void * dst,
    #     int64_t start, int64_t nrows, int64_t n_per_row, const float * imatrix);
    # start is an element offset into src (a multiple of n_per_row); src and dst are the bases.
    lib.ggml_quantize_chunk.argtypes = [ggml_type, f32p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, f32p]
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    # void ggml_quantize_init(enum ggml_type type);  void ggml_quantize_free(void);
    lib.ggml_quantize_init.argtypes = [ggml_type]
    lib.ggml_quantize_init.restype = None
    lib.ggml_quantize_free.argtypes = []
    lib.ggml_quantize_free.restype = None
    # bool ggml_quantize_requires_imatrix(enum ggml_type type);
    lib.ggml_quantize_requires_imatrix.argtypes = [ggml_type]
    lib.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
    # size_t ggml_row_size(enum ggml_type type, int64_t ne);
    lib.ggml_row_size.argtypes = [ggml_type, ctypes.c_int64]
    lib.ggml_row_size.restype = ctypes.c_size_t
    # int64_t ggml_blck_size(enum ggml_type type);
    lib.ggml_blck_size.argtypes = [ggml_type]
    lib.ggml_blck_size.restype = ctypes.c_int64
    # const char * ggml_type_name(enum ggml_type type);
    lib.ggml_type_name.argtypes = [ggml_type]
    lib.ggml_type_name.restype = ctypes.c_char_p
    _ggml = lib
    return lib


def quantize_rows(type_id: int, rows: np.ndarray, imatrix: np.ndarray | None = None) -> bytes:
    """Quantizes float32 rows [n, k] to ggml type type_id; returns n * ggml_row_size(type, k) bytes.

    imatrix: float32 [k] importance weights (one per column) or None.
    """
    if type_id not in QUANTIZE_CHUNK_TYPES:
        raise ValueError(f"ggml_quantize_chunk does not handle ggml type {type_id}")
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    if rows.ndim != 2:
        raise ValueError(f"rows must be 2-D [n, k], got shape {rows.shape}")
    n, k = rows.shape
    lib = ggml_library()
    name = lib.ggml_type_name(type_id).decode()
    block = lib.ggml_blck_size(type_id)
    if k % block != 0:
        raise ValueError(f"row length {k} is not a multiple of {name}'s block size {block}")
    imatrix_ptr = None
    if imatrix is not None:
        imatrix = np.ascontiguousarray(imatrix, dtype=np.float32)
        if imatrix.shape != (k,):
            raise ValueError(f"imatrix must have shape ({k},), got {imatrix.shape}")
        imatrix_ptr = imatrix.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    elif lib.ggml_quantize_requires_imatrix(type_id):
        raise ValueError(f"{name} requires an importance matrix")

    row_size = lib.ggml_row_size(type_id, k)
    out = np.empty(n * row_size, dtype=np.uint8)
    lib.ggml_quantize_init(type_id)
    written = lib.ggml_quantize_chunk(type_id, rows.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                      out.ctypes.data, 0, n, k, imatrix_ptr)
    if written != n * row_size:
        raise RuntimeError(f"ggml_quantize_chunk wrote {written} bytes, expected {n * row_size}")
    return out.tobytes()


def _self_test() -> None:
    import gguf

    rng = np.random.default_rng(0)
    rows = rng.standard_normal((4, 256)).astype(np.float32)
    rms = float(np.sqrt(np.mean(rows ** 2)))
    imatrix = rng.uniform(0.1, 10.0, 256).astype(np.float32)
    for label, im in (("no imatrix", None), ("imatrix", imatrix)):
        q = quantize_rows(12, rows, im)
        back = gguf.quants.dequantize(np.frombuffer(q, dtype=np.uint8).reshape(4, -1),
                                      gguf.GGMLQuantizationType.Q4_K)
        err = back - rows
        rms_err = float(np.sqrt(np.mean(err ** 2)))
        w_err = float(np.sqrt(np.mean(imatrix * err ** 2) / np.mean(imatrix)))
        print(f"Q4_K {label:10s}: {len(q)} bytes, shape {back.shape}, RMS error {rms_err:.4f} "
              f"({100 * rms_err / rms:.2f}% of RMS {rms:.4f}), imatrix-weighted RMS error {w_err:.4f}")


if __name__ == "__main__":
    _self_test()
