#!/usr/bin/env python3
"""GGUF export speed and memory (issue 15): `moe-compress quantize` against llama.cpp's
convert_hf_to_gguf.py + llama-quantize on one OLMoE-1B-7B-shaped layer, and the time of the
bit-allocation solver on a DeepSeek-V3-sized plan.

One run of this script:
1. generates, if needed, the ONE-layer checkpoint with OLMoE-1B-7B's widths (hidden 2048, 64 experts
   of width 1024, vocab 50304; 1.25 GB bf16) with benchmarks/olmoe_eval_benchmark.py's generator
   (`--layers 1`), under --work-dir (the merge benchmark's model);
2. reads the input's safetensors twice with `cat FILES > /dev/null` (the second read is the
   warm-page-cache rate: the "limited by disk/page cache" reference; caches cannot be dropped here),
   and writes as many bytes with `dd if=/dev/zero bs=16M conv=fsync` (the write-and-fsync reference:
   moe-compress fsyncs its output);
3. runs, each as a measured child process (wall time, peak RSS, stdout and stderr kept), after
   warming the page cache, --repeats times (the fastest run is reported), every program with
   --threads threads:
     a. moe-compress quantize MODEL -o OUT --types F16 --threads T --force        (conversion)
     b. moe-compress quantize MODEL -o OUT --types Q4_K --threads T --force       (plain RTN k-quants)
     c. moe-compress quantize MODEL -o OUT --types Q4_K --data TEXT --seq-len 256 --samples 8 --threads T --force
        (the importance pass, then importance-weighted rounding; its two phases are split from the
        progress lines on stderr), once per --blas-env setting (its forward pass is the only part
        that calls a matrix library);
     d. PYTHONPATH=LLAMA/gguf-py python LLAMA/convert_hf_to_gguf.py MODEL --outtype f16 --outfile X.gguf
        then llama-quantize X.gguf Y.gguf Q4_K_M T, and their sum; also llama-quantize --pure X.gguf W.gguf
        Q4_K T (every matrix Q4_K: the same types as b., where Q4_K_M puts Q5_K/Q6_K/Q8_0 on some tensors);
     e. llama-quantize on moe-compress's own F16 output (a.) to Q4_K_M, and llama-simple on
        moe-compress's F16 and Q4_K files, recording whether llama.cpp loads them; and gguf-py
        compares a.'s tensors with convert_hf_to_gguf.py's byte for byte;
   moe-compress writes through a staged file that it fsyncs before the rename; llama.cpp does not
   fsync, so the script also times `sync FILE` after each llama.cpp output (reported apart);
4. the encoders alone: `moe-compress-bench rows` (quantizeRows per type on one expert-sized matrix,
   width x hidden, of N(0, 0.02) weights, with and without importance weights) against ggml's
   ggml_quantize_chunk from llama.cpp's libggml-base.so (ctypes, a fresh process, the same shape and
   distributions), both on one thread, compared in weights per CPU second (robust to a shared machine);
   and `moe-compress-bench allocation`: BitAllocation.solve
   on a synthetic DeepSeek-V3-sized error table (61 layers x 256 experts, IQ2_XXS..Q8_0), bins 20000
   and 100000, budgets 2.25/2.75/3.5/4.5 bits per weight;
5. prints a table (wall and CPU seconds: on a loaded machine the CPU seconds are the steadier figure) and one JSON object (also saved as --work-dir/results/quantize-DATE.json), with the
   CPU model and features, and the load average around every run.

GB/s is the input's bf16 tensor bytes (safetensors data, headers excluded) over wall seconds.

    /work/venv/bin/python benchmarks/quantize_benchmark.py --repeats 2
    /work/venv/bin/python benchmarks/quantize_benchmark.py --experts 8 --work-dir /tmp/bench-small --repeats 1
"""
import argparse
import datetime
import json
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import olmoe_eval_benchmark as bench  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BLAS_ENVS = ("as-is", "autodetect")
DEFAULT_LLAMA_BIN = Path("/work/llama-cpp/bin")
DEFAULT_LLAMA_SRC_CANDIDATES = (Path("/work/llama/llama_cpp_python-0.3.36/vendor/llama.cpp"),
                                Path("/work/llama-cpp/src/llama_cpp_python-0.3.36/vendor/llama.cpp"),
                                Path("/work/llama-cpp/src"))


