#!/usr/bin/env python3
"""GPTQ seconds per expert on OLMoE-1B-7B's shapes (issue 15): moe-compress's GPTQ on ggml's grids
(`moe-compress-bench gptq`: gptqQuantizeRows on one expert's gate and up, 1024 rows of 2048, and
down, 2048 rows of 1024) against the GPTQ reference algorithm in PyTorch on the same shapes,
threads and token count.

The reference is the loop of the GPTQ paper's implementation (Frantar et al. 2022,
IST-DASLab/gptq `GPTQ.fasterquant`), written here from the paper's Algorithm 1: relative
dampening 0.01 of mean(diag H), the upper Cholesky factor of H^-1, lazy batches of 128 columns,
and its min-max asymmetric quantizer per row, refitted every 256 columns (`groupsize` 256, the
k-quants' super-block), at 4 and 2 bits. It is the same work per column as moe-compress's (one
rounding per weight, one rank-1 update within the batch, one matrix product per batch), with a
simpler grid: ggml's k-quants choose 8-16 sub-block scales per 256 weights by search, and the
IQ2 lattices pick a codebook point per eight weights.

Both sides build their inputs the same way (seeded, not the same numbers): `tokens` correlated
activations (columns/4 latent factors mixed, plus noise), H = X^T X, weights N(0, 0.02). Both
time one expert's three matrices, fastest of --repeats, wall and process CPU seconds.

    /work/venv/bin/python benchmarks/gptq_benchmark.py [--threads 2] [--tokens 4096] [--repeats 2]

Prints a table and one JSON object (also saved under /work/bench-work/results/gptq-DATE.json).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HIDDEN, WIDTH = 2048, 1024
MOE_TYPES = ["Q4_K", "Q2_K", "IQ2_XXS"]
REFERENCE_BITS = [4, 2]


def cpu_description():
    info = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    wide = [flag for flag in ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    return f"{model} ({', '.join(wide)})"


def reference_gptq(torch, w, h, bits, groupsize=256, blocksize=128, percdamp=0.01):
    """GPTQ's fasterquant on a copy of w (rows x columns) with Hessian h; returns the quantized weights."""
    w = w.clone()
    rows, columns = w.shape
    h = h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += percdamp * torch.mean(torch.diag(h)) * torch.eye(columns)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    maxq = 2 ** bits - 1
    q = torch.zeros_like(w)
    scale = zero = None
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        w1 = w[:, i1:i2].clone()
        q1 = torch.zeros_like(w1)
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            if (i1 + i) % groupsize == 0:
                group = w[:, i1 + i:i1 + i + groupsize]
                low = torch.clamp(group.min(dim=1).values, max=0)
                high = torch.clamp(group.max(dim=1).values, min=0)
                scale = torch.where(high > low, (high - low) / maxq, torch.ones_like(high))
                zero = torch.round(-low / scale)
            column = w1[:, i]
            quantized = scale * (torch.clamp(torch.round(column / scale) + zero, 0, maxq) - zero)
            q1[:, i] = quantized
            e = (column - quantized) / hinv1[i, i]
            w1[:, i:] -= e.unsqueeze(1) @ hinv1[i, i:].unsqueeze(0)
            err1[:, i] = e
        q[:, i1:i2] = q1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return q


def reference(threads, tokens, repeats):
    import torch
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(21)

    def hessian(columns):
        factors = columns // 4
        latent = torch.randn(tokens, factors, generator=generator)
        mixing = torch.randn(factors, columns, generator=generator) / factors ** 0.5
        x = latent @ mixing + 0.1 * torch.randn(tokens, columns, generator=generator)
        return x.T @ x

    input_hessian, down_hessian = hessian(HIDDEN), hessian(WIDTH)
    matrices = [("gate", torch.randn(WIDTH, HIDDEN, generator=generator) * 0.02, input_hessian),
                ("up", torch.randn(WIDTH, HIDDEN, generator=generator) * 0.02, input_hessian),
                ("down", torch.randn(HIDDEN, WIDTH, generator=generator) * 0.02, down_hessian)]
    results = []
    for bits in REFERENCE_BITS:
        wall = cpu = 0.0
        for _, w, h in matrices:
            best_wall = best_cpu = float("inf")
            for _ in range(repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                reference_gptq(torch, w, h, bits)
                best_wall = min(best_wall, time.perf_counter() - start)
                best_cpu = min(best_cpu, time.process_time() - start_cpu)
            wall += best_wall
            cpu += best_cpu
        results.append({"bits": bits, "seconds_per_expert": wall, "cpu_seconds_per_expert": cpu})
        print(f"reference GPTQ {bits}-bit: {wall:.3f} s per expert ({cpu:.3f} CPU s)", file=sys.stderr, flush=True)
    return {"torch": torch.__version__, "results": results}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()

    if not args.no_build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "moe-compress-bench"], cwd=REPO, check=True)
    bench = REPO / ".build" / "release" / "moe-compress-bench"
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    load_before = os.getloadavg()[0]
    moe = json.loads(subprocess.run([bench, "gptq", "--types", ",".join(MOE_TYPES), "--tokens", str(args.tokens),
                                     "--hidden", str(HIDDEN), "--width", str(WIDTH), "--repeats", str(args.repeats)],
                                    env=env, check=True, capture_output=True, text=True).stdout)
    load_between = os.getloadavg()[0]
    ref = reference(args.threads, args.tokens, args.repeats)
    load_after = os.getloadavg()[0]

    print(f"\nOne OLMoE-1B-7B expert (gate, up {WIDTH}x{HIDDEN}, down {HIDDEN}x{WIDTH}), {args.tokens} tokens, "
          f"{args.threads} threads, fastest of {args.repeats}; {cpu_description()}; load {load_before:.1f}/"
          f"{load_between:.1f}/{load_after:.1f}\n")
    print("| method | s per expert (wall) | CPU s | × reference 4-bit (wall) |")
    print("|---|---|---|---|")
    base = ref["results"][0]["seconds_per_expert"]
    for r in ref["results"]:
        print(f"| reference GPTQ (PyTorch {ref['torch']}), {r['bits']}-bit groups of 256 | {r['seconds_per_expert']:.3f} | "
              f"{r['cpu_seconds_per_expert']:.3f} | {r['seconds_per_expert'] / base:.2f} |")
    for r in moe["results"]:
        print(f"| moe-compress GPTQ {r['type']} | {r['gptq_seconds_per_expert']:.3f} | {r['gptq_cpu_seconds_per_expert']:.3f} | "
              f"{r['gptq_seconds_per_expert'] / base:.2f} |")
        print(f"| moe-compress weighted rounding {r['type']} | {r['rounding_seconds_per_expert']:.3f} | "
              f"{r['rounding_cpu_seconds_per_expert']:.3f} | {r['rounding_seconds_per_expert'] / base:.2f} |")
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "cpu": cpu_description(),
              "threads": args.threads, "tokens": args.tokens, "repeats": args.repeats,
              "load": [load_before, load_between, load_after], "moe_compress": moe, "reference": ref}
    out = Path("/work/bench-work/results")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gptq-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=1))
    print("\n" + json.dumps(report))


if __name__ == "__main__":
    main()
