"""How far transformers itself moves when it computes in bfloat16, recorded as the yardstick for
`--compute bf16`.

Run from the repository root after make_fixtures.py and train_default_model.py:
    python3 Fixtures/scripts/record_bf16_reference.py
Writes Fixtures/records/bf16-reference.json:
- for each tiny fixture, over its recorded forward cases: transformers' mean |logit difference|
  between the model loaded in bf16 and its float32 logits in the fixture record (the mean, not
  the max, because bf16 noise can flip a near-tied expert choice for a token, which moves that
  token's logits by far more than rounding does; both ways of computing meet such ties);
- for the default model: transformers' held-out perplexity in bf16 on the same ids, windows and
  sequence length as the float32 record.
The Swift tests require moe-compress's bf16 mode to stay within these distances (plus a margin),
i.e. to be no less accurate than transformers' own bf16 inference.
"""
import json
from pathlib import Path

import tokenizers
import torch
import transformers
from transformers import AutoModelForCausalLM

from make_fixtures import perplexity_record  # the same windows and NLL as the float32 records

RECORDS = Path("Fixtures/records")
TINY = ["tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe"]


def load_bf16(directory):
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.bfloat16, attn_implementation="eager")
    return model.eval()


@torch.no_grad()
def tiny_deviation(name):
    record = json.loads((RECORDS / f"{name}.json").read_text())
    model = load_bf16(record["model"])
    total, count = 0.0, 0
    for case in record["forward"]:
        logits = model(input_ids=torch.tensor([case["input_ids"]]), use_cache=False).logits[0].double()
        difference = (logits - torch.tensor(case["logits"], dtype=torch.float64)).abs()
        total += float(difference.sum())
        count += difference.numel()
    return total / count


@torch.no_grad()
def default_model_perplexity():
    record = json.loads((RECORDS / "default-model.json").read_text())
    tokenizer = tokenizers.Tokenizer.from_file(str(Path(record["model"]) / "tokenizer.json"))
    text = Path(record["text"]).read_text(encoding="utf-8")
    ids = tokenizer.encode(text, add_special_tokens=True).ids[:record["max_tokens"]]
    assert len(ids) == record["tokens"]
    model = load_bf16(record["model"])
    result = perplexity_record(model, ids, record["seq_len"])
    return {"seq_len": result["seq_len"], "tokens": result["tokens"], "perplexity": result["perplexity"],
            "float32_perplexity": record["perplexity"]}


def main():
    torch.manual_seed(0)
    out = {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "tiny_mean_logit_deviation": {name: tiny_deviation(name) for name in TINY},
        "default_model": default_model_perplexity(),
    }
    (RECORDS / "bf16-reference.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
