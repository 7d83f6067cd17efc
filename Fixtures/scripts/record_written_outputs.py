"""What stock transformers computes on checkpoints that moe-compress itself wrote: proof that
`prune` and `merge` outputs load in transformers (no missing, unexpected or mismatched keys) and
that moe-compress's forward pass on them is transformers' forward pass.

Run from the repository root (needs the release binary: `swift build -c release --product moe-compress`):
    /work/venv/bin/python Fixtures/scripts/record_written_outputs.py      (~1 min)
(any environment with Fixtures/requirements.txt works; one thread, so reruns give identical bytes)

For each tiny fixture and each job in JOBS (the exact moe-compress arguments are recorded; every
job calibrates on Fixtures/text/calibration.txt with fixed windows, so moe-compress writes the same
bytes whenever the code is the same), run moe-compress into a temporary directory, load the result
with AutoModelForCausalLM.from_pretrained(output_loading_info=True) in float32 with eager attention,
assert that the loading info is empty and the config's expert count is the written one, and record
the logits of the first forward case's ids of the fixture's own record (Fixtures/records/<name>.json).
Tests/CLITests/WrittenOutputTests.swift reruns each job and compares moe-compress's logits on its
output with these (1e-3). The written checkpoints are not kept.
"""
import json
import os
import subprocess
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

torch.set_num_threads(1)
OUT = "Fixtures/records/written-outputs.json"
MODELS = ["tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe"]
CALIBRATION = ["--data", "Fixtures/text/calibration.txt", "--seq-len", "32", "--samples", "16"]
FORWARD_CASES = 1


def jobs(experts, top_k):
    k = max(top_k, experts - max(1, experts // 4))
    return {
        "prune-reap": ["prune", "--keep", str(k), "--method", "reap"],
        "merge-defaults": ["merge", "--experts", str(k)],
        "merge-subspace-fit": ["merge", "--experts", str(k), "--similarity", "output", "--cluster", "hierarchical",
                               "--fuse", "subspace", "--energy", "0.8", "--router", "fit"],
    }


def binary():
    path = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], check=True, capture_output=True, text=True).stdout.strip()
    return os.path.join(path, "moe-compress")


def main():
    executable = binary()
    records = {}
    for name in MODELS:
        directory = f"Fixtures/models/{name}"
        config = json.load(open(f"{directory}/config.json"))
        key = "num_local_experts" if "num_local_experts" in config else "num_experts"
        cases = [case["input_ids"] for case in json.load(open(f"Fixtures/records/{name}.json"))["forward"][:FORWARD_CASES]]
        records[name] = {}
        for job, arguments in jobs(config[key], config["num_experts_per_tok"]).items():
            with tempfile.TemporaryDirectory() as tmp:
                output = f"{tmp}/out"
                command = [arguments[0], directory, "-o", output] + arguments[1:] + CALIBRATION
                subprocess.run([executable] + command, check=True, capture_output=True)
                model, info = AutoModelForCausalLM.from_pretrained(output, dtype=torch.float32, attn_implementation="eager",
                                                                   output_loading_info=True)
                model.eval()
                assert all(not v for v in info.values()), (name, job, info)
                written = json.load(open(f"{output}/config.json"))[key]
                assert getattr(model.config, key) == written, (name, job)
                for parameter in model.parameters():
                    parameter.data = parameter.data.clone()
                with torch.no_grad():
                    logits = [model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].tolist() for ids in cases]
            records[name][job] = {"arguments": command, "experts": written, "forward": [
                {"input_ids": ids, "logits": values} for ids, values in zip(cases, logits)]}
            print(name, job, "experts", written)
    with open(OUT, "w") as f:
        json.dump({"calibration": CALIBRATION, "models": records}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
