#!/usr/bin/env python3
"""Attention at calibration lengths (issue 13): a seq-len sweep of `moe-compress eval` against
transformers (float32, sdpa) and llama.cpp (F32 GGUF prefill) on a random Mixtral-layout model.

One run of this script:

1. writes (once, into --work-dir) the checkpoint of benchmarks/mixtral_checkpoint.py (hidden 1024,
   4 layers, 32 experts of width 512, top-4, 8 heads / 2 KV heads of 128, Mistral tokenizer, bf16)
   and, where llama-cpp-python and gguf are installed, its F32 GGUF;
2. tokenizes --text with tokenizers (add_special_tokens=True);
3. for each code path of --isa (avx512: the environment as is; avx2: ONEDNN_MAX_CPU_ISA=AVX2 and
   MOE_COMPRESS_MAX_ISA=avx2 for moe-compress, ATEN_CPU_CAPABILITY=avx2 (with oneDNN and MKL
   capped the same way) for torch; llama.cpp is built for the native CPU and is the same in both)
   and each sweep point SEQ:TOKENS of --sweep, in measured child processes (wall time, peak RSS):
   - `moe-compress eval --compute f32 --seq-len SEQ --max-tokens TOKENS --threads T --json`;
   - transformers MixtralForCausalLM in float32 with sdpa attention on the same ids and windows
     (the `_transformers` worker of olmoe_eval_benchmark.py);
   - llama.cpp, twice (F32 K/V cache without flash attention, then its defaults): each window
     decoded as one batch (n_batch = n_ubatch = window), logits of the last token only, T
     threads; then the same windows with every position's logits (timed as well: the
     equal-work comparison, "x all-l" in the table) for perplexity;
   - the machine's float32 GEMM rate on the expert shapes at that point's rows per expert
     (torch and numpy, best of three), the reference for the pass's achieved GFLOP/s;
4. prints a table per code path and one JSON object (saved under --work-dir/results/).

FLOPs of a forward pass (two per multiply-add): q/k/v/o projections, router, the top-k experts'
three matrices, attention scores and P·V over the visible (causal) pairs only, and the output
head over the rows each program computes (moe-compress: the predicted positions; transformers:
every position; llama.cpp's timed prefill: the last position of a window).

    python3 benchmarks/attention_seqlen_benchmark.py                # both code paths
    python3 benchmarks/attention_seqlen_benchmark.py --isa avx2 --sweep 2048:4096
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mixtral_checkpoint as checkpoint  # noqa: E402
from olmoe_eval_benchmark import (  # noqa: E402
    DEFAULT_TEXT, REPO, cpu_model, fmt, gib, last_json_object, locate_binary, log,
    perplexity_windows, ratio, relative_difference, run_measured, warm_page_cache)

OLMOE_SCRIPT = Path(__file__).resolve().parent / "olmoe_eval_benchmark.py"
ISA_ENV = {
    "avx512": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MOE_COMPRESS_MAX_ISA": "avx2", "ATEN_CPU_CAPABILITY": "avx2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}


# --------------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------------

def forward_flops(window_lengths: list[int], head_rows: int) -> dict[str, float]:
    s = checkpoint.SHAPE
    tokens = sum(window_lengths)
    q_width, kv_width = s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    pairs = sum(n * (n + 1) // 2 for n in window_lengths)
    parts = {
        "projections": 2 * tokens * s["hidden"] * (2 * q_width + 2 * kv_width) * s["layers"],
        "attention": 4 * pairs * q_width * s["layers"],
        "router": 2 * tokens * s["hidden"] * s["experts"] * s["layers"],
        "experts": 6 * tokens * s["top_k"] * s["hidden"] * s["expert_width"] * s["layers"],
        "head": 2 * head_rows * s["hidden"] * s["vocab"],
    }
    parts["total"] = sum(parts.values())
    return parts


# --------------------------------------------------------------------------------------------
# Workers (each in its own measured process)
# --------------------------------------------------------------------------------------------

GEMM_PROBE = """
import json, sys, time
import numpy as np
import torch
rows, threads, hidden, width = (int(a) for a in sys.argv[1:5])
torch.set_num_threads(threads)
# moe-compress's two GEMMs per expert: gate and up stacked, then down.
shapes = ((2 * width, hidden), (hidden, width))
flops = sum(2 * rows * n * k for n, k in shapes)

