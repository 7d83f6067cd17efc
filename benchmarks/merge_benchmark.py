#!/usr/bin/env python3
"""Merge cost on one MoE layer of the OLMoE-1B-7B shape (issue 16): time and peak RSS of
`moe-compress merge` per fusing mode, and its SVD time against numpy.linalg.svd on the same matrices.

One run of this script:
1. generates, if needed, a ONE-layer checkpoint with OLMoE-1B-7B's widths (hidden 2048, 64 experts
   of width 1024, top-8, vocab 50304; 1.25 GB bf16, of which the experts are 805 MB) with
   benchmarks/olmoe_eval_benchmark.py's generator (`--layers 1`), under --work-dir;
2. for each BLAS setting of --blas-env (`as-is`: the environment's OPENBLAS_CORETYPE and
   OPENBLAS_L2_SIZE; `autodetect`: both unset, for the child processes only) and each fusing mode
   of --fuse (average, aligned, subspace with --energy 0.9), runs
   `moe-compress merge MODEL -o OUT --experts 48 --similarity output --cluster hierarchical
   --router average --fuse MODE --data Fixtures/text/heldout.txt --seq-len 256 --samples 8
   --sample-tokens 2048 --threads T` as a measured child process (wall time, peak RSS), after
   warming the page cache, --repeats times (the fastest run is reported); similarity, clustering,
   router and calibration are the same for every mode, so the modes differ only in the fusing.
   Each wall time includes loading, the calibration pass, planning and writing: the average mode
   is the baseline, and a mode's extra time over it is its fusing cost;
3. takes the clusters from the subspace run's merge-report.json and, in a fresh Python process with
   the same environment and thread count, rebuilds with numpy the matrices Sub-MoE decomposes (for
   every cluster of two or more experts and each projection, the members' matrices side by side,
   M = [W_1 | ... | W_n], read from the checkpoint's bf16 safetensors, in float64: gate and up are
   1024 x (n * 2048), down 2048 x (n * 1024)) and times numpy.linalg.svd(M, full_matrices=False)
   on each (LAPACK gesdd, as moe-compress's LAPACKE_dgesdd), plus the concatenation before it and
   the rebuild after it (U_r S_r times the usage-weighted Vt blocks), checking the kept rank and
   energy against merge-report.json; it also times the SVD of each M^T (the same decomposition
   through gesdd's QR path rather than its LQ path: moe-compress hands LAPACK the row-major M,
   which in column-major order is M^T); and it times one representative matrix (the first two-member
   cluster's gate concatenation, 1024 x 4096) --svd-repeats times. moe-compress's SVD time is
   estimated as (subspace wall time - average wall time): the rest of the two runs is the same work;
4. prints a table and one JSON object (also saved as --work-dir/results/merge-DATE.json), with the
   CPU model and features, OpenBLAS core names (moe-compress's, from `eval --json`, and numpy's),
   thread settings and the load average around every run.

    /work/venv/bin/python benchmarks/merge_benchmark.py
    /work/venv/bin/python benchmarks/merge_benchmark.py --experts 16 --work-dir /tmp/bench-small --blas-env as-is
"""
import argparse
import ctypes
import datetime
import glob
import json
import os
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
FUSE_MODES = ("average", "aligned", "subspace")
BLAS_ENVS = ("as-is", "autodetect")
PROJECTIONS = ("gate", "up", "down")


def load_average() -> str:
    return Path("/proc/loadavg").read_text().strip()


def child_env(setting: str, threads: int) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    if setting == "autodetect":
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    return env


