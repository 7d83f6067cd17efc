"""Reference values for moe-compress's small math functions, recorded from torch/numpy/transformers.

Run from the repository root:  python3 Fixtures/scripts/make_math_records.py [math] [attention]
Writes Fixtures/records/math.json and Fixtures/records/attention.json (both when none is named).
Every expected number in the Swift unit tests comes from here.
"""
import argparse
import json
import math

import numpy as np
import torch
import transformers
from transformers.models.mixtral.configuration_mixtral import MixtralConfig
from transformers.models.mixtral.modeling_mixtral import MixtralRotaryEmbedding, apply_rotary_pos_emb

OUT = "Fixtures/records/math.json"
ATTENTION_OUT = "Fixtures/records/attention.json"


def floats(tensor):
    return [float(x) for x in np.asarray(tensor, dtype=np.float64).reshape(-1)]


def rms_norm_case(rng):
    x = torch.tensor(rng.normal(size=(3, 16)), dtype=torch.float32)
    weight = torch.tensor(1 + 0.1 * rng.normal(size=16), dtype=torch.float32)
    eps = 1e-6
    variance = x.pow(2).mean(-1, keepdim=True)
    y = weight * (x * torch.rsqrt(variance + eps))  # LlamaRMSNorm in float32
    return {"input": floats(x), "weight": floats(weight), "width": 16, "epsilon": eps, "output": floats(y)}


def softmax_case(rng):
    x = torch.tensor(rng.normal(size=9) * 4, dtype=torch.float32)
    return {"input": floats(x), "output": floats(torch.softmax(x, dim=-1)),
            "logsumexp": float(torch.logsumexp(x.double(), dim=-1))}


def silu_case(rng):
    x = torch.tensor(rng.normal(size=12) * 3, dtype=torch.float32)
    return {"input": floats(x), "silu": floats(torch.nn.functional.silu(x)), "sigmoid": floats(torch.sigmoid(x))}


def topk_case(rng):
    x = torch.tensor(rng.normal(size=16), dtype=torch.float32)
    values, indices = torch.topk(x, 4)
    return {"input": floats(x), "k": 4, "indices": [int(i) for i in indices]}


def rope_case(rng):
    head_dim, heads, positions, theta = 16, 2, 7, 50000.0
    config = MixtralConfig(hidden_size=head_dim * heads, num_attention_heads=heads, head_dim=head_dim, rope_theta=theta)
    rotary = MixtralRotaryEmbedding(config)
    q = torch.tensor(rng.normal(size=(1, heads, positions, head_dim)), dtype=torch.float32)
    position_ids = torch.arange(positions)[None, :]
    cos, sin = rotary(q, position_ids)
    rotated, _ = apply_rotary_pos_emb(q, q, cos, sin)
    # Swift lays each position's heads out contiguously: [position][head][dim].
    return {"head_dim": head_dim, "heads": heads, "theta": theta, "positions": positions,
            "input": floats(q[0].transpose(0, 1)), "output": floats(rotated[0].transpose(0, 1))}


def conversion_case(rng):
    values = np.concatenate([rng.normal(size=40) * 1000, [0.0, -0.0, 65504.0, 1e-7, 6e-8, 3.0e38, -3.0e38, 1.0 / 3.0]])
    f32 = torch.tensor(values, dtype=torch.float32)
    bf16 = f32.to(torch.bfloat16)
    f16 = torch.tensor(values, dtype=torch.float32).to(torch.float16)
    return {"float32": floats(f32),
            "bf16_bits": [int(b) & 0xFFFF for b in bf16.view(torch.int16).tolist()],
            "bf16_as_float32": floats(bf16.float()),
            "f16_bits": [int(b) & 0xFFFF for b in f16.view(torch.int16).tolist()],
            "f16_as_float32": [float(v) if math.isfinite(v) else (1e300 if v > 0 else -1e300) for v in f16.float().tolist()]}


