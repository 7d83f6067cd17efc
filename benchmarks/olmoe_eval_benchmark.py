#!/usr/bin/env python3
"""Speed/memory benchmark: `moe-compress eval` against transformers on an OLMoE-1B-7B-shaped model.

One run of this script:

1. generates (once, into --work-dir) a random checkpoint with exactly OLMoE-1B-7B's shapes and
   tensor names (16 layers, 64 experts, top-8, hidden 2048, expert width 1024, 16 heads,
   vocab 50304, bf16, ~5 GB shards plus model.safetensors.index.json; about 14 GB), streaming it
   to disk tensor by tensor;
2. tokenizes the evaluation text with the model's tokenizer.json (add_special_tokens=True) and
   keeps the first --max-tokens ids;
3. runs `moe-compress eval --json --compute MODE` on it in a measured child process (wall time,
   peak RSS) once per mode of --compute (default both): f32 (Float32 linear layers) and bf16
   (bf16 weights, bf16-rounded inputs, Float32 accumulation), each after warming the page cache;
4. runs transformers' OlmoeForCausalLM (bf16, eager attention, no_grad) on the same ids and the
   same windows in another measured child process (load time, forward time, tokens/s, peak RSS,
   perplexity);
5. probes, in a fresh process with the same environment and thread count, the rate this machine
   reaches on the two GEMMs moe-compress runs per expert (gate+up stacked, [rows, 2048] x
   [2048, 2048]^T, and down, [rows, 1024] x [2048, 1024]^T; rows = mean tokens per expert) with
   numpy float32 (OpenBLAS under the current OPENBLAS_* variables), torch float32 and torch
   bfloat16, and compares each mode's expert-matmul GFLOP/s with its reference: the faster
   float32 one for f32, torch bfloat16 for bf16;
6. prints a summary table and one JSON object (also saved under --work-dir/results/): per program
   results (results["moe_compress_f32"], results["moe_compress_bf16"], results["transformers"]),
   and per mode the ratios moe-compress/transformers (tokens/s, peak RSS), the relative
   perplexity difference and the expert-matmul comparison (summary["expert_matmul"][mode]), plus
   the probe's rates (summary["machine_matmul_gflops_expert_shapes"]).

Each measured program runs under its own small wrapper process (`_measure`), which starts the
program, samples /proc/PID/status while it runs, and afterwards reports
getrusage(RUSAGE_CHILDREN).ru_maxrss, i.e. the peak RSS of that one program only.

Windows (same rule as `moe-compress eval`): consecutive, non-overlapping chunks of seq_len+1 ids
stepping by seq_len; each window is an independent sequence; perplexity = exp(mean NLL over all
predicted ids). Tokens/s counts the ids run through the model (sum of window lengths).

Use --layers/--experts (and --shard-gb) to make a small model for trying the script out, e.g.
    python3 benchmarks/olmoe_eval_benchmark.py --layers 2 --experts 8 --work-dir /tmp/bench-small
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TEXT = REPO / "Fixtures" / "text" / "heldout.txt"
DEFAULT_TOKENIZER = REPO.parent / "shared" / "tokenizers" / "olmoe" / "tokenizer.json"
GIB = 1024 ** 3
COMPLETE_MARKER = ".benchmark-complete.json"
GENERATOR_VERSION = 1

# OLMoE-1B-7B-0924's shapes (allenai/OLMoE-1B-7B-0924 config.json).
HIDDEN = 2048
EXPERT_WIDTH = 1024
HEADS = 16
KV_HEADS = 16
VOCAB = 50304
TOP_K = 8
BF16_ONE = 0x3F80

COMPUTE_MODES = ("f32", "bf16")  # moe-compress eval --compute


# --------------------------------------------------------------------------------------------
# Checkpoint generation
# --------------------------------------------------------------------------------------------

def olmoe_config(layers: int, experts: int) -> dict:
    """config.json of OLMoE-1B-7B-0924 with the layer and expert counts overridable."""
    return {
        "architectures": ["OlmoeForCausalLM"],
        "model_type": "olmoe",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "clip_qkv": None,
        "eos_token_id": 50279,
        "pad_token_id": 1,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": EXPERT_WIDTH,
        "max_position_embeddings": 4096,
        "norm_topk_prob": False,
        "num_attention_heads": HEADS,
        "num_experts": experts,
        "num_experts_per_tok": min(TOP_K, experts),
        "num_hidden_layers": layers,
        "num_key_value_heads": KV_HEADS,
        "output_router_logits": False,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "router_aux_loss_coef": 0.01,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": VOCAB,
    }


def olmoe_tensors(layers: int, experts: int) -> list[tuple[str, list[int], str]]:
    """(name, shape, init) in the order OlmoeForCausalLM's state_dict lists them.
    init is "normal" (N(0, 0.02)) or "ones" (RMSNorm weights)."""
    head_dim = HIDDEN // HEADS
    q_width = HEADS * head_dim
    kv_width = KV_HEADS * head_dim
    out = [("model.embed_tokens.weight", [VOCAB, HIDDEN], "normal")]
    for layer in range(layers):
        p = f"model.layers.{layer}."
        out += [
            (p + "self_attn.q_proj.weight", [q_width, HIDDEN], "normal"),
            (p + "self_attn.k_proj.weight", [kv_width, HIDDEN], "normal"),
            (p + "self_attn.v_proj.weight", [kv_width, HIDDEN], "normal"),
            (p + "self_attn.o_proj.weight", [HIDDEN, q_width], "normal"),
            (p + "self_attn.q_norm.weight", [q_width], "ones"),
            (p + "self_attn.k_norm.weight", [kv_width], "ones"),
            (p + "mlp.gate.weight", [experts, HIDDEN], "normal"),
        ]
        for e in range(experts):
            q = f"{p}mlp.experts.{e}."
            out += [
                (q + "gate_proj.weight", [EXPERT_WIDTH, HIDDEN], "normal"),
                (q + "up_proj.weight", [EXPERT_WIDTH, HIDDEN], "normal"),
                (q + "down_proj.weight", [HIDDEN, EXPERT_WIDTH], "normal"),
            ]
        out += [
            (p + "input_layernorm.weight", [HIDDEN], "ones"),
            (p + "post_attention_layernorm.weight", [HIDDEN], "ones"),
        ]
    out += [
        ("model.norm.weight", [HIDDEN], "ones"),
        ("lm_head.weight", [VOCAB, HIDDEN], "normal"),
    ]
    return out


def numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def greedy_groups(items, size_of, limit: int, fits=lambda group, item: True) -> list[list]:
    """Consecutive items in groups of at most `limit` total size (a group always takes one item);
    `fits` can also start a new group early."""
    groups, current, total = [], [], 0
    for item in items:
        size = size_of(item)
        if current and (total + size > limit or not fits(current, item)):
            groups.append(current)
            current, total = [], 0
        current.append(item)
        total += size
    if current:
        groups.append(current)
    return groups


def plan_shards(tensors, shard_bytes: int) -> list[list[tuple[str, list[int], str]]]:
    """Greedy split in state_dict order, like save_pretrained's max_shard_size."""
    return greedy_groups(tensors, lambda t: numel(t[1]) * 2, shard_bytes)