def blas_core_of_moe_compress(binary: Path, model: Path, threads: int, env: dict) -> str | None:
    """openblas_get_corename() of moe-compress's OpenBLAS, from a tiny `eval --json`."""
    out = subprocess.run([str(binary), "eval", str(model), "--text", str(bench.DEFAULT_TEXT), "--seq-len", "16",
                          "--max-tokens", "32", "--threads", str(threads), "--json"],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        bench.log(f"warning: eval --json for the BLAS core failed: {out.stderr[-500:]}")
        return None
    return bench.last_json_object(out.stdout).get("blas_core")


def run_merge(binary: Path, model: Path, args, mode: str, env: dict, results_dir: Path, label: str) -> dict:
    output = args.work_dir / f"merged-benchmark-{mode}"
    shutil.rmtree(output, ignore_errors=True)
    cmd = [str(binary), "merge", str(model), "-o", str(output), "--experts", str(args.merged),
           "--similarity", args.similarity, "--cluster", args.cluster, "--router", args.router, "--fuse", mode,
           "--data", str(bench.DEFAULT_TEXT), "--seq-len", str(args.seq_len), "--samples", str(args.samples),
           "--sample-tokens", str(args.sample_tokens), "--threads", str(args.threads)]
    if mode == "subspace":
        cmd += ["--energy", str(args.energy)]
    if not args.no_warm_cache:
        bench.warm_page_cache(model)
    before = load_average()
    measured, stdout = bench.run_measured(cmd, results_dir, label, env)
    after = load_average()
    report = json.loads((output / "merge-report.json").read_text())
    (results_dir / f"{label}.merge-report.json").write_text(json.dumps(report, indent=2))
    output_bytes = sum(f.stat().st_size for f in output.glob("*.safetensors"))
    shutil.rmtree(output, ignore_errors=True)
    return {"seconds": measured["wall_seconds"], "user_seconds": measured["user_seconds"],
            "system_seconds": measured["system_seconds"], "peak_rss_gib": bench.gib(measured["maxrss_kib"]),
            "sampled_peak_rss_anon_gib": bench.gib(measured["sampled_peak_rss_anon_kib"]),
            "sampled_peak_rss_file_gib": bench.gib(measured["sampled_peak_rss_file_kib"]),
            "output_bytes": output_bytes, "load_before": before, "load_after": after,
            "command": cmd, "stdout": stdout.strip(), "report": report}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("/work/bench-work"))
    parser.add_argument("--experts", type=int, default=64, help="experts of the generated layer")
    parser.add_argument("--merged", type=int, default=None, help="merged experts per layer (default: 3/4 of --experts)")
    parser.add_argument("--fuse", default=",".join(FUSE_MODES))
    parser.add_argument("--energy", type=float, default=0.9, help="--energy of the subspace mode")
    parser.add_argument("--similarity", default="output")
    parser.add_argument("--cluster", default="hierarchical")
    parser.add_argument("--router", default="average")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--sample-tokens", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--blas-env", default=",".join(BLAS_ENVS),
                        help="as-is (OPENBLAS_* as the environment sets them) and/or autodetect (both unset)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each merge; the fastest is reported")
    parser.add_argument("--svd-repeats", type=int, default=3, help="numpy runs of the representative matrix")
    parser.add_argument("--no-transposed-svd", action="store_true",
                        help="skip numpy's second timing of each matrix, as the tall transpose M^T")
    parser.add_argument("--no-warm-cache", action="store_true")
    parser.add_argument("--binary")
    args = parser.parse_args()
    modes = [m for m in dict.fromkeys(args.fuse.split(",")) if m]
    settings = [s for s in dict.fromkeys(args.blas_env.split(",")) if s]
    if any(m not in FUSE_MODES for m in modes) or not modes:
        parser.error(f"--fuse takes a comma-separated list from {', '.join(FUSE_MODES)}")
    if any(s not in BLAS_ENVS for s in settings) or not settings:
        parser.error(f"--blas-env takes a comma-separated list from {', '.join(BLAS_ENVS)}")
    merged = args.merged or args.experts * 3 // 4

    args.work_dir = args.work_dir.resolve()
    model = bench.model_dir_for(args.work_dir, 1, args.experts)
    bench.generate_checkpoint(model, 1, args.experts, 5.0, 0, bench.DEFAULT_TOKENIZER, 256, False)
    args.merged = merged
    binary = bench.locate_binary(args.binary)
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    results_dir = args.work_dir / "results" / f"merge-{stamp}"
    results_dir.mkdir(parents=True, exist_ok=True)
    config = json.loads((model / "config.json").read_text())
    hidden, width = config["hidden_size"], config["intermediate_size"]
    layer_expert_bytes = args.experts * 3 * width * hidden * 2

    report = {"benchmark": "merge_benchmark",
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "cpu": bench.cpu_model(), "cpu_flags": bench.cpu_flags(), "cpu_count": os.cpu_count(),
              "threads": args.threads,
              "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                                     "OMP_NUM_THREADS")},
              "model": str(model), "layers": 1, "experts": args.experts, "merged_experts": merged,
              "hidden": hidden, "expert_width": width, "top_k": config["num_experts_per_tok"],
              "checkpoint_bytes": sum(f.stat().st_size for f in model.glob("*.safetensors")),
              "layer_expert_bytes_bf16": layer_expert_bytes,
              "recipe": {"similarity": args.similarity, "cluster": args.cluster, "router": args.router,
                         "energy": args.energy, "seq_len": args.seq_len, "samples": args.samples,
                         "sample_tokens": args.sample_tokens, "data": str(bench.DEFAULT_TEXT)},
              "repeats": args.repeats, "results_dir": str(results_dir), "settings": {}}

    for setting in settings:
        env = child_env(setting, args.threads)
        entry = {"openblas_coretype": env.get("OPENBLAS_CORETYPE"), "openblas_l2_size": env.get("OPENBLAS_L2_SIZE"),
                 "blas_core_moe_compress": blas_core_of_moe_compress(binary, model, args.threads, env), "merge": {}}
        for mode in modes:
            runs = [run_merge(binary, model, args, mode, env, results_dir, f"{setting}-{mode}-{i + 1}")
                    for i in range(args.repeats)]
            best = min(runs, key=lambda r: r["seconds"])
            best["all_seconds"] = [r["seconds"] for r in runs]
            best["all_peak_rss_gib"] = [r["peak_rss_gib"] for r in runs]
            entry["merge"][mode] = best
        clusters = entry["merge"].get("subspace", next(iter(entry["merge"].values())))["report"]["layers"]
        reports = [r["report"]["layers"] for r in entry["merge"].values()]
        entry["same_clusters_every_mode"] = all([l["clusters"] for l in r] == [l["clusters"] for l in clusters] for r in reports)
        if not entry["same_clusters_every_mode"]:
            bench.log(f"warning [{setting}]: the modes did not cluster alike; the time differences are not only fusing")
        base = entry["merge"].get("average")
        for mode, row in entry["merge"].items():
            row["extra_seconds_over_average"] = None if base is None else row["seconds"] - base["seconds"]
            row["peak_rss_over_layer_experts"] = row["peak_rss_gib"] * bench.GIB / layer_expert_bytes

        if "subspace" in entry["merge"]:
            report_file = results_dir / f"{setting}-subspace-layers.json"
            report_file.write_text(json.dumps(entry["merge"]["subspace"]["report"]))
            out_file = results_dir / f"{setting}-numpy-svd.json"
            before = load_average()
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "_numpy_svd", "--model", str(model),
                            "--report", str(report_file), "--threads", str(args.threads), "--energy", str(args.energy),
                            "--repeats", str(args.svd_repeats), "--out", str(out_file)]
                           + (["--no-transposed"] if args.no_transposed_svd else []), env=env, check=True)
            numpy_result = json.loads(out_file.read_text())
            numpy_result["load_before"], numpy_result["load_after"] = before, load_average()
            entry["numpy_svd"] = numpy_result
            if base is not None:
                estimate = entry["merge"]["subspace"]["seconds"] - base["seconds"]
                entry["svd_comparison"] = {
                    "moe_compress_estimated_seconds": estimate,
                    "numpy_svd_seconds": numpy_result["svd_seconds"],
                    "numpy_subspace_work_seconds": numpy_result["total_seconds"],
                    "ratio_moe_compress_over_numpy_svd": bench.ratio(estimate, numpy_result["svd_seconds"]),
                    "ratio_moe_compress_over_numpy_subspace_work": bench.ratio(estimate, numpy_result["total_seconds"]),
                    "numpy_svd_transposed_seconds": numpy_result.get("svd_transposed_seconds"),
                    "ratio_moe_compress_over_numpy_svd_transposed": bench.ratio(estimate, numpy_result.get("svd_transposed_seconds"))}
        report["settings"][setting] = entry

    path = args.work_dir / "results" / f"merge-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    print_table(report)
    slim = json.loads(json.dumps(report))
    for entry in slim["settings"].values():
        for row in entry["merge"].values():
            row.pop("report", None)  # in the saved file and the results folder; too long for stdout
    print(json.dumps(slim))