def load_average() -> str:
    return Path("/proc/loadavg").read_text().strip()


def child_env(setting: str, threads: int) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    if setting == "autodetect":
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    return env


def tensor_bytes(model: Path) -> int:
    """Bytes of tensor data in the safetensors files (file sizes less their headers)."""
    total = 0
    for shard in sorted(model.glob("*.safetensors")):
        with open(shard, "rb") as f:
            length = struct.unpack("<Q", f.read(8))[0]
        total += shard.stat().st_size - 8 - length
    return total


# --------------------------------------------------------------------------------------------
# Measurement wrapper: bench.measure_main, with stderr kept too (moe-compress's progress lines)
# --------------------------------------------------------------------------------------------

def measure_main(argv: list[str]) -> None:
    """`_measure --out FILE --stdout FILE --stderr FILE -- CMD...`: run CMD, write its wall time and peak RSS."""
    parser = argparse.ArgumentParser(prog="_measure")
    parser.add_argument("--out", required=True)
    parser.add_argument("--stdout", required=True)
    parser.add_argument("--stderr", required=True)
    parser.add_argument("--sample-interval", type=float, default=0.1)
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    peaks = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}
    with open(args.stdout, "wb") as out, open(args.stderr, "wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=err)
        while child.poll() is None:
            for key, value in bench.proc_status_kib(child.pid).items():
                if key in peaks:
                    peaks[key] = max(peaks[key], value)
            time.sleep(args.sample_interval)
        wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(args.out).write_text(json.dumps({
        "returncode": child.returncode, "wall_seconds": wall, "maxrss_kib": usage.ru_maxrss,
        "user_seconds": usage.ru_utime, "system_seconds": usage.ru_stime,
        "sampled_peak_rss_anon_kib": peaks["RssAnon"], "sampled_peak_rss_file_kib": peaks["RssFile"],
        "sampled_vmhwm_kib": peaks["VmHWM"]}) + "\n")


def run_measured(cmd: list[str], out_dir: Path, label: str, env: dict, check: bool = True) -> dict:
    files = {k: out_dir / f"{label}.{k}" for k in ("measure.json", "stdout", "stderr")}
    wrapper = [sys.executable, str(Path(__file__).resolve()), "_measure", "--out", str(files["measure.json"]),
               "--stdout", str(files["stdout"]), "--stderr", str(files["stderr"]), "--", *cmd]
    bench.log(f"[{label}] " + " ".join(cmd))
    before = load_average()
    subprocess.run(wrapper, env=env, check=True)
    after = load_average()
    measured = json.loads(files["measure.json"].read_text())
    stdout = files["stdout"].read_text(errors="replace")
    stderr = files["stderr"].read_text(errors="replace")
    if check and measured["returncode"] != 0:
        raise SystemExit(f"[{label}] exited with status {measured['returncode']}; stderr:\n{stderr[-4000:]}\nstdout:\n{stdout[-2000:]}")
    return {"returncode": measured["returncode"], "seconds": measured["wall_seconds"],
            "user_seconds": measured["user_seconds"], "system_seconds": measured["system_seconds"],
            "peak_rss_gib": bench.gib(measured["maxrss_kib"]),
            "sampled_peak_rss_anon_gib": bench.gib(measured["sampled_peak_rss_anon_kib"]),
            "sampled_peak_rss_file_gib": bench.gib(measured["sampled_peak_rss_file_kib"]),
            "load_before": before, "load_after": after, "command": cmd,
            "stdout_tail": stdout[-3000:], "stderr_tail": stderr[-3000:], "_stderr": stderr, "_stdout": stdout}


def fastest(runs: list[dict]) -> dict:
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["all_seconds"] = [r["seconds"] for r in runs]
    best["all_peak_rss_gib"] = [r["peak_rss_gib"] for r in runs]
    return best


def strip_private(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


PROGRESS = re.compile(r"^(\w+) (\d+)% \((\d+)/(\d+), ([0-9.]+) s\)", re.M)


def phases_of(stderr: str) -> dict:
    """Seconds of each progress bar at its last line ('importance 100% (8/8, 3.1 s)')."""
    phases = {}
    for label, _, done, total, seconds in PROGRESS.findall(stderr):
        phases[label] = float(seconds)
    return phases


def llama_quantize_times(stdout: str) -> dict:
    """llama-quantize's own 'main: quantize time = X ms' and 'total time = Y ms'."""
    times = {}
    for key in ("quantize time", "total time"):
        m = re.search(rf"{key}\s*=\s*([0-9.]+)\s*ms", stdout)
        if m:
            times[key.replace(" ", "_") + "_seconds"] = float(m.group(1)) / 1000
    return times


def locate_llama_src(explicit: str | None) -> Path:
    for candidate in ([Path(explicit)] if explicit else list(DEFAULT_LLAMA_SRC_CANDIDATES)):
        if (candidate / "convert_hf_to_gguf.py").is_file() and (candidate / "gguf-py").is_dir():
            return candidate
    raise SystemExit("convert_hf_to_gguf.py with gguf-py not found; pass --llama-src")


def build_release(product: str) -> Path:
    bench.log(f"swift build -c release --product {product}")
    subprocess.run(["swift", "build", "-c", "release", "--product", product], cwd=REPO, check=True)
    bin_dir = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.strip()
    return Path(bin_dir) / product


def disk_read(model: Path, results_dir: Path, env: dict) -> list[dict]:
    files = [str(f) for f in sorted(model.glob("*.safetensors"))]
    size = sum(Path(f).stat().st_size for f in files)
    reads = []
    for i in range(2):
        row = run_measured(["sh", "-c", 'cat "$@" > /dev/null', "cat", *files], results_dir, f"cat-{i + 1}", env)
        row["bytes"] = size
        row["gb_per_s"] = size / row["seconds"] / 1e9
        reads.append(strip_private(row))
    return reads


def llama_loads(llama_bin: Path, gguf: Path, results_dir: Path, label: str, env: dict, threads: int) -> dict:
    """llama-simple on the file: loads it (every tensor's name, shape and type checked) and decodes 4 tokens."""
    row = run_measured([str(llama_bin / "llama-simple"), "-m", str(gguf), "-n", "4", "Hello"], results_dir, label,
                       env, check=False)
    text = row["_stdout"] + row["_stderr"]
    return {"file": str(gguf), "returncode": row["returncode"], "loads": row["returncode"] == 0,
            "seconds": row["seconds"], "tail": text[-1500:]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("/work/bench-work"))
    parser.add_argument("--experts", type=int, default=64, help="experts of the generated layer")
    parser.add_argument("--threads", type=int, default=2, help="threads of every program (moe-compress, convert's torch, llama-quantize)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each program; the fastest is reported")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--text", type=Path, default=bench.DEFAULT_TEXT)
    parser.add_argument("--blas-env", default="as-is,autodetect",
                        help="settings for case c (its forward pass): as-is and/or autodetect (OPENBLAS_CORETYPE/L2_SIZE unset)")
    parser.add_argument("--llama-bin", type=Path, default=DEFAULT_LLAMA_BIN)
    parser.add_argument("--llama-src", help="llama.cpp source with convert_hf_to_gguf.py and gguf-py")
    parser.add_argument("--allocation-repeats", type=int, default=5)
    parser.add_argument("--skip-llama", action="store_true")
    parser.add_argument("--skip-allocation", action="store_true")
    parser.add_argument("--skip-rows", action="store_true", help="skip the encoder-only comparison (quantizeRows vs ggml_quantize_chunk)")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    parser.add_argument("--keep-outputs", action="store_true")
    args = parser.parse_args()
    settings = [s for s in dict.fromkeys(args.blas_env.split(",")) if s]
    if any(s not in BLAS_ENVS for s in settings) or not settings:
        parser.error(f"--blas-env takes a comma-separated list from {', '.join(BLAS_ENVS)}")

    args.work_dir = args.work_dir.resolve()
    model = bench.model_dir_for(args.work_dir, 1, args.experts)
    bench.generate_checkpoint(model, 1, args.experts, 5.0, 0, bench.DEFAULT_TOKENIZER, 256, False)
    if args.no_build:
        binary = bench.locate_binary(None)
        bench_binary = binary.parent / "moe-compress-bench"
    else:
        binary = build_release("moe-compress")
        bench_binary = build_release("moe-compress-bench")
    llama_src = None if args.skip_llama else locate_llama_src(args.llama_src)
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    results_dir = args.work_dir / "results" / f"quantize-{stamp}"
    results_dir.mkdir(parents=True, exist_ok=True)
    scratch = args.work_dir / "quantize-outputs"
    scratch.mkdir(parents=True, exist_ok=True)
    config = json.loads((model / "config.json").read_text())
    hidden, width = config["hidden_size"], config["intermediate_size"]
    input_bytes = tensor_bytes(model)
    layer_expert_bytes = args.experts * 3 * width * hidden * 2
    env = child_env("as-is", args.threads)
    T = str(args.threads)

    report = {"benchmark": "quantize_benchmark",
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip(),
              "cpu": bench.cpu_model(), "cpu_flags": bench.cpu_flags(), "cpu_count": os.cpu_count(),
              "threads": args.threads, "repeats": args.repeats,
              "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
              "model": str(model), "experts": args.experts, "hidden": hidden, "expert_width": width,
              "input_tensor_bytes": input_bytes, "layer_expert_bytes_bf16": layer_expert_bytes,
              "llama_bin": str(args.llama_bin), "llama_src": str(llama_src) if llama_src else None,
              "results_dir": str(results_dir), "load_start": load_average(), "cases": {}}
    build_info = args.llama_bin.parent / "BUILD_INFO.txt"
    if build_info.is_file():
        report["llama_build_info"] = build_info.read_text().strip()

    def finish(row: dict, output: Path | None) -> dict:
        row["gb_per_s"] = input_bytes / row["seconds"] / 1e9
        row["peak_rss_over_layer_experts"] = row["peak_rss_gib"] * bench.GIB / layer_expert_bytes
        if output is not None and output.exists():
            row["output_bytes"] = output.stat().st_size
        return row

    # 2. Disk / page cache references: reading the input, and writing + fsyncing as many bytes.
    report["disk_read"] = disk_read(model, results_dir, env)
    blocks = -(-input_bytes // (16 << 20))
    row = run_measured(["dd", "if=/dev/zero", f"of={scratch / 'dd-write.bin'}", "bs=16M", f"count={blocks}", "conv=fsync"],
                       results_dir, "dd-write-fsync", env)
    (scratch / "dd-write.bin").unlink(missing_ok=True)
    report["disk_write_fsync"] = {"bytes": blocks * (16 << 20), "seconds": row["seconds"],
                                  "gb_per_s": blocks * (16 << 20) / row["seconds"] / 1e9, "load_before": row["load_before"]}

    # 3a-c. moe-compress.
    def moe_compress(case: str, types: str, extra: list[str], setting: str) -> dict:
        output = scratch / f"moe-compress-{case}.gguf"
        cmd = [str(binary), "quantize", str(model), "-o", str(output), "--types", types, *extra, "--threads", T, "--force"]
        runs = []
        for i in range(args.repeats):
            bench.warm_page_cache(model)
            row = run_measured(cmd, results_dir, f"moe-compress-{case}-{setting}-{i + 1}", child_env(setting, args.threads))
            row["phases"] = phases_of(row["_stderr"])
            runs.append(row)
        best = finish(fastest(runs), output)
        best["blas_env"] = setting
        phases = best["phases"]
        if "quantize" in phases:
            best["write_seconds"] = phases["quantize"]
            best["write_gb_per_s"] = input_bytes / phases["quantize"] / 1e9
        if "importance" in phases:
            best["importance_seconds"] = phases["importance"]
        best["other_seconds"] = best["seconds"] - phases.get("quantize", 0) - phases.get("importance", 0)
        return strip_private(best)

    cases = report["cases"]
    cases["a_moe_compress_f16"] = moe_compress("a-f16", "F16", [], "as-is")
    cases["b_moe_compress_q4k"] = moe_compress("b-q4k", "Q4_K", [], "as-is")
    data = ["--data", str(args.text), "--seq-len", str(args.seq_len), "--samples", str(args.samples)]
    for setting in settings:
        cases[f"c_moe_compress_q4k_importance_{setting}"] = moe_compress(f"c-q4k-imatrix", "Q4_K", data, setting)

    # 3d-e. llama.cpp.
    if llama_src is not None:
        lenv = dict(env, PYTHONPATH=str(llama_src / "gguf-py") + os.pathsep + env.get("PYTHONPATH", ""))
        x, y = scratch / "llama-convert-f16.gguf", scratch / "llama-q4_k_m.gguf"
        w = scratch / "llama-q4_k-pure.gguf"
        convert_runs, quantize_runs, pure_runs, sync_convert, sync_quantize = [], [], [], [], []
        for i in range(args.repeats):
            bench.warm_page_cache(model)
            x.unlink(missing_ok=True)
            convert_runs.append(run_measured([sys.executable, str(llama_src / "convert_hf_to_gguf.py"), str(model),
                                              "--outtype", "f16", "--outfile", str(x)], results_dir, f"llama-convert-{i + 1}", lenv))
            sync_convert.append(strip_private(run_measured(["sync", str(x)], results_dir, f"sync-convert-{i + 1}", env)))
            y.unlink(missing_ok=True)
            row = run_measured([str(args.llama_bin / "llama-quantize"), str(x), str(y), "Q4_K_M", T], results_dir,
                               f"llama-quantize-{i + 1}", env)
            row.update(llama_quantize_times(row["_stdout"] + row["_stderr"]))
            quantize_runs.append(row)
            sync_quantize.append(strip_private(run_measured(["sync", str(y)], results_dir, f"sync-quantize-{i + 1}", env)))
            # The same work as moe-compress's --types Q4_K: every matrix Q4_K, no mixture.
            w.unlink(missing_ok=True)
            row = run_measured([str(args.llama_bin / "llama-quantize"), "--pure", str(x), str(w), "Q4_K", T], results_dir,
                               f"llama-quantize-pure-{i + 1}", env)
            row.update(llama_quantize_times(row["_stdout"] + row["_stderr"]))
            pure_runs.append(row)
        convert = strip_private(finish(fastest(convert_runs), x))
        quantize = strip_private(finish(fastest(quantize_runs), y))
        cases["d1_llama_convert_f16"] = convert
        cases["d2_llama_quantize_q4_k_m"] = quantize
        pure = strip_private(finish(fastest(pure_runs), w))
        cases["d3_llama_quantize_pure_q4_k"] = pure
        total = convert["seconds"] + quantize["seconds"]
        cases["d_llama_total"] = {"seconds": total, "gb_per_s": input_bytes / total / 1e9,
                                  "peak_rss_gib": max(convert["peak_rss_gib"], quantize["peak_rss_gib"]),
                                  "sync_seconds_after_convert": min(r["seconds"] for r in sync_convert),
                                  "sync_seconds_after_quantize": min(r["seconds"] for r in sync_quantize)}
        b = cases["b_moe_compress_q4k"]
        report["ratio_b_over_llama_total"] = b["seconds"] / total
        report["ratio_b_over_llama_convert_plus_pure"] = b["seconds"] / (convert["seconds"] + pure["seconds"])
        cpu = lambda row: row["user_seconds"] + row["system_seconds"]
        report["cpu_ratio_b_over_llama_total"] = cpu(b) / (cpu(convert) + cpu(quantize))
        report["cpu_ratio_b_over_llama_convert_plus_pure"] = cpu(b) / (cpu(convert) + cpu(pure))
        report["ratio_a_over_llama_convert"] = cases["a_moe_compress_f16"]["seconds"] / convert["seconds"]

        # e. llama.cpp on moe-compress's files.
        f16 = scratch / "moe-compress-a-f16.gguf"
        out = subprocess.run([sys.executable, "-c", COMPARE_F16, str(f16), str(x)], capture_output=True, text=True, env=lenv)
        report["f16_tensors_compared"] = json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-2000:]}
        z = scratch / "llama-q4_k_m-of-moe-compress-f16.gguf"
        z.unlink(missing_ok=True)
        row = run_measured([str(args.llama_bin / "llama-quantize"), str(f16), str(z), "Q4_K_M", T], results_dir,
                           "llama-quantize-of-moe-compress-f16", env, check=False)
        row.update(llama_quantize_times(row["_stdout"] + row["_stderr"]))
        row["loads"] = row["returncode"] == 0
        cases["e_llama_quantize_of_moe_compress_f16"] = strip_private(finish(row, z))
        report["llama_loads"] = {
            "moe_compress_f16": llama_loads(args.llama_bin, f16, results_dir, "llama-simple-moe-compress-f16", env, args.threads),
            "moe_compress_q4k": llama_loads(args.llama_bin, scratch / "moe-compress-b-q4k.gguf", results_dir,
                                            "llama-simple-moe-compress-q4k", env, args.threads),
            "llama_q4_k_m_of_moe_compress_f16": llama_loads(args.llama_bin, z, results_dir, "llama-simple-llama-of-moe-compress", env, args.threads)
            if z.exists() else None,
        }

    # 4a. The encoders alone: moe-compress's quantizeRows against ggml's ggml_quantize_chunk, same shape.
    if not args.skip_rows:
        before = load_average()
        out = subprocess.run([str(bench_binary), "rows", "--repeats", "3", "--rows", str(width), "--row-length", str(hidden)],
                             capture_output=True, text=True, env=env, check=True)
        rows = {"moe_compress": bench.last_json_object(out.stdout)}
        lib = args.llama_bin.parent / "lib" / "libggml-base.so"
        if lib.is_file():
            out_file = results_dir / "ggml-rows.json"
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "_ggml_rows", "--lib", str(lib), "--rows", str(width),
                            "--row-length", str(hidden), "--out", str(out_file)], env=env, check=True)
            rows["ggml"] = json.loads(out_file.read_text())
        rows["load_before"], rows["load_after"] = before, load_average()
        report["rows"] = rows

    # 4b. The allocation solver.
    if not args.skip_allocation:
        before = load_average()
        out = subprocess.run([str(bench_binary), "allocation", "--repeats", str(args.allocation_repeats),
                              "--bins", "20000,100000", "--bits", "2.25,2.75,3.5,4.5"],
                             capture_output=True, text=True, env=env, check=True)
        allocation = bench.last_json_object(out.stdout)
        allocation["load_before"], allocation["load_after"] = before, load_average()
        report["allocation"] = allocation

    report["load_end"] = load_average()
    path = args.work_dir / "results" / f"quantize-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    if not args.keep_outputs:
        shutil.rmtree(scratch, ignore_errors=True)
    print_table(report)
    print(json.dumps(report))