def random_bf16_pool(elements: int, seed: int):
    """`elements` bf16 values drawn from N(0, 0.02), as a uint16 numpy array (round to nearest even)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pool = np.empty(elements, dtype=np.uint16)
    chunk = 1 << 24
    for start in range(0, elements, chunk):
        n = min(chunk, elements - start)
        x = rng.standard_normal(n, dtype=np.float32)
        x *= 0.02
        bits = x.view(np.uint32)
        bits += 0x7FFF + ((bits >> 16) & 1)
        pool[start:start + n] = (bits >> 16).astype(np.uint16)
    return pool


def safetensors_header(entries: list[tuple[str, list[int]]]) -> bytes:
    """Header of a bf16 safetensors file holding `entries` back to back, padded with spaces to
    a multiple of 8 bytes, preceded by its 8-byte little-endian length."""
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in entries:
        nbytes = numel(shape) * 2
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def model_dir_for(work_dir: Path, layers: int, experts: int) -> Path:
    if (layers, experts) == (16, 64):
        return work_dir / "olmoe-1b-7b-random"
    return work_dir / f"olmoe-L{layers}-E{experts}-random"


def generate_checkpoint(model_dir: Path, layers: int, experts: int, shard_gb: float, seed: int,
                        tokenizer_json: Path, pool_mb: int, regenerate: bool) -> dict:
    import numpy as np

    spec = {"generator_version": GENERATOR_VERSION, "layers": layers, "experts": experts,
            "shard_bytes": int(shard_gb * 1e9), "seed": seed}
    marker = model_dir / COMPLETE_MARKER
    if marker.exists() and not regenerate:
        found = json.loads(marker.read_text())
        if found.get("spec") == spec:
            log(f"checkpoint already present: {model_dir}")
            return found
        raise SystemExit(f"{model_dir} holds a checkpoint made with {found.get('spec')}, not {spec}; "
                         "pass --regenerate or another --work-dir")
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)

    tensors = olmoe_tensors(layers, experts)
    total_bytes = sum(numel(s) * 2 for _, s, _ in tensors)
    free = shutil.disk_usage(model_dir).free
    if free < total_bytes + GIB:
        raise SystemExit(f"not enough disk space in {model_dir}: need {total_bytes / GIB:.1f} GiB + 1 GiB, "
                         f"have {free / GIB:.1f} GiB")
    shards = plan_shards(tensors, spec["shard_bytes"])
    largest = max(numel(s) for _, s, _ in tensors)
    pool_elements = max(pool_mb * (1 << 20) // 2, largest + (1 << 20))
    log(f"generating {len(tensors)} tensors, {total_bytes / GIB:.2f} GiB in {len(shards)} shard(s) "
        f"into {model_dir} (random pool {pool_elements * 2 / (1 << 20):.0f} MiB)")

    started = time.perf_counter()
    pool = random_bf16_pool(pool_elements, seed)
    log(f"  random pool ready in {time.perf_counter() - started:.1f} s")
    writing_started = time.perf_counter()
    pool_bytes = memoryview(pool.view(np.uint8))
    ones = memoryview(np.full(max(HIDDEN, HEADS * (HIDDEN // HEADS)), BF16_ONE, dtype=np.uint16).view(np.uint8))
    offsets = np.random.default_rng(seed + 1)

    weight_map = {}
    written = 0
    for index, shard in enumerate(shards):
        name = f"model-{index + 1:05d}-of-{len(shards):05d}.safetensors"
        partial = model_dir / (name + ".partial")
        with open(partial, "wb") as f:
            f.write(safetensors_header([(n, s) for n, s, _ in shard]))
            for tensor_name, shape, init in shard:
                count = numel(shape)
                if init == "ones":
                    f.write(ones[:count * 2])
                else:
                    start = int(offsets.integers(0, pool_elements - count + 1))
                    f.write(pool_bytes[start * 2:(start + count) * 2])
                weight_map[tensor_name] = name
                written += count * 2
        partial.rename(model_dir / name)
        rate = written / max(time.perf_counter() - writing_started, 1e-9) / GIB
        log(f"  wrote {name} ({written / GIB:.2f}/{total_bytes / GIB:.2f} GiB, {rate:.2f} GiB/s)")
    del pool_bytes, pool

    (model_dir / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total_bytes}, "weight_map": weight_map}, indent=2) + "\n")
    (model_dir / "config.json").write_text(json.dumps(olmoe_config(layers, experts), indent=2) + "\n")
    shutil.copyfile(tokenizer_json, model_dir / "tokenizer.json")
    (model_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPTNeoXTokenizerFast",
        "bos_token": None,
        "eos_token": "<|endoftext|>",
        "pad_token": "<|padding|>",
        "unk_token": "<|endoftext|>",
        "add_bos_token": False,
        "add_eos_token": False,
        "model_max_length": 4096,
    }, indent=2) + "\n")
    seconds = time.perf_counter() - started
    result = {"spec": spec, "total_bytes": total_bytes, "shards": len(shards), "tensors": len(tensors),
              "generation_seconds": round(seconds, 2)}
    marker.write_text(json.dumps(result, indent=2) + "\n")
    log(f"checkpoint generated in {seconds:.1f} s")
    return result


# --------------------------------------------------------------------------------------------
# Measurement wrapper (a fresh process per measured program)
# --------------------------------------------------------------------------------------------

def proc_status_kib(pid: int) -> dict[str, int]:
    values = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    values[key] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return values


def measure_main(argv: list[str]) -> None:
    """`_measure --out FILE --stdout FILE -- CMD...`: run CMD, write its wall time and peak RSS."""
    parser = argparse.ArgumentParser(prog="_measure")
    parser.add_argument("--out", required=True)
    parser.add_argument("--stdout", required=True)
    parser.add_argument("--sample-interval", type=float, default=0.2)
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    peaks = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}
    with open(args.stdout, "wb") as out:
        started = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out)
        while child.poll() is None:
            for key, value in proc_status_kib(child.pid).items():
                if key in peaks:
                    peaks[key] = max(peaks[key], value)
            time.sleep(args.sample_interval)
        wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(args.out).write_text(json.dumps({
        "returncode": child.returncode,
        "wall_seconds": wall,
        "maxrss_kib": usage.ru_maxrss,          # Linux: KiB
        "user_seconds": usage.ru_utime,
        "system_seconds": usage.ru_stime,
        "sampled_peak_rss_anon_kib": peaks["RssAnon"],
        "sampled_peak_rss_file_kib": peaks["RssFile"],
        "sampled_vmhwm_kib": peaks["VmHWM"],
    }) + "\n")


def run_measured(cmd: list[str], out_dir: Path, label: str, env: dict[str, str]) -> tuple[dict, str]:
    measure_json = out_dir / f"{label}.measure.json"
    stdout_file = out_dir / f"{label}.stdout"
    wrapper = [sys.executable, str(Path(__file__).resolve()), "_measure",
               "--out", str(measure_json), "--stdout", str(stdout_file), "--", *cmd]
    log(f"[{label}] " + " ".join(cmd))
    subprocess.run(wrapper, env=env, check=True)
    measured = json.loads(measure_json.read_text())
    stdout = stdout_file.read_text(errors="replace")
    if measured["returncode"] != 0:
        raise SystemExit(f"[{label}] exited with status {measured['returncode']}; stdout:\n{stdout[-4000:]}")
    return measured, stdout


# --------------------------------------------------------------------------------------------
# Windows and the transformers worker
# --------------------------------------------------------------------------------------------

def perplexity_windows(count: int, seq_len: int) -> list[tuple[int, int]]:
    windows, start = [], 0
    while start + 1 < count:
        windows.append((start, min(start + seq_len + 1, count)))
        start += seq_len
    return windows


def batch_windows(windows, batch_tokens: int) -> list[list[tuple[int, int]]]:
    """Consecutive windows of equal length, at most batch_tokens ids per batch (at least one)."""
    length = lambda w: w[1] - w[0]
    return greedy_groups(windows, length, batch_tokens, lambda group, w: length(w) == length(group[0]))


def read_status_self() -> dict[str, int]:
    return proc_status_kib(os.getpid())


def transformers_main(argv: list[str]) -> None:
    """`_transformers`: load the checkpoint with transformers and evaluate the given ids."""
    parser = argparse.ArgumentParser(prog="_transformers")
    parser.add_argument("--model", required=True)
    parser.add_argument("--ids", required=True)
    parser.add_argument("--seq-len", type=int, required=True)
    parser.add_argument("--batch-tokens", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    parser.add_argument("--attn-implementation", choices=["eager", "sdpa"], default="eager")
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    import transformers
    from transformers import AutoModelForCausalLM

    ids = json.loads(Path(args.ids).read_text())
    load_started = time.perf_counter()
    # `dtype` is the current name of from_pretrained's `torch_dtype` (deprecated in 4.56+).
    model, info = AutoModelForCausalLM.from_pretrained(
        args.model, dtype=getattr(torch, args.dtype), attn_implementation=args.attn_implementation,
        low_cpu_mem_usage=True, output_loading_info=True)
    model.eval()
    load_seconds = time.perf_counter() - load_started
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise SystemExit(f"transformers did not load the checkpoint cleanly: {problems}")
    status_after_load = read_status_self()

    windows = perplexity_windows(len(ids), args.seq_len)
    batches = batch_windows(windows, max(args.batch_tokens, args.seq_len + 1))
    forward_seconds = loss_seconds = 0.0
    total_nll, predicted, processed = 0.0, 0, 0
    with torch.no_grad():
        for batch in batches:
            x = torch.tensor([ids[a:b] for a, b in batch], dtype=torch.long)
            t = time.perf_counter()
            logits = model(input_ids=x, use_cache=False).logits
            forward_seconds += time.perf_counter() - t
            t = time.perf_counter()
            for row in range(x.shape[0]):
                logp = torch.log_softmax(logits[row, :-1].float(), dim=-1)
                total_nll -= logp.gather(1, x[row, 1:, None]).sum(dtype=torch.float64).item()
                predicted += x.shape[1] - 1
            loss_seconds += time.perf_counter() - t
            processed += x.numel()
            del logits
    mean_nll = total_nll / predicted
    print(json.dumps({
        "perplexity": math.exp(mean_nll),
        "mean_nll": mean_nll,
        "tokens": len(ids),
        "processed_tokens": processed,
        "predicted_tokens": predicted,
        "seq_len": args.seq_len,
        "windows": len(windows),
        "batches": len(batches),
        "load_seconds": load_seconds,
        "forward_seconds": forward_seconds,
        "loss_seconds": loss_seconds,
        "tokens_per_second": processed / max(forward_seconds, 1e-9),
        "tokens_per_second_with_loss": processed / max(forward_seconds + loss_seconds, 1e-9),
        "rss_after_load_kib": status_after_load.get("VmRSS"),
        "rss_anon_after_load_kib": status_after_load.get("RssAnon"),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "model_class": type(model).__name__,
        "attn_implementation": model.config._attn_implementation,
        "param_dtype": str(next(model.parameters()).dtype),
    }))


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------

def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags(wanted=("avx2", "avx512f", "avx512_bf16", "amx_bf16", "f16c")) -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [w for w in wanted if w in flags]
    except OSError:
        pass
    return []


def locate_binary(explicit: str | None) -> Path:
    if explicit:
        path = Path(explicit)
    else:
        try:
            bin_dir = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=REPO,
                                     capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError) as error:
            raise SystemExit(f"could not ask swift for the release bin path ({error}); pass --binary")
        path = Path(bin_dir) / "moe-compress"
    if not path.is_file():
        raise SystemExit(f"{path} not found; build it first: swift build -c release --product moe-compress")
    return path


def warm_page_cache(model_dir: Path) -> float:
    """Read every shard once so both programs start from a warm page cache."""
    started = time.perf_counter()
    buffer = bytearray(64 << 20)
    view = memoryview(buffer)
    for shard in sorted(model_dir.glob("*.safetensors")):
        with open(shard, "rb", buffering=0) as f:
            while f.readinto(view):
                pass
    return time.perf_counter() - started


def last_json_object(text: str) -> dict:
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise SystemExit(f"no JSON object in output:\n{text[-2000:]}")


def gib(kib: int | None) -> float | None:
    return None if kib is None else kib * 1024 / GIB


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def relative_difference(a, b):
    return None if a is None or not b else (a - b) / b


def fmt(value, spec: str) -> str:
    if value is None:
        width = spec.split(".")[0]
        return format("-", f">{width}") if width else "-"
    return format(value, spec)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark `moe-compress eval` against transformers on a random OLMoE-1B-7B-shaped checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("/work/bench-work"),
                        help="where the checkpoint and results go (keep it outside the repository)")
    parser.add_argument("--layers", type=int, default=16, help="decoder layers (OLMoE-1B-7B: 16)")
    parser.add_argument("--experts", type=int, default=64, help="experts per layer (OLMoE-1B-7B: 64); top-k is min(8, experts)")
    parser.add_argument("--shard-gb", type=float, default=5.0, help="maximum shard size in GB (10^9 bytes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool-mb", type=int, default=256, help="MiB of random bf16 generated once and sliced for every tensor")
    parser.add_argument("--regenerate", action="store_true", help="rebuild the checkpoint even if present")
    parser.add_argument("--tokenizer-json", type=Path, default=DEFAULT_TOKENIZER)
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT, help="UTF-8 evaluation text")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--batch-tokens", type=int, default=8192,
                        help="ids per pass over the weights, for both programs (moe-compress --batch-tokens)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="moe-compress --threads and torch.set_num_threads")
    parser.add_argument("--binary", help="moe-compress executable (default: from swift build -c release --show-bin-path)")
    parser.add_argument("--no-warm-cache", action="store_true",
                        help="do not read the shards into the page cache before each program")
    parser.add_argument("--only-generate", action="store_true", help="generate the checkpoint and stop")
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument("--transformers-dtype", choices=["bfloat16", "float32"], default="bfloat16",
                        help="float32 computes like moe-compress does, but needs RAM for 4 bytes a parameter "
                             "(use --layers 8 or fewer on a 24 GiB machine)")
    parser.add_argument("--skip-moe-compress", action="store_true")
    parser.add_argument("--compute", default=",".join(COMPUTE_MODES),
                        help="comma-separated moe-compress eval --compute modes to run, each in its own process "
                             f"(from {', '.join(COMPUTE_MODES)})")
    args = parser.parse_args(argv)
    args.compute = parse_compute_modes(args.compute, parser)
    if args.layers < 1 or args.experts < 1:
        parser.error("--layers and --experts must be positive")
    if args.seq_len < 1 or args.max_tokens < 2 or args.threads < 1:
        parser.error("--seq-len and --threads must be positive, --max-tokens at least 2")
    return args


def parse_compute_modes(text: str, parser: argparse.ArgumentParser) -> list[str]:
    """--compute's comma-separated list, in the given order, without repeats."""
    modes = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in modes if m not in COMPUTE_MODES]
    if unknown or not modes:
        parser.error(f"--compute takes a comma-separated list from {', '.join(COMPUTE_MODES)}, not {text!r}")
    return modes