def print_table(report: dict) -> None:
    print(f"\n{report['cpu']} ({', '.join(report['cpu_flags'])}), {report['cpu_count']} CPUs, {report['threads']} threads; "
          f"one layer of {report['experts']} experts (hidden {report['hidden']}, width {report['expert_width']}): "
          f"{report['layer_expert_bytes_bf16'] / 1e6:.0f} MB of expert weights in bf16, "
          f"checkpoint {report['checkpoint_bytes'] / 1e9:.2f} GB; merged to {report['merged_experts']}")
    for setting, entry in report["settings"].items():
        print(f"\nBLAS {setting}: OPENBLAS_CORETYPE={entry['openblas_coretype']} OPENBLAS_L2_SIZE={entry['openblas_l2_size']}; "
              f"moe-compress openblas core {entry['blas_core_moe_compress']}"
              + (f", numpy's {entry['numpy_svd']['openblas_core']} ({entry['numpy_svd']['openblas_config']})" if "numpy_svd" in entry else ""))
        header = f"{'fuse':<10} {'wall s':>8} {'extra s':>8} {'user s':>8} {'sys s':>7} {'peak RSS GiB':>13} {'anon GiB':>9} {'x layer':>8}  load before -> after"
        print(header)
        print("-" * len(header))
        for mode, row in entry["merge"].items():
            extra = row["extra_seconds_over_average"]
            print(f"{mode:<10} {row['seconds']:8.1f} {bench.fmt(extra, '8.1f')} {row['user_seconds']:8.1f} {row['system_seconds']:7.1f} "
                  f"{row['peak_rss_gib']:13.2f} {row['sampled_peak_rss_anon_gib']:9.2f} {row['peak_rss_over_layer_experts']:8.2f}  "
                  f"{' '.join(row['load_before'].split()[:3])} -> {' '.join(row['load_after'].split()[:3])}")
        sizes = [len(c) for l in next(iter(entry["merge"].values()))["report"]["layers"] for c in l["clusters"]]
        print(f"clusters: {len(sizes)}, multi-member sizes {sorted((s for s in sizes if s > 1), reverse=True)}; "
              f"same clusters in every mode: {entry['same_clusters_every_mode']}")
        if "numpy_svd" in entry:
            n = entry["numpy_svd"]
            print(f"numpy on the same {len(n['matrices'])} matrices: SVD {n['svd_seconds']:.1f} s "
                  + (f"(of the transposes: {n['svd_transposed_seconds']:.1f} s)" if n.get("svd_transposed_seconds") is not None else "")
                  + f", concatenation "
                  f"{n['concatenate_seconds']:.1f} s, rebuild {n['rebuild_seconds']:.1f} s (total {n['total_seconds']:.1f} s), "
                  f"peak RSS {n['peak_rss_gib']:.2f} GiB; ranks agree with merge-report.json: {n['ranks_agree']} "
                  f"(largest energy difference {n['max_energy_difference']:.2e})")
            for m in n["matrices"]:
                print(f"  cluster {m['cluster']:>3} ({m['members']:>2} members) {m['projection']:<4} {m['shape'][0]:>5} x {m['shape'][1]:<6} "
                      f"svd {m['svd_seconds']:7.2f} s (of M^T {bench.fmt(m.get('svd_transposed_seconds'), '6.2f')} s)  rank {m['rank']:>5} / {m['full_rank']:<5} (report {m['report_rank']})")
            r = n["representative"]
            if r:
                print(f"representative {r['description']}: numpy svd {min(r['seconds']):.2f} s "
                      f"(runs: {', '.join(f'{s:.2f}' for s in r['seconds'])})")
            c = entry.get("svd_comparison")
            if c:
                print(f"moe-compress SVD time, estimated as subspace - average wall time: {c['moe_compress_estimated_seconds']:.1f} s "
                      f"= x{bench.fmt(c['ratio_moe_compress_over_numpy_svd'], '.2f')} numpy's SVDs, "
                      f"x{bench.fmt(c['ratio_moe_compress_over_numpy_subspace_work'], '.2f')} numpy's concatenation + SVD + rebuild, "
                      f"x{bench.fmt(c.get('ratio_moe_compress_over_numpy_svd_transposed'), '.2f')} numpy's SVDs of the transposes")
    print()