def print_table(r: dict) -> None:
    print(f"\n{r['cpu']} ({', '.join(r['cpu_flags'])}), {r['cpu_count']} CPUs, {r['threads']} threads, fastest of {r['repeats']}; "
          f"one OLMoE layer of {r['experts']} experts: {r['input_tensor_bytes'] / 1e9:.3f} GB of bf16 tensors "
          f"({r['layer_expert_bytes_bf16'] / 1e6:.0f} MB of them the layer's experts)")
    reads = r["disk_read"]
    rates = ", ".join(f"{x['gb_per_s']:.2f}" for x in reads)
    print(f"cat of the input: {rates} GB/s (1st, 2nd = warm page cache); "
          f"dd write + fsync of as many bytes: {r['disk_write_fsync']['gb_per_s']:.2f} GB/s")
    header = (f"{'case':<44} {'wall s':>7} {'CPU s':>6} {'GB/s':>6} {'phases s':>22} {'peak RSS GiB':>12} {'anon GiB':>8} "
              f"{'x layer':>7} {'out MB':>8}  load before -> after")
    print(header)
    print("-" * len(header))
    for name, row in r["cases"].items():
        if name == "d_llama_total":
            print(f"{'d  llama.cpp convert + quantize':<44} {row['seconds']:7.2f} {'':>6} {row['gb_per_s']:6.3f} {'':>22} "
                  f"{row['peak_rss_gib']:12.2f}   (sync after: convert {row['sync_seconds_after_convert']:.2f} s, "
                  f"quantize {row['sync_seconds_after_quantize']:.2f} s)")
            continue
        phases = ""
        if "write_seconds" in row:
            phases = (f"imp {row['importance_seconds']:.2f} + " if "importance_seconds" in row else "") + f"write {row['write_seconds']:.2f}"
        elif "quantize_time_seconds" in row:
            phases = f"quantize {row['quantize_time_seconds']:.2f}"
        print(f"{name:<44} {row['seconds']:7.2f} {row['user_seconds'] + row['system_seconds']:6.1f} {row['gb_per_s']:6.3f} {phases:>22} {row['peak_rss_gib']:12.2f} "
              f"{bench.fmt(row.get('sampled_peak_rss_anon_gib'), '8.2f')} {row['peak_rss_over_layer_experts']:7.2f} "
              f"{bench.fmt(row.get('output_bytes') and row['output_bytes'] / 1e6, '8.1f')}  "
              f"{' '.join(row['load_before'].split()[:3])} -> {' '.join(row['load_after'].split()[:3])}")
    if "ratio_b_over_llama_total" in r:
        ratio = r["ratio_b_over_llama_total"]
        print(f"moe-compress Q4_K (b) / llama.cpp convert + quantize Q4_K_M: time x{ratio:.2f} "
              f"({1 / ratio:.2f}x the speed); moe-compress F16 (a) / convert: x{r['ratio_a_over_llama_convert']:.2f}")
    if "ratio_b_over_llama_convert_plus_pure" in r:
        print(f"  against convert + llama-quantize --pure Q4_K (the same types as b): time x{r['ratio_b_over_llama_convert_plus_pure']:.2f}; "
              f"CPU seconds x{r['cpu_ratio_b_over_llama_total']:.2f} (Q4_K_M), x{r['cpu_ratio_b_over_llama_convert_plus_pure']:.2f} (pure Q4_K)")
    for name, loaded in (r.get("llama_loads") or {}).items():
        if loaded:
            print(f"llama-simple loads {name}: {loaded['loads']} (status {loaded['returncode']})")
    compared = r.get("f16_tensors_compared")
    if compared:
        print(f"moe-compress's F16 tensors byte-identical to convert_hf_to_gguf.py's: {compared.get('identical')} "
              f"({compared.get('tensors')} tensors; different: {compared.get('different')})")
    e = r["cases"].get("e_llama_quantize_of_moe_compress_f16")
    if e:
        print(f"llama-quantize accepts moe-compress's F16 file: {e['loads']} (status {e['returncode']})")
    rows = r.get("rows")
    if rows:
        m = rows["moe_compress"]
        g = {(x["type"], x["importance"]): x for x in (rows.get("ggml") or {}).get("results", [])}
        print(f"\nencoders alone, one {m['rows']} x {m['row_length']} matrix of N(0, 0.02), million weights per CPU second "
              f"(moe-compress quantizeRows in 16-row calls, one thread; ggml_quantize_chunk, one thread); "
              f"load {' '.join(rows['load_before'].split()[:3])} -> {' '.join(rows['load_after'].split()[:3])}")
        print(f"{'type':<18} {'moe-compress':>12} {'ggml':>8} {'ratio':>6}")
        for x in m["results"]:
            mine = x["weights"] / max(x["serial_cpu_seconds"], 1e-9) / 1e6
            theirs = g.get((x["type"], x["importance"]))
            theirs_rate = theirs["weights_per_cpu_second"] / 1e6 if theirs else None
            print(f"{x['type'] + (' +importance' if x['importance'] else ''):<18} {mine:12.1f} {bench.fmt(theirs_rate, '8.1f')} "
                  f"{bench.fmt(theirs_rate and mine / theirs_rate, '6.2f')}")
    a = r.get("allocation")
    if a:
        print(f"\nBitAllocation.solve, DeepSeek-V3 sizes ({a['layers']} layers x {a['experts']} experts, {a['units']} units, "
              f"{a['free_units']} free, {a['weights'] / 1e9:.1f} B weights, candidates {','.join(a['candidates'])} "
              f"= {a['smallest_bits_per_weight']:.3f}..{a['largest_bits_per_weight']:.3f} bpw), fastest of {a['repeats']}; "
              f"load {' '.join(a['load_before'].split()[:3])} -> {' '.join(a['load_after'].split()[:3])}")
        print(f"{'bins':>7} {'bpw':>5} {'wall s':>8} {'CPU s':>8} {'got bpw':>8}  mix")
        for x in a["results"]:
            mix = ", ".join(f"{k} {v / a['weights'] * 100:.0f}%" for k, v in sorted(x.get("weights_by_type", {}).items()))
            print(f"{x['bins']:7d} {x['bits']:5.2f} {x['seconds']:8.4f} {x['cpu_seconds']:8.4f} "
                  f"{bench.fmt(x.get('bits_per_weight'), '8.4f')}  {mix or x.get('infeasible')}")
    print()