def run_moe_compress(binary: Path, model_dir: Path, args: argparse.Namespace, mode: str, run_dir: Path,
                     env: dict[str, str]) -> dict:
    """One measured `moe-compress eval --compute MODE --json` run."""
    cmd = [str(binary), "eval", str(model_dir), "--text", str(args.text), "--seq-len", str(args.seq_len),
           "--max-tokens", str(args.max_tokens), "--batch-tokens", str(args.batch_tokens),
           "--compute", mode, "--threads", str(args.threads), "--json"]
    measured, stdout = run_measured(cmd, run_dir, f"moe-compress-{mode}", env)
    report = last_json_object(stdout)
    if report.get("compute") != mode:
        log(f"warning: moe-compress --compute {mode} reports compute {report.get('compute')!r}")
    return {
        "compute": mode,
        "tokens_per_second": report.get("tokens_per_second"),
        "seconds": report.get("seconds"),
        "wall_seconds": measured["wall_seconds"],
        "peak_rss_gib": gib(measured["maxrss_kib"]),
        "sampled_peak_rss_anon_gib": gib(measured["sampled_peak_rss_anon_kib"]),
        "sampled_peak_rss_file_gib": gib(measured["sampled_peak_rss_file_kib"]),
        "user_seconds": measured["user_seconds"],
        "system_seconds": measured["system_seconds"],
        "perplexity": report.get("perplexity"),
        "tokens": report.get("tokens"),
        "predicted_tokens": report.get("predicted_tokens"),
        "blas_core": report.get("blas_core"),
        "command": cmd,
        "report": report,
    }


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    work_dir = args.work_dir.resolve()
    if work_dir == REPO or REPO in work_dir.parents:
        log(f"warning: --work-dir {work_dir} is inside the repository")
    model_dir = model_dir_for(work_dir, args.layers, args.experts)
    generated = generate_checkpoint(model_dir, args.layers, args.experts, args.shard_gb, args.seed,
                                    args.tokenizer_json, args.pool_mb, args.regenerate)
    model_bytes = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
    if args.only_generate:
        print(json.dumps({"model_dir": str(model_dir), "model_bytes": model_bytes, **generated}, indent=2))
        return

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = work_dir / "results" / f"{model_dir.name}-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)

    if not args.text.is_file():
        raise SystemExit(f"{args.text} not found; pass --text FILE")
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    all_ids = tokenizer.encode(args.text.read_text(encoding="utf-8"), add_special_tokens=True).ids
    ids = all_ids[:args.max_tokens]
    if len(ids) < 2:
        raise SystemExit(f"{args.text} gives {len(ids)} token(s); at least 2 are needed")
    if len(ids) < args.max_tokens:
        log(f"note: {args.text} has only {len(ids)} tokens (< --max-tokens {args.max_tokens})")
    ids_file = run_dir / "ids.json"
    ids_file.write_text(json.dumps(ids))
    windows = perplexity_windows(len(ids), args.seq_len)

    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["HF_HUB_OFFLINE"] = "1"
    results: dict = {}
    warm_seconds = {}

    if not args.skip_moe_compress:
        binary = locate_binary(args.binary)
        for mode in args.compute:
            if not args.no_warm_cache:
                warm_seconds[f"moe_compress_{mode}"] = warm_page_cache(model_dir)
            result = run_moe_compress(binary, model_dir, args, mode, run_dir, env)
            results[f"moe_compress_{mode}"] = result
            if result["tokens"] != len(ids):
                log(f"warning: moe-compress tokenized {result['tokens']} ids, tokenizers gives {len(ids)}")

    if not args.skip_transformers:
        if not args.no_warm_cache:
            warm_seconds["transformers"] = warm_page_cache(model_dir)
        env_t = dict(env, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        cmd = [sys.executable, str(Path(__file__).resolve()), "_transformers", "--model", str(model_dir),
               "--ids", str(ids_file), "--seq-len", str(args.seq_len), "--batch-tokens", str(args.batch_tokens),
               "--threads", str(args.threads), "--dtype", args.transformers_dtype]
        measured, stdout = run_measured(cmd, run_dir, "transformers", env_t)
        report = last_json_object(stdout)
        results["transformers"] = {
            "tokens_per_second": report["tokens_per_second"],
            "tokens_per_second_with_loss": report["tokens_per_second_with_loss"],
            "seconds": report["forward_seconds"],
            "load_seconds": report["load_seconds"],
            "loss_seconds": report["loss_seconds"],
            "wall_seconds": measured["wall_seconds"],
            "peak_rss_gib": gib(measured["maxrss_kib"]),
            "sampled_peak_rss_anon_gib": gib(measured["sampled_peak_rss_anon_kib"]),
            "sampled_peak_rss_file_gib": gib(measured["sampled_peak_rss_file_kib"]),
            "rss_after_load_gib": gib(report.get("rss_after_load_kib")),
            "user_seconds": measured["user_seconds"],
            "system_seconds": measured["system_seconds"],
            "perplexity": report["perplexity"],
            "tokens": report["tokens"],
            "predicted_tokens": report["predicted_tokens"],
            "report": report,
        }

    mcs = {mode: results.get(f"moe_compress_{mode}") for mode in args.compute}
    hf = results.get("transformers")
    first_mc = next((mc for mc in mcs.values() if mc), None)
    summary = {
        "benchmark": "olmoe_eval_benchmark",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "model_dir": str(model_dir),
        "model": {"layers": args.layers, "experts": args.experts, "top_k": min(TOP_K, args.experts),
                  "hidden": HIDDEN, "expert_width": EXPERT_WIDTH, "vocab": VOCAB, "dtype": "bf16"},
        "model_bytes_on_disk": model_bytes,
        "model_gib_on_disk": model_bytes / GIB,
        "text": str(args.text),
        "tokens": len(ids),
        "seq_len": args.seq_len,
        "windows": len(windows),
        "processed_tokens": sum(b - a for a, b in windows),
        "batch_tokens": args.batch_tokens,
        "threads": args.threads,
        "page_cache_warmed": not args.no_warm_cache,
        "compute": args.compute,
        "transformers_dtype": args.transformers_dtype,
        "warm_cache_seconds": warm_seconds,
        "blas_core": first_mc.get("blas_core") if first_mc else None,
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                               "OMP_NUM_THREADS")},
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "mem_total_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB,
        "python": platform.python_version(),
        "results": results,
        "ratio_moe_compress_over_transformers": {
            mode: {
                "tokens_per_second": ratio(mc and mc["tokens_per_second"], hf and hf["tokens_per_second"]),
                "peak_rss": ratio(mc and mc["peak_rss_gib"], hf and hf["peak_rss_gib"]),
            } for mode, mc in mcs.items()
        },
        "perplexity_relative_difference": {
            mode: relative_difference(mc and mc["perplexity"], hf and hf["perplexity"]) for mode, mc in mcs.items()
        },
        "results_dir": str(run_dir),
    }
    measured_modes = {mode: mc["report"]["expert_matmul_gflops"] for mode, mc in mcs.items()
                      if mc and mc["report"].get("expert_matmul_gflops")}
    if measured_modes:
        rows = max(1, summary["processed_tokens"] * summary["model"]["top_k"] // max(1, args.experts))
        rates = machine_matmul_gflops(rows, args.threads, env)
        summary["machine_matmul_gflops_expert_shapes"] = rates
        summary["expert_matmul_rows"] = rows
        summary["expert_matmul"] = {mode: expert_matmul_comparison(mode, gflops, rates)
                                    for mode, gflops in measured_modes.items()}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_table(summary)
    print(json.dumps(summary, indent=2))


MATMUL_PROBE = """
import json, sys, time
import numpy as np
import torch
m, threads = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
# (out, in) of the two GEMMs moe-compress runs per expert: gate+up stacked, then down.
shapes = ((2 * EXPERT_WIDTH, HIDDEN), (HIDDEN, EXPERT_WIDTH))
flops = sum(2 * m * n * k for n, k in shapes)

def best_gflops(operands):
    for a, b in operands: a @ b.T  # warm-up
    best = 0.0
    for _ in range(3):  # best of three: the machine may still be settling after the previous program
        start = time.perf_counter()
        for _ in range(10):
            for a, b in operands: a @ b.T
        best = max(best, flops * 10 / (time.perf_counter() - start) / 1e9)
    return best

rng = np.random.default_rng(0)
f32 = [(rng.random((m, k), dtype=np.float32), rng.random((n, k), dtype=np.float32)) for n, k in shapes]
torch_f32 = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in f32]
torch_bf16 = [(a.to(torch.bfloat16), b.to(torch.bfloat16)) for a, b in torch_f32]
print(json.dumps({"numpy_openblas_f32": best_gflops(f32), "torch_f32": best_gflops(torch_f32),
                  "torch_bf16": best_gflops(torch_bf16)}))
""".replace("EXPERT_WIDTH", str(EXPERT_WIDTH)).replace("HIDDEN", str(HIDDEN))


def machine_matmul_gflops(rows: int, threads: int, env: dict) -> dict[str, float]:
    """The machine's rate on moe-compress's two per-expert GEMMs (rows = mean tokens per expert) by
    numpy's OpenBLAS (same OPENBLAS_* variables), torch float32 and torch bfloat16, with the same
    thread count, in a fresh process."""
    out = subprocess.run([sys.executable, "-c", MATMUL_PROBE, str(rows), str(threads)], check=True,
                         capture_output=True, text=True, env=dict(env, OPENBLAS_NUM_THREADS=str(threads)))
    return json.loads(out.stdout.strip().splitlines()[-1])


def expert_matmul_comparison(mode: str, gflops: float, rates: dict[str, float]) -> dict:
    """moe-compress's expert-matmul rate against the best reference of the same precision."""
    if mode == "bf16":
        reference = "torch_bf16"
    else:
        reference = max(("numpy_openblas_f32", "torch_f32"), key=lambda name: rates[name])
    return {"gflops": gflops, "reference": reference, "reference_gflops": rates[reference],
            "fraction": ratio(gflops, rates[reference])}


def print_table(s: dict) -> None:
    r = s["results"]
    rows = [(f"moe-compress {mode}", r.get(f"moe_compress_{mode}")) for mode in s["compute"]]
    rows.append((f"transformers ({s['transformers_dtype']})", r.get("transformers")))
    print(f"OLMoE-shaped random model: {s['model']['layers']} layers x {s['model']['experts']} experts "
          f"(top-{s['model']['top_k']}), {s['model_gib_on_disk']:.2f} GiB on disk")
    print(f"text {s['text']}: {s['tokens']} ids, seq-len {s['seq_len']}, {s['windows']} windows, "
          f"{s['processed_tokens']} ids processed; threads {s['threads']}")
    print(f"CPU {s['cpu_model']} ({', '.join(s['cpu_flags'])}); OPENBLAS_CORETYPE={s['env']['OPENBLAS_CORETYPE']} "
          f"OPENBLAS_L2_SIZE={s['env']['OPENBLAS_L2_SIZE']}; blas_core {s['blas_core']}")
    header = (f"{'program':<23} {'tokens/s':>10} {'seconds':>9} {'wall s':>8} {'load s':>8} "
              f"{'peak RSS GiB':>13} {'anon GiB':>9} {'perplexity':>12}")
    print(header)
    print("-" * len(header))
    for name, row in rows:
        if row is None:
            print(f"{name:<23} {'(skipped)':>10}")
            continue
        print(f"{name:<23} {fmt(row['tokens_per_second'], '10.2f')} {fmt(row['seconds'], '9.2f')} "
              f"{fmt(row['wall_seconds'], '8.2f')} {fmt(row.get('load_seconds'), '8.2f')} "
              f"{fmt(row['peak_rss_gib'], '13.2f')} {fmt(row['sampled_peak_rss_anon_gib'], '9.2f')} "
              f"{fmt(row['perplexity'], '12.2f')}")
    for mode in s["compute"]:
        q, d = s["ratio_moe_compress_over_transformers"][mode], s["perplexity_relative_difference"][mode]
        if q["tokens_per_second"] is None and q["peak_rss"] is None:
            continue  # one of the two programs was skipped
        print(f"moe-compress {mode} / transformers: tokens/s x{fmt(q['tokens_per_second'], '.2f')}, "
              f"peak RSS x{fmt(q['peak_rss'], '.2f')}, perplexity " + ("-" if d is None else f"{100 * d:+.3f}%"))
    if "machine_matmul_gflops_expert_shapes" in s:
        rates = s["machine_matmul_gflops_expert_shapes"]
        print(f"this machine on the expert GEMMs ({s['expert_matmul_rows']} rows): "
              + ", ".join(f"{name} {rate:.1f}" for name, rate in rates.items()) + " GFLOP/s")
    for mode, e in s.get("expert_matmul", {}).items():
        print(f"expert matmuls {mode}: {e['gflops']:.1f} GFLOP/s = {100 * e['fraction']:.0f}% "
              f"of {e['reference']} on the same shapes ({e['reference_gflops']:.1f} GFLOP/s)")
    print()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_measure":
        measure_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "_transformers":
        transformers_main(sys.argv[2:])
    else:
        main(sys.argv[1:])