def linear_case(rng, tokens):
    x = torch.tensor(rng.normal(size=(tokens, 5)), dtype=torch.float32)
    w = torch.tensor(rng.normal(size=(3, 5)), dtype=torch.float32)
    return {"tokens": tokens, "in_features": 5, "out_features": 3, "input": floats(x), "weight": floats(w),
            "output": floats(torch.nn.functional.linear(x, w))}


def bf16_linear_case(rng, tokens):
    """A bf16 linear layer as torch rounds its operands: Float32 input rounded to bf16 (nearest
    even), bf16 weight; the expected output is the exact (float64) product of the rounded values,
    which a Float32-accumulating kernel must match to Float32 rounding."""
    in_features, out_features = 72, 40
    x = torch.tensor(rng.normal(size=(tokens, in_features)), dtype=torch.float32)
    w = torch.tensor(rng.normal(size=(out_features, in_features)), dtype=torch.float32).to(torch.bfloat16)
    exact = torch.nn.functional.linear(x.to(torch.bfloat16).double(), w.double())
    return {"tokens": tokens, "in_features": in_features, "out_features": out_features, "input": floats(x),
            "weight_bf16_bits": [int(b) & 0xFFFF for b in w.view(torch.int16).reshape(-1).tolist()],
            "output": floats(exact)}


def attention_case(rng, heads, kv_heads, head_dim, lengths, window):
    """Causal grouped-query attention over independent sequences packed one after another, by
    torch's scaled_dot_product_attention in float64 on float32 inputs. Key j is visible to query
    i iff j <= i and (without a window, or) i - j < window, as transformers' sliding-window mask."""
    tokens = sum(lengths)
    q = torch.tensor(rng.normal(size=(tokens, heads, head_dim)) * 2, dtype=torch.float32)
    k = torch.tensor(rng.normal(size=(tokens, kv_heads, head_dim)) * 2, dtype=torch.float32)
    v = torch.tensor(rng.normal(size=(tokens, kv_heads, head_dim)), dtype=torch.float32)
    outputs = []
    start = 0
    for length in lengths:
        rows = slice(start, start + length)
        i = torch.arange(length)[:, None]
        j = torch.arange(length)[None, :]
        visible = (j <= i) if window is None else (j <= i) & (i - j < window)
        # [position][head][dim] -> [1][head][position][dim]
        out = torch.nn.functional.scaled_dot_product_attention(
            q[rows].transpose(0, 1)[None].double(), k[rows].transpose(0, 1)[None].double(),
            v[rows].transpose(0, 1)[None].double(), attn_mask=visible, enable_gqa=True)
        outputs.append(out[0].transpose(0, 1))
        start += length
    return {"heads": heads, "kv_heads": kv_heads, "head_dim": head_dim, "lengths": lengths, "window": window,
            "q": floats(q), "k": floats(k), "v": floats(v), "output": floats(torch.cat(outputs))}


def attention_record():
    rng = np.random.default_rng(20261202)
    return {
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
        "cases": [attention_case(rng, heads=4, kv_heads=2, head_dim=16, lengths=[37, 70], window=None),
                  attention_case(rng, heads=4, kv_heads=1, head_dim=8, lengths=[90], window=13),
                  attention_case(rng, heads=3, kv_heads=3, head_dim=8, lengths=[1, 29], window=40)],
    }


def math_record():
    rng = np.random.default_rng(20261123)
    record = {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__},
        "rms_norm": rms_norm_case(rng),
        "softmax": softmax_case(rng),
        "activations": silu_case(rng),
        "top_k": topk_case(rng),
        "rope": rope_case(rng),
        "conversion": conversion_case(rng),
        "linear": [linear_case(rng, 1), linear_case(rng, 4)],
        "bf16_linear": [bf16_linear_case(rng, 1), bf16_linear_case(rng, 37)],
    }
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="*", choices=["math", "attention"], help="which records to write (default: all)")
    chosen = parser.parse_args().records or ["math", "attention"]
    for name, path, make in [("math", OUT, math_record), ("attention", ATTENTION_OUT, attention_record)]:
        if name in chosen:
            with open(path, "w") as f:
                json.dump(make(), f, separators=(",", ":"))
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
