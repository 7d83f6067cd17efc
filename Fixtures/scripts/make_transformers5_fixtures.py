"""The tiny fixtures as transformers 5 saves them with its fused expert layout.

transformers 5 keeps a layer's routed experts as two tensors, `mlp.experts.gate_up_proj`
[experts, 2 x width, hidden] and `mlp.experts.down_proj` [experts, hidden, width], and writes
them so when asked to (`save_pretrained(..., save_original_format=False)`); it also renames
Mixtral's `block_sparse_moe` to `mlp` and writes Qwen3-MoE's expert count as
`num_local_experts`. This script loads each tiny fixture with transformers 5, saves it in that
layout as Fixtures/models/<name>-fused, reloads it, and records how far transformers 5's logits
on it are from the float32 record the fixture already has (same weights, so they should agree to
rounding). The Swift tests then require moe-compress to reproduce that record from the fused copy.

Run from the repository root, in an environment with Fixtures/requirements-transformers5.txt:
    python Fixtures/scripts/make_transformers5_fixtures.py
Writes Fixtures/models/tiny-*-fused/ and Fixtures/records/transformers5-fused.json.
"""
import json
import shutil
from pathlib import Path

import safetensors
import torch
import transformers
from transformers import AutoModelForCausalLM

MODELS = Path("Fixtures/models")
RECORDS = Path("Fixtures/records")
NAMES = ["tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe"]
COPIED = ["tokenizer.json", "tokenizer_config.json"]


def load(directory, dtype):
    return AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, attn_implementation="eager").eval()


@torch.no_grad()
def max_logit_difference(model, record):
    worst = 0.0
    for case in record["forward"]:
        logits = model(input_ids=torch.tensor([case["input_ids"]]), use_cache=False).logits[0].double()
        worst = max(worst, float((logits - torch.tensor(case["logits"], dtype=torch.float64)).abs().max()))
    return worst


def stored_names(directory):
    names = []
    for path in sorted(directory.glob("*.safetensors")):
        with safetensors.safe_open(str(path), "pt") as f:
            names += list(f.keys())
    return names


def main():
    assert transformers.__version__.startswith("5."), f"needs transformers 5, found {transformers.__version__}"
    out = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__}, "models": {}}
    for name in NAMES:
        source = MODELS / name
        target = MODELS / f"{name}-fused"
        record = json.loads((RECORDS / f"{name}.json").read_text())
        stored_dtype = json.loads((source / "config.json").read_text())["dtype"]
        model = load(source, getattr(torch, stored_dtype))
        shutil.rmtree(target, ignore_errors=True)
        model.save_pretrained(target, save_original_format=False, max_shard_size="200KB" if name == "tiny-qwen2-moe" else "50GB")
        for file in COPIED:
            if (source / file).exists():
                shutil.copy(source / file, target / file)
        names = stored_names(target)
        assert any(n.endswith("mlp.experts.gate_up_proj") for n in names), f"{target}: not fused"
        assert not any(".experts.0." in n for n in names), f"{target}: per-expert tensors left"
        # Compute in float32 from the weights as stored, as the float32 records were made.
        difference = max_logit_difference(load(target, torch.float32), record)
        assert difference < 1e-4, f"{target}: transformers 5 moves the logits by {difference}"
        out["models"][f"{name}-fused"] = {"model": target.as_posix(), "record": f"{name}.json",
                                          "stored_tensors": len(names), "max_logit_difference": difference}
        print(f"{target}: {len(names)} tensors, max |logit difference| vs {name}.json {difference:.2e}")
    (RECORDS / "transformers5-fused.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
