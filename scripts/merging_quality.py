#!/usr/bin/env python3
"""Regenerates docs/merging.md: held-out perplexity of the trained default model after merging its
experts down by 25% and 50% with HC-SMoE's, M-SMoE's and Sub-MoE's defaults under each router
rule, prune-then-merge, and the pruning methods at the same reduction.

Run from the repository root (standard library only; builds the release binary if needed):
    python3 scripts/merging_quality.py

Calibration: one statistics file from Fixtures/text/calibration.txt (CALIBRATION below); every
merge draws the same windows again from it (--stats) and every prune ranks from it. Evaluation:
Fixtures/text/heldout.txt (EVAL below), measured by moe-compress's own forward pass, which agrees
with transformers (tests).
"""
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pruning_quality import MODEL, CALIBRATION, EVAL, cpu_description  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RATIOS = [0.25, 0.5]
# Each paper's published choices, as moe-compress's options.
RECIPES = {
    "HC-SMoE": ["--similarity", "output", "--cluster", "hierarchical", "--linkage", "average", "--fuse", "average"],
    "M-SMoE": ["--similarity", "router-logits", "--cluster", "dominant", "--fuse", "aligned"],
    "Sub-MoE": ["--similarity", "output", "--cluster", "kmeans", "--fuse", "subspace", "--energy", "0.9"],
    "HC-SMoE clusters, aligned fusing": ["--similarity", "output", "--cluster", "hierarchical", "--linkage", "average", "--fuse", "aligned"],
}
ROUTERS = ["dominant", "average", "fit"]
PRUNING = ["frequency", "reap", "enumerate"]


def run(arguments):
    return subprocess.run(arguments, cwd=REPO, check=True, capture_output=True, text=True).stdout


def merged_count(ratio, experts=8):
    return experts - int(experts * ratio)


def main():
    run(["swift", "build", "-c", "release", "--product", "moe-compress"])
    binary = run(["swift", "build", "-c", "release", "--show-bin-path"]).strip() + "/moe-compress"
    results, clusters = {}, {}
    with tempfile.TemporaryDirectory() as work:
        stats = f"{work}/stats.safetensors"
        run([binary, "calibrate", MODEL, "-o", stats] + CALIBRATION)
        baseline = None
        for ratio in RATIOS:
            k = merged_count(ratio)
            runs = [(f"{name} · router {router}", ["merge", "--experts", str(k)] + arguments + ["--router", router])
                    for name, arguments in RECIPES.items() for router in ROUTERS]
            # Prune half the reduction with REAP, merge the rest with the command's defaults.
            prune_to = 8 - (8 - k) // 2
            runs.append(("prune-then-merge: REAP prunes half the reduction (to 7 or 6), `merge` defaults the rest", ["merge", "--experts", str(k), "--prune-to", str(prune_to)]))
            runs.append(("`merge` defaults", ["merge", "--experts", str(k)]))
            runs += [(f"prune `{method}`", ["prune", "--keep", str(k), "--method", method]) for method in PRUNING]
            for label, arguments in runs:
                output = f"{work}/out"
                run([binary, arguments[0], MODEL, "-o", output, "--stats", stats, "--force"] + arguments[1:] + EVAL)
                report_name = "merge-report.json" if arguments[0] == "merge" else "prune-report.json"
                report = json.loads(Path(output, report_name).read_text())
                baseline = report["perplexity"]["before"]
                results[(label, ratio)] = report["perplexity"]["after"]
                if arguments[0] == "merge":
                    clusters[(label, ratio)] = [layer["clusters"] for layer in report["layers"]]
                print(f"{label} {ratio}: {results[(label, ratio)]:.4f}", file=sys.stderr)

    labels = list(dict.fromkeys(label for label, _ in results))
    best = {ratio: min((l for l in labels if (l, ratio) in results), key=lambda l: results[(l, ratio)]) for ratio in RATIOS}
    best_merge = {ratio: min((l for l in labels if (l, ratio) in clusters), key=lambda l: results[(l, ratio)]) for ratio in RATIOS}
    lines = [
        "# Merging quality on the trained default model",
        "",
        "Regenerate with `python3 scripts/merging_quality.py` (this file is its output, with docs/merging-notes.md appended).",
        "",
        f"Model `{MODEL}` (Mixtral layout, 4 layers × 8 experts, top-2). Calibration: "
        f"`moe-compress calibrate {MODEL} {' '.join(CALIBRATION)}`; every merge runs "
        f"`moe-compress merge {MODEL} -o OUT --experts K --stats STATS … {' '.join(EVAL)}` (the statistics' windows drawn again "
        "for the similarity sample and the router fit, 2048 tokens per layer) and every prune "
        f"`moe-compress prune {MODEL} -o OUT --keep K --method M --stats STATS {' '.join(EVAL)}`. "
        "Perplexity is measured by moe-compress's forward pass on held-out text (4096 tokens, windows of 128).",
        "",
        f"Measured {datetime.date.today().isoformat()} on {cpu_description()}.",
        "",
        "Recipes: " + "; ".join(f"**{name}**: `{' '.join(arguments)}`" for name, arguments in RECIPES.items()) + ".",
        "",
        "Perplexity (lower is better; best overall in bold, best merge in italics):",
        "",
        "| variant | 25% fewer experts (6 per layer) | 50% fewer (4 per layer) |",
        "|---|---|---|",
        f"| original (8 experts) | {baseline:.4f} | {baseline:.4f} |",
    ]
    for label in labels:
        cells = []
        for ratio in RATIOS:
            value = f"{results[(label, ratio)]:.4f}"
            if best[ratio] == label:
                value = f"**{value}**"
            elif best_merge[ratio] == label:
                value = f"*{value}*"
            cells.append(value)
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    lines += ["", "Clusters per layer (original expert ids) of each merge:", "",
              "| variant | reduction | layer 0 | layer 1 | layer 2 | layer 3 |", "|---|---|---|---|---|---|"]
    for (label, ratio), layers in clusters.items():
        lines.append(f"| {label} | {int(ratio * 100)}% | " + " | ".join(" ".join("{" + ",".join(map(str, c)) + "}" for c in layer) for layer in layers) + " |")
    notes = Path(REPO, "docs", "merging-notes.md")
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    Path(REPO, "docs", "merging.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