# Tensor by tensor: moe-compress's F16 file against convert_hf_to_gguf.py's (name, type, shape, bytes).
COMPARE_F16 = """
import json, sys
import numpy as np
from gguf import GGUFReader
a = {t.name: t for t in GGUFReader(sys.argv[1]).tensors}
b = {t.name: t for t in GGUFReader(sys.argv[2]).tensors}
different = [n for n in sorted(set(a) & set(b)) if a[n].tensor_type != b[n].tensor_type or list(a[n].shape) != list(b[n].shape)
             or not np.array_equal(np.asarray(a[n].data).view(np.uint8), np.asarray(b[n].data).view(np.uint8))]
print(json.dumps({"tensors": len(a), "only_in_moe_compress": sorted(set(a) - set(b)), "only_in_llama": sorted(set(b) - set(a)),
                  "different": different, "identical": not different and set(a) == set(b)}))
"""

GGML_TYPES = {"F16": 1, "BF16": 30, "Q8_0": 8, "Q6_K": 14, "Q5_K": 13, "Q4_K": 12, "Q3_K": 11, "Q2_K": 10,
              "IQ2_XS": 17, "IQ2_XXS": 16}
# ggml quantizes these only with importance weights (ggml_quantize_requires_imatrix).
IMATRIX_ONLY = {"IQ2_XS", "IQ2_XXS"}


