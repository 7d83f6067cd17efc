#!/usr/bin/env python3
"""Regenerates docs/pruning.md: held-out perplexity of the trained default model after pruning 25%
and 50% of its experts with every method, beside the unpruned model.

Run from the repository root (standard library only; builds the release binary if needed):
    python3 scripts/pruning_quality.py

Calibration: one statistics file from Fixtures/text/calibration.txt (CALIBRATION below); every
method prunes from the same file. Evaluation: Fixtures/text/heldout.txt (EVAL below), measured by
moe-compress's own forward pass, which agrees with transformers (tests).
"""
import datetime
import json
import platform
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODEL = "Fixtures/default-model"
CALIBRATION = ["--data", "Fixtures/text/calibration.txt", "--seq-len", "128", "--samples", "256", "--seed", "42"]
EVAL = ["--eval", "Fixtures/text/heldout.txt", "--eval-seq-len", "128", "--eval-max-tokens", "4096"]
METHODS = ["frequency", "soft", "ean", "reap", "easy-ep", "tcess", "enumerate"]
# Score methods also run with --budget global (the same total, ranked across layers), and the best
# score method with DERN's recombination.
GLOBAL = ["soft", "ean", "reap", "easy-ep", "tcess"]
RECOMBINE = ["reap", "easy-ep"]
VARIANTS = METHODS + [f"{m} global" for m in GLOBAL] + [f"{m} recombine" for m in RECOMBINE]
VARIANT_ARGUMENTS = {"global": ["--budget", "global"], "recombine": ["--recombine"]}
RATIOS = [0.25, 0.5]


def read_statistics(path):
    """The F64 arrays of a statistics file (safetensors: 8-byte header length, JSON header, data)."""
    data = Path(path).read_bytes()
    length = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + length])
    arrays = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        arrays[name] = struct.unpack(f"<{(end - begin) // 8}d", data[8 + length + begin:8 + length + end])
    return arrays


def kept_selection_share(statistics, kept_per_layer):
    """Share of the calibration tokens' top-k selections whose expert survives, over all layers."""
    kept_counts = total = 0
    for layer, kept in enumerate(kept_per_layer):
        counts = statistics[f"layers.{layer}.counts"]
        kept_counts += sum(counts[j] for j in kept)
        total += sum(counts)
    return kept_counts / total


def run(arguments):
    return subprocess.run(arguments, cwd=REPO, check=True, capture_output=True, text=True).stdout


def cpu_description():
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), [])
    wide = [flag for flag in ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    return f"{model} ({', '.join(wide)})"


def main():
    run(["swift", "build", "-c", "release", "--product", "moe-compress"])
    binary = run(["swift", "build", "-c", "release", "--show-bin-path"]).strip() + "/moe-compress"
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        stats = f"{work}/stats.safetensors"
        run([binary, "calibrate", MODEL, "-o", stats] + CALIBRATION)
        statistics = read_statistics(stats)
        baseline = None
        for method in VARIANTS:
            for ratio in RATIOS:
                name, *variant = method.split()
                output = f"{work}/{name}-{'-'.join(variant)}-{ratio}"
                run([binary, "prune", MODEL, "-o", output, "--ratio", str(ratio), "--method", name, "--stats", stats]
                    + sum((VARIANT_ARGUMENTS[v] for v in variant), []) + EVAL)
                report = json.loads(Path(output, "prune-report.json").read_text())
                baseline = report["perplexity"]["before"]
                kept = [layer["kept"] for layer in report["plan"]["layers"]]
                rows[(method, ratio)] = (report["perplexity"]["after"], kept, kept_selection_share(statistics, kept))
                print(f"{method} {ratio}: {rows[(method, ratio)][0]:.4f}", file=sys.stderr)

    ALL = VARIANTS
    best = {ratio: min(ALL, key=lambda m: rows[(m, ratio)][0]) for ratio in RATIOS}
    lines = [
        "# Pruning quality on the trained default model",
        "",
        "Regenerate with `python3 scripts/pruning_quality.py` (this file is its output).",
        "",
        f"Model `{MODEL}` (Mixtral layout, 4 layers × 8 experts, top-2). Calibration: "
        f"`moe-compress calibrate {MODEL} {' '.join(CALIBRATION)}`; every method prunes from that one statistics file "
        f"with `moe-compress prune {MODEL} -o OUT --ratio R --method M --stats STATS {' '.join(EVAL)}`. "
        "Perplexity is measured by moe-compress's forward pass on held-out text (4096 tokens, windows of 128).",
        "",
        f"Measured {datetime.date.today().isoformat()} on {cpu_description()}.",
        "",
        "Perplexity (lower is better; best in bold) and, in parentheses, the share of the calibration tokens' "
        "top-k selections whose expert survives (the rest are re-routed to the next-best kept expert):",
        "",
        "| method | 25% of experts dropped (6 kept per layer, or 24 in all) | 50% dropped (4, or 16 in all) |",
        "|---|---|---|",
        f"| unpruned | {baseline:.4f} | {baseline:.4f} |",
    ]
    for method in ALL:
        cells = []
        for r in RATIOS:
            value = f"{rows[(method, r)][0]:.4f}"
            cells.append((f"**{value}**" if best[r] == method else value) + f" ({100 * rows[(method, r)][2]:.0f}%)")
        name, *variant = method.split()
        label = " ".join([f"`{name}`"] + [" ".join(VARIANT_ARGUMENTS[v]) for v in variant])
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    lines += ["", "Kept experts per layer (original ids):", "", "| method | ratio | layer 0 | layer 1 | layer 2 | layer 3 |", "|---|---|---|---|---|---|"]
    for method in ALL:
        for ratio in RATIOS:
            kept = rows[(method, ratio)][1]
            lines.append(f"| `{method}` | {ratio} | " + " | ".join(",".join(map(str, k)) for k in kept) + " |")
    lines += ["", Path(REPO, "docs", "pruning-notes.md").read_text().strip()] if Path(REPO, "docs", "pruning-notes.md").exists() else []
    Path(REPO, "docs", "pruning.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