# --------------------------------------------------------------------------------------------
# The numpy worker (a fresh process, so that the OPENBLAS_* variables of its environment apply)
# --------------------------------------------------------------------------------------------

def numpy_openblas():
    """numpy's bundled OpenBLAS (scipy-openblas) through ctypes, or None."""
    import numpy as np
    for pattern in ("numpy.libs/libscipy_openblas*.so*", "numpy.libs/libopenblas*.so*", "numpy/.libs/libopenblas*.so*"):
        for path in glob.glob(str(Path(np.__file__).resolve().parent.parent / pattern)):
            try:
                return ctypes.CDLL(path)
            except OSError:
                continue
    return None


def openblas_call(lib, names, restype=ctypes.c_int, *argv):
    for name in names:
        fn = getattr(lib, name, None) if lib is not None else None
        if fn is not None:
            fn.restype = restype
            return fn(*argv)
    return None


class Safetensors:
    """Reads bf16 tensors of a safetensors checkpoint as float64 numpy arrays."""

    def __init__(self, model: Path):
        self.entries = {}
        for shard in sorted(model.glob("*.safetensors")):
            with open(shard, "rb") as f:
                length = struct.unpack("<Q", f.read(8))[0]
                header = json.loads(f.read(length))
            for name, info in header.items():
                if name != "__metadata__":
                    self.entries[name] = (shard, 8 + length, info)

    def float64(self, name: str):
        import numpy as np
        shard, base, info = self.entries[name]
        if info["dtype"] != "BF16":
            raise SystemExit(f"{name}: {info['dtype']}, expected BF16")
        start, end = info["data_offsets"]
        raw = np.fromfile(shard, dtype=np.uint16, count=(end - start) // 2, offset=base + start)
        return (raw.astype(np.uint32) << 16).view(np.float32).astype(np.float64).reshape(info["shape"])


def rank_retaining(s, fraction: float) -> int:
    """moe-compress's rule: the fewest directions whose squared singular values hold `fraction`."""
    import numpy as np
    cumulative = np.cumsum(s.astype(np.float64) ** 2)
    total = cumulative[-1]
    if fraction <= 0 or total <= 0:
        return 0
    return int(np.argmax(cumulative / total >= fraction)) + 1 if (cumulative / total >= fraction).any() else len(s)


def numpy_svd_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="_numpy_svd")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--energy", type=float, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-transposed", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    import numpy as np

    lib = numpy_openblas()
    openblas_call(lib, ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads"),
                  None, ctypes.c_int(args.threads))
    core = openblas_call(lib, ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"), ctypes.c_char_p)
    config = openblas_call(lib, ("scipy_openblas_get_config64_", "openblas_get_config64_", "openblas_get_config"), ctypes.c_char_p)
    threads = openblas_call(lib, ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"))

    report = json.loads(args.report.read_text())
    tensors = Safetensors(args.model)
    names = {"gate": "gate_proj", "up": "up_proj", "down": "down_proj"}
    matrices, representative_members = [], None
    concatenate_total = svd_total = rebuild_total = transposed_total = 0.0
    transpose = not args.no_transposed
    for layer in report["layers"]:
        usage = layer["usage"]
        for index, members in enumerate(layer["clusters"]):
            if len(members) < 2:
                continue
            if representative_members is None and len(members) == 2:
                representative_members = (layer["layer"], members)
            total_usage = sum(usage[m] for m in members)
            weights = [usage[m] / total_usage if total_usage > 0 else 1 / len(members) for m in members]
            for projection in PROJECTIONS:
                started = time.perf_counter()
                parts = [tensors.float64(f"model.layers.{layer['layer']}.mlp.experts.{m}.{names[projection]}.weight") for m in members]
                rows, columns = parts[0].shape
                m = np.concatenate(parts, axis=1)  # [W_1 | ... | W_n]
                del parts
                concatenate = time.perf_counter() - started
                started = time.perf_counter()
                u, s, vt = np.linalg.svd(m, full_matrices=False)
                svd = time.perf_counter() - started
                transposed = None
                if transpose:
                    # The same decomposition of the tall M^T (gesdd's QR path instead of its LQ path),
                    # which is how moe-compress hands the row-major M to dgesdd.
                    started = time.perf_counter()
                    np.linalg.svd(m.T, full_matrices=False)
                    transposed = time.perf_counter() - started
                    transposed_total += transposed
                del m
                rank = max(1, rank_retaining(s, args.energy))
                energies = s ** 2
                retained = float(energies[:rank].sum() / energies.sum())
                started = time.perf_counter()
                factor = sum(w * vt[:rank, i * columns:(i + 1) * columns] for i, w in enumerate(weights))
                merged = (u[:, :rank] * s[:rank]) @ factor
                rebuild = time.perf_counter() - started
                del u, vt, factor, merged
                kept = (layer.get("subspace") or {}).get(str(index), {}).get(projection, {})
                matrices.append({"layer": layer["layer"], "cluster": index, "members": len(members), "projection": projection,
                                 "shape": [rows, columns * len(members)], "concatenate_seconds": concatenate,
                                 "svd_seconds": svd, "svd_transposed_seconds": transposed, "rebuild_seconds": rebuild, "rank": rank, "full_rank": len(s),
                                 "retained_energy": retained, "report_rank": kept.get("rank"),
                                 "report_full_rank": kept.get("full_rank"), "report_retained_energy": kept.get("retained_energy")})
                concatenate_total += concatenate
                svd_total += svd
                rebuild_total += rebuild
                print(f"numpy: cluster {index} ({len(members)} members) {projection} {rows} x {columns * len(members)}: "
                      f"svd {svd:.2f} s" + (f" (of M^T {transposed:.2f} s)" if transposed is not None else "")
                      + f", rank {rank} (report {kept.get('rank')})", file=sys.stderr, flush=True)

    representative = None
    if representative_members is not None:
        layer, members = representative_members
        parts = [tensors.float64(f"model.layers.{layer}.mlp.experts.{m}.gate_proj.weight") for m in members]
        m = np.concatenate(parts, axis=1)
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            np.linalg.svd(m, full_matrices=False)
            seconds.append(time.perf_counter() - started)
        representative = {"description": f"layer {layer} experts {members} gate concatenation {m.shape[0]} x {m.shape[1]}",
                          "shape": list(m.shape), "seconds": seconds}
    agree = all(x["rank"] == x["report_rank"] for x in matrices)
    differences = [abs(x["retained_energy"] - x["report_retained_energy"]) for x in matrices if x["report_retained_energy"] is not None]
    args.out.write_text(json.dumps({
        "numpy_version": np.__version__, "openblas_core": core.decode() if core else None,
        "openblas_config": config.decode().strip() if config else None, "openblas_threads": threads,
        "matrices": matrices, "concatenate_seconds": concatenate_total, "svd_seconds": svd_total,
        "rebuild_seconds": rebuild_total, "total_seconds": concatenate_total + svd_total + rebuild_total,
        "svd_transposed_seconds": transposed_total if transpose else None,
        "representative": representative, "ranks_agree": agree,
        "max_energy_difference": max(differences) if differences else None,
        "peak_rss_gib": bench.gib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_numpy_svd":
        numpy_svd_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "_measure":
        bench.measure_main(sys.argv[2:])
    else:
        main()
