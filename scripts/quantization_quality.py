#!/usr/bin/env python3
"""Regenerates docs/quantization.md: the trained default model as GGUF files from llama-quantize
(its k-quant mixes, without and with llama.cpp's imatrix) and from `moe-compress quantize`
(uniform weighted rounding, --bits budgets, and --bits equal to each llama-quantize mix's size),
all judged by llama.cpp's llama-perplexity on held-out text, beside moe-compress's own `eval` on
the same files.

Run from the repository root, with the Python of Fixtures/scripts/setup_llama_cpp.sh (its venv has
llama-cpp-python 0.3.36 and numpy; the llama.cpp tools are in $LLAMA_CPP_DIR/bin):
    /work/venv/bin/python scripts/quantization_quality.py [--work DIR] [--chunks N] [--model DIR] [--fresh]

Every intermediate file (GGUFs, the imatrix, logs, each measurement as JSON) is cached in
--work DIR (default /tmp/moe-quant-quality) under a key of the model's bytes, the moe-compress
binary's bytes and these settings, so a rerun after a crash or an edit of the page is quick and a
new model or binary starts afresh.

Rows: the F32 GGUF (written by `moe-compress quantize --types F32`: exact for the bf16 checkpoint,
the baseline, and the input every llama-quantize run gets, so all files carry the same tokenizer
metadata); an F16 conversion; llama-quantize mixes (MIXES) without and with
`--imatrix` from `llama-imatrix` on the calibration text; `moe-compress quantize --types T
--data calibration` (UNIFORM), beside `llama-quantize --pure T` (+ imatrix) at the same bytes;
`--bits B` (BITS); `--bits` equal to each mix's bits/weight, with the default error measure
(`--measure kl`) and with `--measure output`.

Measures per file: bits/weight as llama.cpp counts them (tensor data bytes × 8 / all weights, as
llama_model_loader prints BPW), the file's bytes, llama-perplexity's perplexity (-c CTX, the first
--chunks chunks; it scores the second half of each chunk) with its KL divergence and same-top-token
share against the F32 file's logits (--kl-divergence-base), and `moe-compress eval --seq-len CTX`
on the same text prefix (every token of each window scored). The two tools score different tokens,
so a third number checks them against each other exactly: llama.cpp (through llama-cpp-python,
the same libllama) on moe-compress's own windows, which must agree with moe-compress's figure to
float rounding (and llama.cpp's 8-bit activations in quantized matrix products).
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pruning_quality import cpu_description  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODEL = "Fixtures/default-model"
HELDOUT = "Fixtures/text/heldout.txt"
CALIBRATION_TEXT = "Fixtures/text/calibration.txt"
CTX = 256                      # ≤ the model's 512 positions; a multiple of 256 (llama.cpp pads n_ctx to 256)
MIXES = ["Q5_K_M", "Q4_K_M", "Q4_K_S", "Q3_K_M", "Q2_K", "IQ2_XS", "IQ2_XXS"]
# Mixes llama-quantize writes only with an imatrix (its IQ2 types need one).
IMATRIX_ONLY_MIXES = {"IQ2_XS", "IQ2_XXS"}
UNIFORM = ["Q4_K", "Q3_K", "Q2_K"]
BITS = [4.5, 3.5, 2.75, 2.25]
# The importance pass of both tools sees the whole calibration text in windows of CTX.
IMATRIX_ARGS = ["-c", str(CTX), "--no-ppl", "--output-format", "gguf"]
MOE_DATA_ARGS = ["--data", CALIBRATION_TEXT, "--seq-len", str(CTX)]

# ggml type id → (name, weights per block, bytes per block) for the types either tool writes.
GGML_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 30: ("BF16", 1, 2),
}

START = time.monotonic()


def say(message):
    elapsed = int(time.monotonic() - START)
    print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


def run(arguments, log=None, env=None):
    """Runs a command from the repository root; its stdout and stderr go to `log` (and are returned)."""
    result = subprocess.run([str(a) for a in arguments], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    output = result.stdout + result.stderr
    if log:
        Path(log).write_text(" ".join(map(str, arguments)) + "\n\n" + output)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, arguments))} failed ({result.returncode}):\n{output[-3000:]}")
    return result.stdout, output


# ---------------------------------------------------------------------------------------------
# GGUF header (standard library): tensor types, shapes and sizes.

def read_gguf_tensors(path):
    """[(name, ggml type name, weights, data bytes)] of a GGUF file, from its header."""
    with open(path, "rb") as f:
        data = f.read(1 << 22)
    position = 0

    def take(fmt):
        nonlocal position
        values = struct.unpack_from("<" + fmt, data, position)
        position += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string():
        nonlocal position
        length = take("Q")
        position += length
        return data[position - length:position].decode("utf-8", "replace")

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(kind):
        if kind == 8:
            return string()
        if kind == 9:
            item, count = take("I"), take("Q")
            return [value(item) for _ in range(count)]
        return take(scalar[kind])

    if data[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    position = 4
    _version, tensor_count, kv_count = take("I"), take("Q"), take("Q")
    for _ in range(kv_count):
        string()
        value(take("I"))
    tensors = []
    for _ in range(tensor_count):
        name = string()
        dimensions = [take("Q") for _ in range(take("I"))]
        kind, _offset = take("I"), take("Q")
        if kind not in GGML_TYPES:
            raise ValueError(f"{path}: tensor {name} has ggml type {kind}, not in GGML_TYPES")
        type_name, block, block_bytes = GGML_TYPES[kind]
        weights = math.prod(dimensions)
        tensors.append((name, type_name, weights, weights // block * block_bytes))
    return tensors


def size_of(path):
    tensors = read_gguf_tensors(path)
    weights = sum(t[2] for t in tensors)
    data_bytes = sum(t[3] for t in tensors)
    shares = {}
    for _, type_name, count, _ in tensors:
        shares[type_name] = shares.get(type_name, 0) + count
    return {"bpw": data_bytes * 8 / weights, "data_bytes": data_bytes, "file_bytes": Path(path).stat().st_size,
            "weights": weights, "types": {k: v / weights for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}}


# ---------------------------------------------------------------------------------------------
# llama.cpp

def llama_dir():
    return Path(os.environ.get("LLAMA_CPP_DIR", "/work/llama-cpp"))


def tool(name):
    path = llama_dir() / "bin" / name
    if not os.access(path, os.X_OK):
        sys.exit(f"{path}: missing; run Fixtures/scripts/setup_llama_cpp.sh (or set LLAMA_CPP_DIR)")
    return path


def llama_commit():
    info = llama_dir() / "BUILD_INFO.txt"
    text = info.read_text() if info.exists() else ""
    match = re.search(r"llama\.cpp commit ([0-9a-f]+)", text)
    return match.group(1) if match else "unknown"


def parse_float(pattern, text, what):
    match = re.search(pattern, text)
    if not match:
        raise RuntimeError(f"no {what} in llama-perplexity's output")
    return float(match.group(1)), float(match.group(2))


def llama_perplexity(arguments, log, patterns, attempts=4):
    """Runs llama-perplexity and parses each (name, regex) of `patterns` from its output. llama.cpp's
    logger is a thread whose queue is not flushed at exit (common/log.cpp, common_log_main: "logs
    may be lost"), so the last lines (the summary) are sometimes missing: it is then run again."""
    for attempt in range(attempts):
        _, output = run([tool("llama-perplexity")] + arguments, log=log)
        if all(re.search(pattern, output) for _, pattern in patterns):
            return {name: parse_float(pattern, output, name) for name, pattern in patterns}
        say(f"  llama-perplexity's output lacks its summary (lost log lines); attempt {attempt + 2} of {attempts}")
    raise RuntimeError(f"llama-perplexity {' '.join(map(str, arguments))}: no summary in {attempts} runs; see {log}")


FINAL = ("final", r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)")
KL_PATTERNS = [("ppl", r"Mean PPL\(Q\)\s*:\s*([0-9.]+) ± +([0-9.]+)"), ("kld", r"Mean +KLD:\s*([0-9.]+) ± +([0-9.]+)"),
               ("same_top", r"Same top p:\s*([0-9.]+) ± +([0-9.]+)")]


def threads():
    return str(os.cpu_count() or 1)


# ---------------------------------------------------------------------------------------------
# The exact cross-check: llama.cpp on moe-compress eval's windows.

def llama_on_moe_windows(path, windows):
    """Perplexity by llama.cpp (llama-cpp-python) over moe-compress eval's windows of the held-out
    text (CTX+1 ids stepping CTX, each id after a window's first predicted once), or None without
    the binding."""
    try:
        import numpy as np
        import llama_cpp
    except ImportError:
        return None
    llm = llama_cpp.Llama(str(REPO / path) if not os.path.isabs(path) else path, n_ctx=2 * CTX, n_batch=CTX + 1,
                          n_ubatch=CTX + 1, logits_all=True, verbose=False, n_threads=int(threads()))
    text = (REPO / HELDOUT).read_text()
    ids = llm.tokenize(text.encode(), add_bos=True, special=False)[:windows * CTX + 1]
    nll, count = 0.0, 0
    for start in range(0, len(ids) - 1, CTX):
        window = ids[start:start + CTX + 1]
        llm.reset()
        llm.eval(window[:-1])
        logits = np.asarray(llm.scores[:len(window) - 1], dtype=np.float64)
        top = logits.max(axis=1, keepdims=True)
        log_z = (top[:, 0] + np.log(np.exp(logits - top).sum(axis=1)))
        targets = np.asarray(window[1:])
        nll += float((log_z - logits[np.arange(len(targets)), targets]).sum())
        count += len(targets)
    del llm
    return math.exp(nll / count)


# ---------------------------------------------------------------------------------------------

def sha256_of(paths):
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(Path(path).name).encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def versions(binary):
    swift = run(["swift", "--version"])[1].strip().splitlines()[0]
    commit = run(["git", "rev-parse", "--short", "HEAD"])[0].strip()
    dirty = run(["git", "status", "--porcelain", "--untracked-files=no", "Sources"])[0].strip()
    try:
        import llama_cpp
        binding = f"llama-cpp-python {llama_cpp.__version__}"
    except ImportError:
        binding = "llama-cpp-python not importable (no cross-check column)"
    return {"swift": swift, "moe_compress": commit + ("+uncommitted Sources changes" if dirty else ""),
            "llama_cpp": llama_commit(), "binding": binding, "python": platform.python_version()}


def model_summary():
    config = json.loads((REPO / MODEL / "config.json").read_text())
    return (f"{config['model_type']}, hidden {config['hidden_size']}, {config['num_hidden_layers']} layers × "
            f"{config.get('num_local_experts', config.get('num_experts'))} experts (top-{config['num_experts_per_tok']}), "
            f"expert width {config.get('moe_intermediate_size', config['intermediate_size'])}, vocabulary {config['vocab_size']}")


def main():
    global MODEL
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/moe-quant-quality", help="cache directory (default %(default)s)")
    parser.add_argument("--chunks", type=int, default=64,
                        help=f"llama-perplexity chunks of {CTX} (and moe-compress eval windows) of the held-out text (default %(default)s)")
    parser.add_argument("--check-windows", type=int, default=8,
                        help="windows of the exact cross-check, llama.cpp on moe-compress eval's windows (default %(default)s)")
    parser.add_argument("--model", default=MODEL, help="checkpoint directory (default %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="discard this key's cached files first")
    parser.add_argument("--no-doc", action="store_true", help="print the table, do not write docs/quantization.md")
    args = parser.parse_args()
    MODEL = args.model

    say("building moe-compress (release)")
    run(["swift", "build", "-c", "release", "--product", "moe-compress"])
    binary = Path(run(["swift", "build", "-c", "release", "--show-bin-path"])[0].strip()) / "moe-compress"
    model_files = sorted(p for p in (REPO / MODEL).iterdir() if p.is_file())
    settings = json.dumps([CTX, args.chunks, args.check_windows, MIXES, UNIFORM, BITS, IMATRIX_ARGS, MOE_DATA_ARGS, llama_commit()])
    key = hashlib.sha256((sha256_of(model_files) + sha256_of([binary]) + settings).encode()).hexdigest()[:12]
    work = Path(args.work) / key
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    from_scratch = not any(work.iterdir())
    say(f"model {MODEL}: {model_summary()}; work directory {work}")
    info = versions(binary)

    def cached_json(name, compute):
        path = work / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
        value = compute()
        path.write_text(json.dumps(value, indent=1))
        return value

    def make(path, build):
        """Builds `path` unless it is already there (written to a temporary name, then renamed)."""
        if path.exists():
            return
        partial = path.with_name(path.stem + ".partial" + path.suffix)
        partial.unlink(missing_ok=True)
        build(partial)
        partial.rename(path)

    # 1. The F32 baseline (also llama-quantize's input) and an F16 conversion.
    rows = []  # dicts: label, group, path, command
    fp = work / "f32.gguf"
    for type_name in ["F32", "F16"]:
        path = work / f"{type_name.lower()}.gguf"
        command = [binary, "quantize", MODEL, "-o", "OUT", "--types", type_name]
        say(f"moe-compress quantize --types {type_name}")
        make(path, lambda out: run(command[:4] + [out] + command[5:], log=work / f"{path.stem}.log"))
        rows.append({"label": type_name, "group": "fp", "path": path,
                     "command": f"moe-compress quantize {MODEL} -o {path.name} --types {type_name}"})

    # 2. llama.cpp's imatrix on the calibration text, from the F32 file.
    imatrix = work / "imatrix.gguf"
    say("llama-imatrix")
    make(imatrix, lambda out: run([tool("llama-imatrix"), "-m", fp, "-f", CALIBRATION_TEXT, "-o", out, "-t", threads()]
                                  + IMATRIX_ARGS, log=work / "imatrix.log"))

    # 3. llama-quantize mixes without and with the imatrix.
    for mix in MIXES:
        for weighted in (True,) if mix in IMATRIX_ONLY_MIXES else (False, True):
            name = f"llama-{mix}{'-imatrix' if weighted else ''}"
            path = work / f"{name}.gguf"
            extra = ["--imatrix", imatrix] if weighted else []
            say(f"llama-quantize {mix}{' --imatrix' if weighted else ''}")
            make(path, lambda out: run([tool("llama-quantize")] + extra + [fp, out, mix, threads()], log=work / f"{name}.log"))
            rows.append({"label": f"llama-quantize {mix}" + (" + imatrix" if weighted else ""),
                         "group": "llama", "mix": mix, "weighted": weighted, "path": path,
                         "command": f"llama-quantize {'--imatrix imatrix.gguf ' if weighted else ''}f32.gguf OUT {mix}"})

    # The same single type for every weight matrix (--pure), as `moe-compress --types T` does: the
    # rounding compared at identical bytes.
    for type_name in UNIFORM:
        for weighted in (False, True):
            name = f"llama-pure-{type_name}{'-imatrix' if weighted else ''}"
            path = work / f"{name}.gguf"
            extra = ["--imatrix", imatrix] if weighted else []
            say(f"llama-quantize --pure {type_name}{' --imatrix' if weighted else ''}")
            make(path, lambda out: run([tool("llama-quantize"), "--pure"] + extra + [fp, out, type_name, threads()],
                                       log=work / f"{name}.log"))
            rows.append({"label": f"llama-quantize --pure {type_name}" + (" + imatrix" if weighted else ""),
                         "group": "llama-pure", "type": type_name, "weighted": weighted, "path": path,
                         "command": f"llama-quantize --pure {'--imatrix imatrix.gguf ' if weighted else ''}f32.gguf OUT {type_name}"})

    # 4. moe-compress: uniform weighted rounding, --bits budgets, --bits matched to each mix.
    def moe_quantize(name, options, label, group, **extra):
        path = work / f"{name}.gguf"
        say(f"moe-compress quantize {' '.join(options)}")
        failure = work / f"{name}.failed"
        if not path.exists() and not failure.exists():
            try:
                make(path, lambda out: run([binary, "quantize", MODEL, "-o", out] + options + MOE_DATA_ARGS,
                                           log=work / f"{name}.log"))
            except RuntimeError as error:
                # --bits below what the candidates reach on this model: a row that says so.
                message = str(error).strip().splitlines()[-1]
                failure.write_text(message)
        row = {"label": label, "group": group, "path": path,
               "command": f"moe-compress quantize {MODEL} -o OUT {' '.join(options)} {' '.join(MOE_DATA_ARGS)}", **extra}
        if failure.exists():
            row["failed"] = failure.read_text().strip()
        rows.append(row)

    for type_name in UNIFORM:
        moe_quantize(f"moe-{type_name}", ["--types", type_name], f"moe-compress {type_name}", "moe-uniform")
    for type_name in UNIFORM:
        moe_quantize(f"moe-gptq-{type_name}", ["--types", type_name, "--method", "gptq"], f"moe-compress {type_name} --method gptq",
                     "moe-gptq")
    def mix_file(mix):
        return work / f"llama-{mix}{'-imatrix' if mix in IMATRIX_ONLY_MIXES else ''}.gguf"

    for bits in BITS:
        moe_quantize(f"moe-bits-{bits}", ["--bits", str(bits)], f"moe-compress --bits {bits}", "moe-bits")
    for mix in MIXES:
        target = size_of(mix_file(mix))["bpw"]
        moe_quantize(f"moe-bits-{mix}", ["--bits", f"{target:.4f}"], f"moe-compress --bits {target:.4f} (= {mix})",
                     "moe-matched", mix=mix)

    # The same budgets written by GPTQ (the plan is measured with weighted rounding).
    for mix in MIXES:
        target = size_of(mix_file(mix))["bpw"]
        moe_quantize(f"moe-bits-{mix}-gptq", ["--bits", f"{target:.4f}", "--method", "gptq"],
                     f"moe-compress --bits {target:.4f} --method gptq (= {mix})", "moe-matched-gptq", mix=mix)

    # The same budgets with the cheaper error measure, for comparison (the k-quant mixes).
    for mix in MIXES:
        if mix in IMATRIX_ONLY_MIXES:
            continue
        target = size_of(mix_file(mix))["bpw"]
        moe_quantize(f"moe-bits-{mix}-output", ["--bits", f"{target:.4f}", "--measure", "output"],
                     f"moe-compress --bits {target:.4f} --measure output (= {mix})", "moe-output", mix=mix)

    # 5. Measurements.
    base_logits = work / "f32.kld"
    eval_tokens = args.chunks * CTX + 1
    llama_common = ["-f", HELDOUT, "-c", str(CTX), "--chunks", str(args.chunks), "-t", threads()]

    def baseline():
        parsed = llama_perplexity([ "-m", fp] + llama_common + ["--kl-divergence-base", base_logits],
                                  work / "f32.perplexity.log", [FINAL])
        return {"ppl": parsed["final"][0], "ppl_error": parsed["final"][1], "kld": 0.0, "same_top": 100.0}

    def llama_kld(path):
        parsed = llama_perplexity(["-m", path, "-c", str(CTX), "--chunks", str(args.chunks), "-t", threads(),
                                   "--kl-divergence-base", base_logits, "--kl-divergence"],
                                  path.with_suffix(".perplexity.log"), KL_PATTERNS)
        return {"ppl": parsed["ppl"][0], "ppl_error": parsed["ppl"][1], "kld": parsed["kld"][0],
                "kld_error": parsed["kld"][1], "same_top": parsed["same_top"][0]}

    def moe_eval(path, windows):
        stdout, _ = run([binary, "eval", path, "--text", HELDOUT, "--seq-len", str(CTX), "--max-tokens", str(windows * CTX + 1),
                         "--json"], log=path.with_suffix(f".eval-{windows}.log"))
        report = json.loads(stdout)
        return {"ppl": report["perplexity"], "tokens": report["predicted_tokens"]}

    results = {}
    for row in rows:
        if "failed" in row:
            continue
        path = row["path"]
        say(f"measuring {path.name}")
        size = size_of(path)
        llama = cached_json(f"{path.stem}.llama", baseline if path == fp else (lambda: llama_kld(path)))
        moe = cached_json(f"{path.stem}.moe-eval", lambda: moe_eval(path, args.chunks))
        check = cached_json(f"{path.stem}.crosscheck", lambda: {
            "moe": moe_eval(path, args.check_windows)["ppl"], "llama": llama_on_moe_windows(str(path), args.check_windows)})
        results[path.name] = {"size": size, "llama": llama, "moe": moe, "check": check}

    # llama-perplexity's KL mode reports the same perplexity as its plain mode (checked on one mix).
    probe = work / f"llama-{MIXES[0]}.gguf"

    def plain_probe():
        return {"ppl": llama_perplexity(["-m", probe] + llama_common, work / "plain-probe.log", [FINAL])["final"][0]}
    probe_ppl = cached_json("plain-probe", plain_probe)["ppl"]
    probe_kl = results[probe.name]["llama"]["ppl"]
    if abs(probe_ppl / probe_kl - 1) > 1e-4:
        raise RuntimeError(f"{probe.name}: plain llama-perplexity {probe_ppl} but KL mode {probe_kl}")

    elapsed = time.monotonic() - START
    say(f"done in {elapsed / 60:.1f} min")
    runtime = work / "runtime.json"
    if from_scratch:
        runtime.write_text(json.dumps({"seconds": elapsed}))
    # The page states the time from an empty cache (a rerun from the cache takes seconds).
    elapsed = json.loads(runtime.read_text())["seconds"] if runtime.exists() else None
    page = render(rows, results, info, args, eval_tokens, probe, probe_ppl, probe_kl, elapsed)
    if args.no_doc:
        print(page)
    else:
        (REPO / "docs" / "quantization.md").write_text(page)
        say("wrote docs/quantization.md")


def render(rows, results, info, args, eval_tokens, probe, probe_ppl, probe_kl, elapsed):
    fp = results["f32.gguf"]

    def types_cell(size):
        return ", ".join(f"{name} {100 * share:.0f}%" for name, share in size["types"].items() if share >= 0.005)

    def quality(result):
        return f"{result['llama']['ppl']:.4f} / {result['llama']['kld']:.5f}" if result else "—"

    lines = [
        "# Quantization quality on the trained default model",
        "",
        "Regenerate with `/work/venv/bin/python scripts/quantization_quality.py` (this file is its output, with "
        "docs/quantization-notes.md appended; the Python of `Fixtures/scripts/setup_llama_cpp.sh`, with llama.cpp's "
        "tools in `$LLAMA_CPP_DIR/bin`). "
        + (f"From an empty cache it took {elapsed / 60:.1f} minutes here" if elapsed else "It")
        + " (intermediate files are cached in `--work DIR`, default `/tmp/moe-quant-quality`; a rerun takes seconds).",
        "",
        f"Model `{MODEL}`: {model_summary()}. llama.cpp is the judge: every file below is loaded by "
        f"llama.cpp (commit {info['llama_cpp'][:7]}, built by `Fixtures/scripts/setup_llama_cpp.sh` for AVX2, no AVX-512) "
        "and scored by `llama-perplexity` on the held-out text.",
        "",
        "Rows:",
        "",
        f"- **F32**: `moe-compress quantize {MODEL} -o f32.gguf --types F32`, exact for the bf16 checkpoint: "
        "the baseline, the `--kl-divergence-base`, and the input of every `llama-quantize` run, so every file "
        "carries the same tokenizer metadata. **F16**: the same with `--types F16`.",
        f"- **llama-quantize MIX** (+ imatrix): `llama-quantize [--imatrix imatrix.gguf] f32.gguf OUT MIX {threads()}`; "
        f"the imatrix is `llama-imatrix -m f32.gguf -f {CALIBRATION_TEXT} -o imatrix.gguf {' '.join(IMATRIX_ARGS)}` "
        f"(the whole calibration text in chunks of {CTX}); the IQ2 mixes only with it (llama-quantize refuses them "
        "without one). **--pure T**: the same with `--pure`, one type for every "
        "weight matrix.",
        f"- **moe-compress T**: `moe-compress quantize {MODEL} -o OUT --types T {' '.join(MOE_DATA_ARGS)}`: every weight "
        "matrix in T (norms and routers F32; rows a type's blocks do not tile fall back as in llama-quantize), "
        "rounded with the importance weights of moe-compress's own imatrix pass over the same calibration text "
        f"(every window of {CTX}; routed experts: the mean squares of the inputs routed to each expert). "
        "**T --method gptq**: the same type by GPTQ on the same grids (each layer's input Hessians from the "
        "calibration windows, an expert's from its routed tokens; sequential, lazy batches, relative dampening 0.01).",
        f"- **moe-compress --bits B**: `moe-compress quantize {MODEL} -o OUT --bits B {' '.join(MOE_DATA_ARGS)}`: "
        "per tensor the type from IQ2_XXS, IQ2_XS, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_0 that an exact knapsack picks to minimise "
        "the summed error within B bits/weight for the whole file, each candidate's error being the mean KL "
        "divergence of the next-token distributions when that tensor alone is quantized (`--measure kl`, the "
        "default: 2048 calibration tokens run from the tensor's layer on); "
        "**(= MIX)** rows take B from that llama-quantize mix's file, for a comparison at equal size. "
        "**--method gptq (= MIX)**: that plan written by GPTQ instead of weighted rounding. "
        "**--measure output (= MIX)**: the same budget with the cheaper measure, the tensor's own imatrix-weighted "
        "output error divided by the residual stream's mean square (no forward pass per candidate).",
        "",
        "Columns: bits/weight as llama.cpp counts them (tensor data bytes × 8 / all weights, norms included; what "
        "llama_model_loader prints as BPW); the file's bytes (header and tokenizer included); the weight types by "
        f"share of weights; `llama-perplexity -m FILE -f {HELDOUT} -c {CTX} --chunks {args.chunks}` "
        f"(± its standard error), which scores the second half of each {CTX}-token chunk "
        f"({args.chunks} × {CTX // 2 - 1} tokens), and its change from F32; the KL divergence from the F32 file's "
        "next-token distributions and the share of tokens whose top prediction is the F32 file's "
        "(`--kl-divergence-base f32.kld` on the F32 file, then `--kl-divergence` on each file; that mode's "
        f"perplexity is the plain mode's: checked on {probe.name}, {probe_ppl:.4f} and {probe_kl:.4f}); "
        f"`moe-compress eval FILE --text {HELDOUT} --seq-len {CTX} --max-tokens {eval_tokens}`, which scores "
        f"every token of {args.chunks} windows of {CTX + 1} ids over the same text prefix (higher than llama.cpp's "
        "figure: it includes the early positions, with little context); and an exact cross-check of the two "
        f"forward passes on each file: llama.cpp (llama-cpp-python, the same libllama) on moe-compress eval's first "
        f"{args.check_windows} windows, as its perplexity's difference from moe-compress's on those windows "
        "(same tokens, same windows: only floating-point differences, and llama.cpp's 8-bit quantized activations "
        "in quantized matrix products, remain).",
        "",
        f"Measured {datetime.date.today().isoformat()} on {cpu_description()}; {info['swift']}; moe-compress "
        f"{info['moe_compress']}; llama.cpp {info['llama_cpp']}; {info['binding']}; Python {info['python']}.",
        "",
        "| file | bits/weight | bytes | weight types | llama.cpp PPL | ΔPPL | KLD vs F32 | same top | moe-compress eval PPL | cross-check |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "failed" in row:
            reason = re.sub(r"^Error: ", "", row["failed"])
            reach = re.search(r"reach ([0-9.]+) to ([0-9.]+) bits per weight", reason)
            if reach:
                reason = f"the candidate types reach {reach.group(1)} to {reach.group(2)} bits/weight on this model"
            lines.append(f"| {row['label']} | — | — | not written: {reason} | | | | | | |")
            continue
        result = results[row["path"].name]
        size, llama, moe, check = result["size"], result["llama"], result["moe"], result["check"]
        delta = 100 * (llama["ppl"] / fp["llama"]["ppl"] - 1)
        cross = f"{100 * (check['llama'] / check['moe'] - 1):+.3f}%" if check.get("llama") else "—"
        lines.append(
            f"| {row['label']} | {size['bpw']:.4f} | {size['file_bytes']:,} | {types_cell(size)} | "
            f"{llama['ppl']:.4f} ± {llama['ppl_error']:.4f} | {delta:+.2f}% | {llama['kld']:.5f} | {llama['same_top']:.2f}% | "
            f"{moe['ppl']:.4f} | {cross} |")

    lines += ["", "One type for every weight matrix, the same bytes in both tools (llama.cpp's perplexity / KL divergence "
              "from F32; the types each row really has are in the table above):", "",
              "| type | bits/weight | llama-quantize --pure | llama-quantize --pure + imatrix | moe-compress --types (weighted) "
              "| moe-compress --types --method gptq |",
              "|---|---|---|---|---|---|"]
    for type_name in UNIFORM:
        plain = results.get(f"llama-pure-{type_name}.gguf")
        weighted = results.get(f"llama-pure-{type_name}-imatrix.gguf")
        ours = results.get(f"moe-{type_name}.gguf")
        gptq = results.get(f"moe-gptq-{type_name}.gguf")
        bpw = " / ".join(sorted({f"{r['size']['bpw']:.4f}" for r in (plain, ours, gptq) if r}))
        lines.append(f"| {type_name} | {bpw} | {quality(plain)} | {quality(weighted)} | {quality(ours)} | {quality(gptq)} |")

    lines += ["", "At equal size: each llama-quantize mix beside `moe-compress --bits` set to its bits/weight "
              "(perplexity / KL divergence as above; size ratio = moe-compress's tensor bytes / llama-quantize's):", "",
              "| mix | bits/weight | llama-quantize | llama-quantize + imatrix | moe-compress --bits | size ratio | "
              "moe-compress --bits --method gptq | moe-compress --bits --measure output | size ratio |",
              "|---|---|---|---|---|---|---|---|---|"]
    for mix in MIXES:
        plain = results.get(f"llama-{mix}.gguf")
        weighted = results.get(f"llama-{mix}-imatrix.gguf")
        reference = plain or weighted
        ours = results.get(f"moe-bits-{mix}.gguf")
        output = results.get(f"moe-bits-{mix}-output.gguf")
        gptq = results.get(f"moe-bits-{mix}-gptq.gguf")

        def ratio(r):
            return f"{r['size']['data_bytes'] / reference['size']['data_bytes']:.4f}" if r else "—"
        lines.append(f"| {mix} | {reference['size']['bpw']:.4f} | {quality(plain) if plain else 'needs an imatrix'} | "
                     f"{quality(weighted)} | {quality(ours)} | "
                     f"{ratio(ours)} | {quality(gptq)} | {quality(output)} | {ratio(output)} |")

    notes = REPO / "docs" / "quantization-notes.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
