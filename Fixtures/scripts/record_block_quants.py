"""ggml's own block quantization (llama.cpp's ggml_quantize_chunk) and gguf-py's dequantization,
as ground truth for Sources/Quantization.

Run from the repository root, after Fixtures/scripts/setup_llama_cpp.sh has built llama.cpp:
    /work/venv/bin/python Fixtures/scripts/record_block_quants.py   (~2 s; numpy, gguf==0.19.0,
    and libggml-base.so from $LLAMA_CPP_DIR, default /work/llama-cpp, via llama_cpp_tools.py)
(fixed seeds and a fixed llama.cpp, so reruns give identical bytes)

Writes Fixtures/records/block-quants.json:
  ggml_commit, gguf_version: where the numbers come from.
  types: [{name, id}] for every type recorded: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K
    Q4_K Q5_K Q6_K IQ2_XXS IQ2_XS (ggml_type ids as in ggml.h).
  cases: [{name, rows, row_length, x, importance, results}], where
    x: the rows (row-major float32), importance: row_length float32 imatrix weights (random
      positive, with zero columns: every 7th, and one whole run of 16); both as hex strings of
      the floats' little-endian bytes, so Swift reads exactly the values ggml was given.
    results: {type name: {plain, imatrix}}, each {bytes, dequantized, weighted_error}:
      bytes: hex of what ggml_quantize_chunk(type, x, ..., imatrix) wrote (imatrix NULL for
        `plain`, the case's importance for `imatrix`);
      dequantized: gguf.quants.dequantize of those bytes, float32 as little-endian hex;
      weighted_error: sum_j w_j (x_j - dequantized_j)^2 in float64 over all rows, with w the
        importance for `imatrix` and 1 for `plain`. IQ2_XXS and IQ2_XS have `imatrix` only: ggml
        refuses to quantize them without one.
  Cases: all zeros, a constant row, one huge outlier among small normals, tiny (1e-30) normals,
  negative-only, two rows of normals (512), Student-t with 3 degrees of freedom, normals plus an
  offset (all positive), sub-blocks of very different magnitudes, half-integers (rounding ties),
  mostly zeros with a few values, subnormal-sized values (where block scales underflow),
  half-integers with a maximum of 127 (Q8_0's roundf meets exact ties), and eight rows of other
  shapes (Student-t 2, shifted Laplace, negative exponential, 30% dense, per-16 magnitudes from
  1e-3 to 1e3, 1e-38, 1e4, uniform).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llama_cpp_tools  # noqa: E402

import gguf  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Fixtures" / "records" / "block-quants.json"
GGML_COMMIT = "0c1e57098bba43ac29e6e3b677cdceebdd22334f"  # vendored by llama-cpp-python 0.3.36

TYPES = [("F32", 0), ("F16", 1), ("BF16", 30), ("Q4_0", 2), ("Q4_1", 3), ("Q5_0", 6), ("Q5_1", 7),
         ("Q8_0", 8), ("Q2_K", 10), ("Q3_K", 11), ("Q4_K", 12), ("Q5_K", 13), ("Q6_K", 14),
         ("IQ2_XXS", 16), ("IQ2_XS", 17)]
# ggml quantizes these only with an imatrix (ggml_quantize_requires_imatrix): no `plain` result.
IMATRIX_ONLY = {"IQ2_XXS", "IQ2_XS"}


def hex_floats(a: np.ndarray) -> str:
    return np.ascontiguousarray(a, dtype="<f4").tobytes().hex()


def importance_for(rng: np.random.Generator, n: int) -> np.ndarray:
    w = rng.uniform(0.0, 3.0, n) ** 2
    w[::7] = 0.0
    w[32:48] = 0.0
    return w.astype(np.float32)


def make_cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(20261203)
    cases = []
    cases.append(("zeros", np.zeros((1, 256), np.float32)))
    cases.append(("constant", np.full((1, 256), 0.37, np.float32)))
    outlier = rng.standard_normal((1, 512)) * 0.02
    outlier[0, 300] = 50.0
    cases.append(("outlier", outlier))
    cases.append(("tiny", rng.standard_normal((1, 256)) * 1e-30))
    cases.append(("negative", -np.abs(rng.standard_normal((1, 256)))))
    cases.append(("normal", rng.standard_normal((2, 512))))
    cases.append(("student-t", rng.standard_t(3, (1, 512))))
    cases.append(("offset", rng.standard_normal((1, 256)) + 3.0))
    scales = 10.0 ** np.repeat(np.arange(-4, 4), 32)
    cases.append(("mixed-scales", rng.standard_normal((1, 256)) * scales))
    cases.append(("half-integers", rng.integers(-16, 16, (1, 256)) * 0.5))
    sparse = np.zeros((1, 256))
    picks = rng.choice(256, 12, replace=False)
    sparse[0, picks] = rng.standard_normal(12)
    cases.append(("sparse", sparse))
    cases.append(("subnormal", rng.standard_normal((1, 256)) * 1e-39))
    ties = rng.integers(-254, 255, (1, 256)) * 0.5
    ties[0, ::32] = 127.0
    cases.append(("roundf-ties", ties))
    mixed = np.stack([rng.standard_t(2, 256), rng.laplace(size=256) + 1.5, -rng.exponential(size=256),
                      np.where(rng.uniform(size=256) < 0.3, rng.standard_normal(256), 0.0),
                      rng.standard_normal(256) * np.repeat(10.0 ** rng.uniform(-3, 3, 16), 16),
                      rng.standard_normal(256) * 1e-38, rng.standard_normal(256) * 1e4, rng.uniform(-1, 1, 256)])
    cases.append(("mixed-rows", mixed))
    return [(name, x.astype(np.float32)) for name, x in cases]


def record_type(type_name: str, type_id: int, x: np.ndarray, importance: np.ndarray) -> dict:
    qtype = gguf.GGMLQuantizationType[type_name]
    out = {}
    for label, imatrix in (("plain", None), ("imatrix", importance)):
        if imatrix is None and type_name in IMATRIX_ONLY:
            continue
        data = llama_cpp_tools.quantize_rows(type_id, x, imatrix)
        blocks = np.frombuffer(data, dtype=np.uint8).reshape(x.shape[0], -1)
        y = np.asarray(gguf.quants.dequantize(blocks, qtype), dtype=np.float32).reshape(x.shape)
        w = np.ones(x.shape[1]) if imatrix is None else imatrix.astype(np.float64)
        err = x.astype(np.float64) - y.astype(np.float64)
        out[label] = {"bytes": data.hex(), "dequantized": hex_floats(y),
                      "weighted_error": float(np.sum(w[None, :] * err * err))}
    return out


def main() -> None:
    rng = np.random.default_rng(7)
    cases = []
    for name, x in make_cases():
        importance = importance_for(rng, x.shape[1])
        results = {type_name: record_type(type_name, type_id, x, importance) for type_name, type_id in TYPES}
        cases.append({"name": name, "rows": int(x.shape[0]), "row_length": int(x.shape[1]),
                      "x": hex_floats(x), "importance": hex_floats(importance), "results": results})
    record = {"ggml_commit": GGML_COMMIT, "gguf_version": importlib.metadata.version("gguf"),
              "types": [{"name": n, "id": i} for n, i in TYPES], "cases": cases}
    OUT.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(cases)} cases, {OUT.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
