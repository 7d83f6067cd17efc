#!/usr/bin/env python3
"""Calibration and pruning cost on the OLMoE-1B-7B-shaped benchmark checkpoint (12.9 GiB bf16).

One run of this script:
1. generates the checkpoint if needed (benchmarks/olmoe_eval_benchmark.py's generator, same
   --work-dir default), then warms the page cache; a checkpoint larger than the machine's memory
   (--experts 224: 45 GB against 24 GiB) cannot be cached, so instead one timed read of all its
   shards is the disk bound that calibration (which reads every layer once) cannot beat;
2. runs `moe-compress calibrate` on --samples windows of --seq-len ids of the held-out text, once
   per --compute mode, each as a measured child process (wall time, peak RSS), and reports
   calibration tokens/s;
3. runs `moe-compress prune --keep K --method reap --stats …` (measured) and, for the bound
   the issue names, `cp -r` of the same checkpoint (measured, then removed; skipped when the
   disk has no room for a second copy);
4. counts the expert FLOPs of calibration two ways: ours (each token runs its top-k experts, the
   forward pass's own work) and REAP's observer (every expert on every token,
   CerebrasResearch/reap's observer.py), 6 · hidden · width FLOPs per expert-token;
5. prints a table and one JSON object (also saved under --work-dir/results/).

    python3 benchmarks/calibrate_prune_benchmark.py            # the full OLMoE shape
    python3 benchmarks/calibrate_prune_benchmark.py --layers 2 --experts 8 --work-dir /tmp/bench-small
    python3 benchmarks/calibrate_prune_benchmark.py --experts 224 --keep 8 --compute bf16   # larger than RAM
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import olmoe_eval_benchmark as bench  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("/work/bench-work"))
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--experts", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--keep", type=int, default=None, help="experts kept by prune (default: half)")
    parser.add_argument("--compute", default="f32,bf16")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--binary")
    args = parser.parse_args()

    model = bench.model_dir_for(args.work_dir, args.layers, args.experts)
    bench.generate_checkpoint(model, args.layers, args.experts, 5.0, 0, bench.DEFAULT_TOKENIZER, 256, False)
    binary = bench.locate_binary(args.binary)
    results_dir = args.work_dir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    config = json.loads((model / "config.json").read_text())
    hidden, width, top_k = config["hidden_size"], config["intermediate_size"], config["num_experts_per_tok"]
    keep = args.keep or args.experts // 2
    checkpoint_bytes = sum(f.stat().st_size for f in model.glob("*.safetensors"))
    memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    larger_than_memory = checkpoint_bytes > memory_bytes
    read_seconds = bench.warm_page_cache(model)

    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "cpu": bench.cpu_model(), "cpu_flags": bench.cpu_flags(), "threads": args.threads,
              "model": str(model), "layers": args.layers, "experts": args.experts, "top_k": top_k,
              "checkpoint_bytes": checkpoint_bytes, "memory_bytes": memory_bytes,
              "larger_than_memory": larger_than_memory,
              "read_seconds": read_seconds, "read_gb_per_second": checkpoint_bytes / read_seconds / 1e9,
              "calibrate": {}}
    stats = results_dir / "calibrate-stats.safetensors"
    for compute in args.compute.split(","):
        measured, stdout = bench.run_measured(
            [str(binary), "calibrate", str(model), "--data", str(bench.DEFAULT_TEXT), "--seq-len", str(args.seq_len),
             "--samples", str(args.samples), "--compute", compute, "--threads", str(args.threads), "-o", str(stats), "--force"],
            results_dir, f"calibrate-{compute}", env)
        tokens = args.samples * args.seq_len
        report["calibrate"][compute] = {"tokens": tokens, "seconds": measured["wall_seconds"],
                                        "tokens_per_second": tokens / measured["wall_seconds"],
                                        "peak_rss_gib": bench.gib(measured.get("maxrss_kib"))}

    output = args.work_dir / "pruned-benchmark"
    shutil.rmtree(output, ignore_errors=True)
    measured, _ = bench.run_measured(
        [str(binary), "prune", str(model), "-o", str(output), "--keep", str(keep), "--method", "reap", "--stats", str(stats)],
        results_dir, "prune", env)
    output_bytes = sum(f.stat().st_size for f in output.glob("*.safetensors"))
    shutil.rmtree(output, ignore_errors=True)
    copy = args.work_dir / "copy-benchmark"
    shutil.rmtree(copy, ignore_errors=True)
    copy_seconds = None
    if shutil.disk_usage(args.work_dir).free > 1.1 * checkpoint_bytes:
        started = time.perf_counter()
        subprocess.run(["cp", "-r", str(model), str(copy)], check=True)
        copy_seconds = time.perf_counter() - started
        shutil.rmtree(copy, ignore_errors=True)
    report["prune"] = {"keep": keep, "seconds": measured["wall_seconds"], "peak_rss_gib": bench.gib(measured.get("maxrss_kib")),
                       "output_bytes": output_bytes, "cp_seconds": copy_seconds,
                       "ratio_to_cp": measured["wall_seconds"] / copy_seconds if copy_seconds else None}

    tokens = args.samples * args.seq_len
    per_expert_token = 6 * hidden * width
    ours = args.layers * tokens * top_k * per_expert_token
    reaps = args.layers * tokens * args.experts * per_expert_token
    report["observer_expert_flops"] = {"moe_compress_routed_only": ours, "reap_every_expert": reaps, "ratio": reaps / ours}

    print(f"\n{report['cpu']} ({', '.join(report['cpu_flags'])}), {args.threads} threads")
    print(f"checkpoint {checkpoint_bytes / 1e9:.1f} GB ({'larger than' if larger_than_memory else 'within'} "
          f"{memory_bytes / 2**30:.1f} GiB of memory); one read of its shards: {read_seconds:.1f} s "
          f"({report['read_gb_per_second']:.2f} GB/s)")
    for compute, row in report["calibrate"].items():
        print(f"calibrate --compute {compute}: {row['tokens']} tokens in {row['seconds']:.1f} s = "
              f"{row['tokens_per_second']:.0f} tokens/s, peak RSS {row['peak_rss_gib']:.2f} GiB")
    p = report["prune"]
    copied = (f"cp -r: {p['cp_seconds']:.1f} s (prune / cp = {p['ratio_to_cp']:.2f})" if p["cp_seconds"]
              else "cp -r skipped (no room on the disk for a second copy)")
    print(f"prune --keep {keep}: {p['seconds']:.1f} s, peak RSS {p['peak_rss_gib']:.2f} GiB; {copied}; prune writes "
          f"{p['output_bytes'] / 2**30:.2f} of {report['checkpoint_bytes'] / 2**30:.2f} GiB")
    f = report["observer_expert_flops"]
    print(f"calibration expert FLOPs: ours {f['moe_compress_routed_only'] / 1e12:.2f} TFLOP, REAP's observer "
          f"{f['reap_every_expert'] / 1e12:.2f} TFLOP (× {f['ratio']:.0f})")
    path = results_dir / f"calibrate-prune-{datetime.datetime.now().strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