def ggml_rows_main(argv: list[str]) -> None:
    """`_ggml_rows`: ggml_quantize_chunk (one thread, as llama-quantize runs it per chunk) on a
    rows x row-length matrix of N(0, 0.02), with and without importance weights spread over two
    decades: the same distributions moe-compress-bench rows uses."""
    import ctypes
    import numpy as np
    parser = argparse.ArgumentParser(prog="_ggml_rows")
    parser.add_argument("--lib", required=True)
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--row-length", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    lib = ctypes.CDLL(args.lib)
    quantize = lib.ggml_quantize_chunk
    quantize.restype = ctypes.c_size_t
    quantize.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    lib.ggml_quantize_init.argtypes = [ctypes.c_int]
    rng = np.random.default_rng(15)
    x = (rng.standard_normal((args.rows, args.row_length)) * 0.02).astype(np.float32)
    importance = (10 ** (2 * rng.random(args.row_length) - 1)).astype(np.float32)
    out = np.empty(x.size * 4, np.uint8)
    results = []
    for name, code in GGML_TYPES.items():
        lib.ggml_quantize_init(code)
        for weighted in ((False,) if name in ("F16", "BF16") else (True,) if name in IMATRIX_ONLY else (False, True)):
            wall, cpu = [], []
            for _ in range(args.repeats):
                started, cpu_started = time.perf_counter(), time.process_time()
                quantize(code, x.ctypes.data, out.ctypes.data, 0, args.rows, args.row_length,
                         importance.ctypes.data if weighted else None)
                wall.append(time.perf_counter() - started)
                cpu.append(time.process_time() - cpu_started)
            results.append({"type": name, "importance": weighted, "weights": x.size, "seconds": min(wall),
                            "cpu_seconds": min(cpu), "weights_per_cpu_second": x.size / max(min(cpu), 1e-9)})
    args.out.write_text(json.dumps({"rows": args.rows, "row_length": args.row_length, "results": results}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_measure":
        measure_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "_ggml_rows":
        ggml_rows_main(sys.argv[2:])
    else:
        main()