def best(operands):
    for a, b in operands: a @ b.T
    rate = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(10):
            for a, b in operands: a @ b.T
        rate = max(rate, flops * 10 / (time.perf_counter() - start) / 1e9)
    return rate

rng = np.random.default_rng(0)
f32 = [(rng.random((rows, k), dtype=np.float32), rng.random((n, k), dtype=np.float32)) for n, k in shapes]
print(json.dumps({"numpy_openblas_f32": best(f32), "torch_f32": best([(torch.from_numpy(a), torch.from_numpy(b)) for a, b in f32]),
                  "torch_capability": torch.backends.cpu.get_cpu_capability()}))
"""


def gemm_rates(rows: int, threads: int, env: dict) -> dict:
    s = checkpoint.SHAPE
    out = subprocess.run([sys.executable, "-c", GEMM_PROBE, str(rows), str(threads), str(s["hidden"]), str(s["expert_width"])],
                         check=True, capture_output=True, text=True, env=dict(env, OPENBLAS_NUM_THREADS=str(threads)))
    rates = json.loads(out.stdout.strip().splitlines()[-1])
    rates["best_f32"] = max(rates["numpy_openblas_f32"], rates["torch_f32"])
    return rates


# llama.cpp settings: "f32" keeps the K/V cache in F32 without flash attention and gives
# transformers' perplexity to 8 digits; "default" is llama.cpp's own choice (F16 K/V cache, flash
# attention where supported), which moves perplexity by ~1e-4 relative on this model.
LLAMA_CONFIGS = {"f32": {"kv_type": 0, "flash_attn_type": 0},        # GGML_TYPE_F32, disabled
                 "default": {"kv_type": 1, "flash_attn_type": -1}}   # GGML_TYPE_F16, auto


def llama_main(argv: list[str]) -> None:
    """`_llama --gguf F --ids F --seq-len N --threads T`: llama.cpp prefill of every window."""
    parser = argparse.ArgumentParser(prog="_llama")
    parser.add_argument("--gguf", required=True)
    parser.add_argument("--ids", required=True)
    parser.add_argument("--seq-len", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--config", choices=list(LLAMA_CONFIGS), required=True)
    args = parser.parse_args(argv)
    import llama_cpp as ll
    import numpy as np

    ids = json.loads(Path(args.ids).read_text())
    windows = perplexity_windows(len(ids), args.seq_len)
    longest = max(b - a for a, b in windows)
    ll.llama_backend_init()
    model = ll.llama_model_load_from_file(args.gguf.encode(), ll.llama_model_default_params())
    params = ll.llama_context_default_params()
    params.n_ctx = params.n_batch = params.n_ubatch = longest
    params.n_threads = params.n_threads_batch = args.threads
    params.no_perf = True
    params.type_k = params.type_v = LLAMA_CONFIGS[args.config]["kv_type"]
    params.flash_attn_type = LLAMA_CONFIGS[args.config]["flash_attn_type"]
    context = ll.llama_init_from_model(model, params)
    if not model or not context:
        raise SystemExit(f"llama.cpp could not load {args.gguf}")
    vocabulary = ll.llama_vocab_n_tokens(ll.llama_model_get_vocab(model))
    batch = ll.llama_batch_init(longest, 0, 1)

    def decode(window: list[int], all_logits: bool) -> None:
        ll.llama_memory_clear(ll.llama_get_memory(context), True)
        batch.n_tokens = len(window)
        for position, token in enumerate(window):
            batch.token[position], batch.pos[position] = token, position
            batch.n_seq_id[position], batch.seq_id[position][0] = 1, 0
            batch.logits[position] = all_logits or position == len(window) - 1
        if ll.llama_decode(context, batch) != 0:
            raise SystemExit("llama_decode failed")

    decode(ids[windows[0][0]:windows[0][0] + 8], False)  # warm-up: threads, first-touch of the weights
    prefill_seconds = 0.0
    for a, b in windows:
        started = time.perf_counter()
        decode(ids[a:b], False)
        prefill_seconds += time.perf_counter() - started
    # The same windows with every position's logits, as a perplexity pass (and moe-compress's
    # eval) must compute them: the equal-work comparison. The log-softmax in numpy is not timed.
    total_nll, predicted, all_logits_seconds = 0.0, 0, 0.0
    for a, b in windows:
        started = time.perf_counter()
        decode(ids[a:b], True)
        all_logits_seconds += time.perf_counter() - started
        logits = np.ctypeslib.as_array(ll.llama_get_logits(context), shape=(b - a, vocabulary))[:-1].astype(np.float64)
        top = logits.max(axis=1)
        log_z = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
        total_nll += float((log_z - logits[np.arange(b - a - 1), ids[a + 1:b]]).sum())
        predicted += b - a - 1
    processed = sum(b - a for a, b in windows)
    print(json.dumps({
        "tokens_per_second": processed / prefill_seconds, "seconds": prefill_seconds,
        "processed_tokens": processed, "windows": len(windows),
        "all_logits_tokens_per_second": processed / all_logits_seconds, "all_logits_seconds": all_logits_seconds,
        "perplexity": math.exp(total_nll / predicted),
        "flash_attn_type": int(params.flash_attn_type), "n_batch": longest,
        "llama_cpp_python": ll.__version__, "system_info": ll.llama_print_system_info().decode(),
    }))


# --------------------------------------------------------------------------------------------
# One sweep point
# --------------------------------------------------------------------------------------------

def run_point(seq_len: int, tokens: int, ids: list[int], args, env: dict, run_dir: Path, binary: Path,
              gguf_path: Path | None, label: str) -> dict:
    s = checkpoint.SHAPE
    point_ids = ids[:tokens]
    ids_file = run_dir / f"ids-{tokens}.json"
    ids_file.write_text(json.dumps(point_ids))
    lengths = [b - a for a, b in perplexity_windows(len(point_ids), seq_len)]
    point = {"seq_len": seq_len, "tokens": tokens, "windows": len(lengths), "processed_tokens": sum(lengths)}

    warm_page_cache(args.model_dir)
    cmd = [str(binary), "eval", str(args.model_dir), "--text", str(args.text), "--seq-len", str(seq_len),
           "--max-tokens", str(tokens), "--batch-tokens", str(args.batch_tokens), "--compute", "f32",
           "--threads", str(args.threads), "--json"]
    measured, stdout = run_measured(cmd, run_dir, f"{label}-moe-compress-{seq_len}", env)
    report = last_json_object(stdout)
    if report["tokens"] != tokens:
        log(f"warning: moe-compress tokenized {report['tokens']} ids, tokenizers' prefix has {tokens}")
    flops = forward_flops(lengths, sum(lengths) - len(lengths))
    point["moe_compress"] = {
        "tokens_per_second": report["tokens_per_second"], "seconds": report["seconds"],
        "attention_seconds": report["attention_seconds"], "attention_kernel_seconds": report["attention_kernel_seconds"],
        "attention_share": report["attention_seconds"] / report["seconds"],
        "attention_kernel_share": report["attention_kernel_seconds"] / report["seconds"],
        "attention_kernel_gflops": report["attention_kernel_gflops"],
        "expert_matmul_gflops": report["expert_matmul_gflops"],
        "peak_rss_gib": gib(measured["maxrss_kib"]), "perplexity": report["perplexity"],
        "flops": flops, "gflops": flops["total"] / report["seconds"] / 1e9, "command": cmd,
    }

    if not args.skip_transformers:
        warm_page_cache(args.model_dir)
        threads_env = dict(env, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        cmd = [sys.executable, str(OLMOE_SCRIPT), "_transformers", "--model", str(args.model_dir), "--ids", str(ids_file),
               "--seq-len", str(seq_len), "--batch-tokens", str(args.batch_tokens), "--threads", str(args.threads),
               "--dtype", "float32", "--attn-implementation", "sdpa"]
        measured, stdout = run_measured(cmd, run_dir, f"{label}-transformers-{seq_len}", threads_env)
        report = last_json_object(stdout)
        flops = forward_flops(lengths, sum(lengths))
        point["transformers"] = {
            "tokens_per_second": report["tokens_per_second"], "seconds": report["forward_seconds"],
            "peak_rss_gib": gib(measured["maxrss_kib"]), "perplexity": report["perplexity"],
            "attn_implementation": report["attn_implementation"], "torch_capability": report["torch_cpu_capability"],
            "flops": flops, "gflops": flops["total"] / report["forward_seconds"] / 1e9,
        }

    for config in LLAMA_CONFIGS if gguf_path else ():
        cmd = [sys.executable, str(Path(__file__).resolve()), "_llama", "--gguf", str(gguf_path), "--ids", str(ids_file),
               "--seq-len", str(seq_len), "--threads", str(args.threads), "--config", config]
        measured, stdout = run_measured(cmd, run_dir, f"{label}-llama-cpp-{config}-{seq_len}", env)
        report = last_json_object(stdout)
        flops = forward_flops(lengths, len(lengths))
        point[f"llama_cpp_{config}"] = {
            "tokens_per_second": report["tokens_per_second"], "seconds": report["seconds"],
            "peak_rss_gib": gib(measured["maxrss_kib"]), "perplexity": report["perplexity"],
            "settings": LLAMA_CONFIGS[config], "system_info": report["system_info"],
            "flops": flops, "gflops": flops["total"] / report["seconds"] / 1e9,
            "all_logits_tokens_per_second": report["all_logits_tokens_per_second"],
            "all_logits_seconds": report["all_logits_seconds"],
        }

    rows = max(1, point["processed_tokens"] * s["top_k"] // s["experts"])
    point["gemm_rates"] = dict(gemm_rates(rows, args.threads, env), rows_per_expert=rows)
    mc, hf = point["moe_compress"], point.get("transformers")
    # The faster llama.cpp setting is the one to beat.
    lc = max((point[k] for k in ("llama_cpp_f32", "llama_cpp_default") if k in point),
             key=lambda r: r["tokens_per_second"], default=None)
    point["ratios"] = {
        "over_transformers": ratio(mc["tokens_per_second"], hf and hf["tokens_per_second"]),
        "over_llama_cpp": ratio(mc["tokens_per_second"], lc and lc["tokens_per_second"]),
        # Equal work: llama.cpp computing every position's logits, as eval does.
        "over_llama_cpp_all_logits": ratio(mc["tokens_per_second"], max(
            (point[k]["all_logits_tokens_per_second"] for k in ("llama_cpp_f32", "llama_cpp_default") if k in point),
            default=None)),
        "gemm_fraction": ratio(mc["gflops"], point["gemm_rates"]["best_f32"]),
        "perplexity_vs_transformers": relative_difference(mc["perplexity"], hf and hf["perplexity"]),
        **{f"{k}_perplexity_vs_transformers": relative_difference(point[k]["perplexity"], hf and hf["perplexity"])
           for k in ("llama_cpp_f32", "llama_cpp_default") if k in point},
    }
    return point


def print_table(isa: str, points: list[dict], header_line: str) -> None:
    print(f"code path {isa}: {header_line}")
    columns = (f"{'seq':>5} {'ids':>6} | {'moe-c tok/s':>11} {'attn s':>6} {'attn%':>5} {'kern%':>5} {'GFLOP/s':>7} "
               f"{'of GEMM':>7} {'RSS GiB':>7} | {'hf tok/s':>8} {'RSS GiB':>7} | {'llama f32':>9} {'default':>7} {'RSS GiB':>7} | "
               f"{'x hf':>5} {'x llama':>7} {'x all-l':>7} {'ppl diff':>9} {'GEMM f32':>8}")
    print(columns)
    print("-" * len(columns))
    for p in points:
        mc, hf, r = p["moe_compress"], p.get("transformers") or {}, p["ratios"]
        lf, ld = p.get("llama_cpp_f32") or {}, p.get("llama_cpp_default") or {}
        ppl = r["perplexity_vs_transformers"]
        print(f"{p['seq_len']:>5} {p['processed_tokens']:>6} | {mc['tokens_per_second']:>11.1f} {mc['attention_seconds']:>6.2f} "
              f"{100 * mc['attention_share']:>5.1f} {100 * mc['attention_kernel_share']:>5.1f} {mc['gflops']:>7.1f} "
              f"{fmt(r['gemm_fraction'] and 100 * r['gemm_fraction'], '6.0f')}% {mc['peak_rss_gib']:>7.2f} | "
              f"{fmt(hf.get('tokens_per_second'), '8.1f')} {fmt(hf.get('peak_rss_gib'), '7.2f')} | "
              f"{fmt(lf.get('tokens_per_second'), '9.1f')} {fmt(ld.get('tokens_per_second'), '7.1f')} "
              f"{fmt(lf.get('peak_rss_gib'), '7.2f')} | "
              f"{fmt(r['over_transformers'], '5.2f')} {fmt(r['over_llama_cpp'], '7.2f')} "
              f"{fmt(r['over_llama_cpp_all_logits'], '7.2f')} "
              f"{'-' if ppl is None else f'{100 * ppl:+.4f}%':>9} {p['gemm_rates']['best_f32']:>8.1f}")
    print()


def lscpu_summary() -> dict:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {"model": fields.get("Model name", cpu_model()).strip(), "cpus": fields.get("CPU(s)", "").strip(),
            "flags": fields.get("Flags", "").strip()}


def machine_load() -> str:
    return Path("/proc/loadavg").read_text().strip()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("/work/bench-work"))
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT, help="UTF-8 text (heldout.txt: 56.7k Mistral ids)")
    parser.add_argument("--sweep", default="256:2048,2048:4096,8192:16384", help="SEQ_LEN:TOKENS points")
    parser.add_argument("--isa", default="avx512,avx2", help=f"code paths, from {', '.join(ISA_ENV)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-tokens", type=int, default=8192, help="moe-compress --batch-tokens (and transformers')")
    parser.add_argument("--binary", help="moe-compress (default: the release build)")
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument("--skip-llama-cpp", action="store_true")
    args = parser.parse_args(argv)
    args.sweep = [tuple(int(x) for x in point.split(":")) for point in args.sweep.split(",")]
    args.isa = [isa for isa in args.isa.split(",") if isa]
    if any(isa not in ISA_ENV for isa in args.isa):
        parser.error(f"--isa takes {', '.join(ISA_ENV)}")
    args.model_dir = args.work_dir / "mixtral-attention-random"
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    checkpoint.generate(args.model_dir, seed=0, log=log)
    gguf_path = None
    if not args.skip_llama_cpp:
        try:
            import gguf  # noqa: F401
            import llama_cpp  # noqa: F401
            gguf_path = args.work_dir / "mixtral-attention-random-f32.gguf"
            checkpoint.write_f32_gguf(args.model_dir, gguf_path, log)
        except ImportError as error:
            log(f"llama.cpp skipped: {error}")
    binary = locate_binary(args.binary)
    from tokenizers import Tokenizer
    ids = Tokenizer.from_file(str(args.model_dir / "tokenizer.json")).encode(
        args.text.read_text(encoding="utf-8"), add_special_tokens=True).ids
    if max(tokens for _, tokens in args.sweep) > len(ids):
        raise SystemExit(f"{args.text} gives {len(ids)} ids, fewer than the sweep needs")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = args.work_dir / "results" / f"attention-seqlen-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    cpu = lscpu_summary()
    summary = {"benchmark": "attention_seqlen_benchmark", "date": datetime.datetime.now().isoformat(timespec="seconds"),
               "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip(),
               "model": checkpoint.SHAPE, "text": str(args.text), "text_ids": len(ids), "threads": args.threads, "cpu": cpu,
               "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}, "code_paths": {}}
    for isa in args.isa:
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", **ISA_ENV[isa])
        load_before = machine_load()
        points = [run_point(seq, tokens, ids, args, env, run_dir, binary, gguf_path, isa) for seq, tokens in args.sweep]
        summary["code_paths"][isa] = {"env": ISA_ENV[isa], "points": points,
                                      "loadavg_before": load_before, "loadavg_after": machine_load()}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"CPU {cpu['model']} ({cpu['cpus']} CPUs); flags: {cpu['flags']}")
    print(f"{summary['date']}, commit {summary['commit']}, {args.threads} threads, OPENBLAS_CORETYPE="
          f"{summary['env']['OPENBLAS_CORETYPE']}, text {args.text.name} ({len(ids)} ids)\n")
    for isa, result in summary["code_paths"].items():
        print_table(isa, result["points"], f"env {result['env'] or 'as is'}; load average before "
                    f"{result['loadavg_before']}, after {result['loadavg_after']}")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_llama":
        llama_main(sys.argv[2:])
    else:
        main(sys.argv[1:])
