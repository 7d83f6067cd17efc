"""Per-expert calibration statistics of the tiny fixtures, computed by transformers, as the ground
truth for moe-compress's calibrate step (the saliency criteria that expert pruning ranks by).

Run from the repository root after make_fixtures.py:
    /work/venv/bin/python Fixtures/scripts/record_calibration_stats.py   (~10 s, most of it importing torch)
(any environment with Fixtures/requirements.txt works; one thread, so reruns give identical bytes)

Windows: Fixtures/text/calibration.txt encoded with each model's tokenizer.json (`tokenizers`,
add_special_tokens=True), then WINDOW_LENGTH ids starting at each of WINDOW_OFFSETS; every window is
its own sequence (batch of 1, no padding, no cache). The exact ids are written to the record.

Model: AutoModelForCausalLM in float32 from the weights as stored (bf16 on disk for the two Qwen
fixtures, upcast exactly), eager attention, no_grad. Forward hooks on every sparse MoE block (its
input x_t = post-attention-norm output, its output and its router logits) and on that decoder
layer's post_attention_layernorm (its input h_t = residual stream after attention).

Writes Fixtures/records/calibration-stats.json. Per model, per sparse layer (the layer index in the
tensor names) and per expert j, over all windows and tokens t (T = token_count = windows x 48):
  p_t          = softmax(router logits_t) over all experts, float32 (as the block does)
  top-k        = torch.topk(p_t, k), k = num_experts_per_tok;  R_j = {t : j in top-k(t)}
  g_{t,j}      = p_{t,j}, renormalised over the top-k when the family does (Mixtral always,
                 Qwen2-MoE / Qwen3-MoE / OLMoE when norm_topk_prob); the gate the block applies
  E_j(x_t)     = expert j's raw output (before gate weighting), from calling block.experts[j] on the
                 rows of x it is routed (as the block calls it); float32, then float64 for all sums
  counts[j]                 = |R_j|                                                   (int)
  probability_sum[j]        = sum over ALL t of p_{t,j}
  routed_probability_sum[j] = sum over R_j of p_{t,j}
  routed_weight_sum[j]      = sum over R_j of g_{t,j}
  reap[j]                   = mean over R_j of g_{t,j} * ||E_j(x_t)||_2   (0 if R_j is empty)
  ean_sum[j]                = sum over R_j of ||E_j(x_t)||_2
  ean_mean[j]               = ean_sum[j] / counts[j]                      (0 if R_j is empty)
  max_output_norm[j]        = max over R_j of ||E_j(x_t)||_2              (0 if R_j is empty)
  max_abs_activation[j]     = max over R_j and entries of |E_j(x_t)|      (0 if R_j is empty)
  easy_ep[j]                = sum over R_j of g_{t,j} * ||E_j(x_t)||_2 * s_t,
                              s_t = max(1 - cos(h_t, h_t + r_t), 0), r_t = sum over the top-k of
                              g_{t,i} E_i(x_t) (routed experts only: no shared expert), float64
  top1_logit_sum[j]         = sum over tokens whose largest raw router logit is j's of that
                              logit (PreMoe's TCESS numerator: its code's k=1, no threshold)
  coactivation[i][j]        = |R_i intersect R_j|  (diagonal = counts)                (int)
  input_square_sum[j][d]    = sum over R_j of x_{t,d}^2  (hidden-size vector per expert)
  token_count               = T                                                        (int)
Per model also: num_experts_per_tok, renormalise, hidden_size, the windows' ids, and
min_router_logit_gap = the smallest gap between the k-th and (k+1)-th router logit over every token
and sparse layer (how far the nearest top-k tie is; >= 1.6e-3 here, so float32 noise cannot flip
a routing decision).
Floats are rounded to 7 significant digits (round7, as in the other records).
reap follows CerebrasResearch/reap's `reap` criterion (observer.py: per batch the mean of
router weight x activation norm over the routed tokens, merged across batches by a count-weighted
running mean, i.e. the mean over all routed tokens), renormalising exactly when the model does.
Two names differ from that repository's: its `max_activations` is the signed maximum of E_j
(here max_abs_activation is of |E_j|), and its `pairwise_expert_frequency` is counts[i] +
counts[j] (here coactivation counts the tokens that pick both).

Checks, each an assertion (the script fails if one does not hold):
  - the block's router logits are those of its gate; the norm's output is the block's input;
  - the routed output rebuilt from the derived routing and E_j (plus the sigmoid-gated shared
    expert for Qwen2-MoE) equals the block's output (atol 1e-5), so the routing is the block's;
  (1) per layer, sum(counts) == token_count * k, the coactivation diagonal equals counts and the
      matrix is symmetric, and sum(probability_sum) == token_count (to 1e-6 relative: float32 p);
  (2) for the last sparse layer of each model, REAP (and counts, ean_sum) recomputed by a second,
      independent loop: token by token, routing from a float64 softmax of the captured logits and a
      full sort (not topk), the expert called on that single token, accumulated in plain Python
      floats; equal to the vectorised values within 1e-6 relative.
"""
import math
import os
import sys
import time

import tokenizers
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import (  # noqa: E402  the fixtures' own loader, routing rule and output helpers
    FIXTURES, derive_top_k, load_reference, renormalises, round7, sparse_blocks, versions, write_json)

TINY = ["tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe"]
TEXT = f"{FIXTURES}/text/calibration.txt"
WINDOW_LENGTH = 48
WINDOW_OFFSETS = [0, 4096, 32768, 65536]
OUT = f"{FIXTURES}/records/calibration-stats.json"


def calibration_windows(directory):
    tokenizer = tokenizers.Tokenizer.from_file(f"{directory}/tokenizer.json")
    with open(TEXT, encoding="utf-8") as f:
        ids = tokenizer.encode(f.read(), add_special_tokens=True).ids
    assert len(ids) >= WINDOW_OFFSETS[-1] + WINDOW_LENGTH, len(ids)
    return [ids[start:start + WINDOW_LENGTH] for start in WINDOW_OFFSETS]


class Capture:
    """Per sparse layer: (h, x, block output, router logits) of the last forward call."""

    def __init__(self, model):
        self.blocks = sparse_blocks(model)
        self.captured = {}
        self.handles = []
        for layer, block in self.blocks:
            norm = model.model.layers[layer].post_attention_layernorm
            self.handles.append(norm.register_forward_hook(self._norm_hook(layer)))
            self.handles.append(block.gate.register_forward_hook(self._gate_hook(layer)))
            self.handles.append(block.register_forward_hook(self._block_hook(layer)))

    def _norm_hook(self, layer):
        def hook(module, inputs, output):
            self.captured[layer, "h"] = inputs[0].detach().clone()
            self.captured[layer, "norm_out"] = output.detach().clone()
        return hook

    def _gate_hook(self, layer):
        def hook(module, inputs, output):
            self.captured[layer, "gate"] = output.detach().clone()
        return hook

    def _block_hook(self, layer):
        def hook(module, inputs, output):
            self.captured[layer, "x"] = inputs[0].detach().clone()
            self.captured[layer, "out"] = output[0].detach().clone()
            self.captured[layer, "logits"] = output[1].detach().clone()
        return hook

    def remove(self):
        for handle in self.handles:
            handle.remove()


class LayerStats:
    def __init__(self, num_experts, hidden):
        n = num_experts
        self.token_count = 0
        self.counts = torch.zeros(n, dtype=torch.long)
        self.coactivation = torch.zeros(n, n, dtype=torch.long)
        f64 = dict(dtype=torch.float64)
        self.probability_sum = torch.zeros(n, **f64)
        self.routed_probability_sum = torch.zeros(n, **f64)
        self.routed_weight_sum = torch.zeros(n, **f64)
        self.weighted_norm_sum = torch.zeros(n, **f64)  # reap = this / counts
        self.ean_sum = torch.zeros(n, **f64)
        self.max_output_norm = torch.zeros(n, **f64)
        self.max_abs_activation = torch.zeros(n, **f64)
        self.easy_ep = torch.zeros(n, **f64)
        self.top1_logit_sum = torch.zeros(n, **f64)
        self.input_square_sum = torch.zeros(n, hidden, **f64)

    def as_record(self, layer):
        counts = self.counts.double()
        seen = counts > 0
        reap = torch.where(seen, self.weighted_norm_sum / counts.clamp(min=1), 0.0)
        ean_mean = torch.where(seen, self.ean_sum / counts.clamp(min=1), 0.0)
        return {
            "layer": layer, "token_count": self.token_count,
            "counts": self.counts.tolist(),
            "probability_sum": round7(self.probability_sum.tolist()),
            "routed_probability_sum": round7(self.routed_probability_sum.tolist()),
            "routed_weight_sum": round7(self.routed_weight_sum.tolist()),
            "reap": round7(reap.tolist()),
            "ean_sum": round7(self.ean_sum.tolist()),
            "ean_mean": round7(ean_mean.tolist()),
            "max_output_norm": round7(self.max_output_norm.tolist()),
            "max_abs_activation": round7(self.max_abs_activation.tolist()),
            "easy_ep": round7(self.easy_ep.tolist()),
            "top1_logit_sum": round7(self.top1_logit_sum.tolist()),
            "coactivation": self.coactivation.tolist(),
            "input_square_sum": round7(self.input_square_sum.tolist()),
        }


def accumulate(stats, block, config, h, x, block_out, logits):
    """One window's tokens of one sparse layer, vectorised over tokens (expert by expert, as the block)."""
    tokens, hidden = x.shape
    num_experts, k = logits.shape[1], config.num_experts_per_tok
    index, weights, _ = derive_top_k(logits, k, renormalises(config))  # float32, the block's rule
    probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
    routed = torch.zeros(tokens, num_experts, dtype=torch.bool)
    routed.scatter_(1, index, True)
    gate = torch.zeros(tokens, num_experts, dtype=torch.float32).scatter_(1, index, weights)

    rebuilt32 = torch.zeros_like(x)  # float32, summed as the block sums (index_add_ in expert order)
    r = torch.zeros(tokens, hidden, dtype=torch.float64)  # the routed output in float64, for EASY-EP
    norms = torch.zeros(tokens, num_experts, dtype=torch.float64)
    x64 = x.double()
    for j in range(num_experts):
        rows = torch.nonzero(routed[:, j]).flatten()
        if rows.numel() == 0:
            continue
        out = block.experts[j](x[rows])  # float32, (rows, hidden)
        out64 = out.double()
        norm = torch.linalg.vector_norm(out64, dim=-1)
        norms[rows, j] = norm
        g = gate[rows, j].double()
        rebuilt32.index_add_(0, rows, out * gate[rows, j, None])
        r[rows] += g[:, None] * out64
        stats.ean_sum[j] += norm.sum()
        stats.weighted_norm_sum[j] += (g * norm).sum()
        stats.max_output_norm[j] = max(stats.max_output_norm[j], norm.max())
        stats.max_abs_activation[j] = max(stats.max_abs_activation[j], out64.abs().max())
        stats.input_square_sum[j] += (x64[rows] ** 2).sum(dim=0)

    expected = block_out
    if hasattr(block, "shared_expert"):  # Qwen2-MoE: the block adds the sigmoid-gated shared expert
        expected = block_out - torch.sigmoid(block.shared_expert_gate(x)) * block.shared_expert(x)
    torch.testing.assert_close(rebuilt32, expected, atol=1e-5, rtol=0)

    h64 = h.double()
    cos = torch.nn.functional.cosine_similarity(h64, h64 + r, dim=-1)
    s = torch.clamp(1.0 - cos, min=0.0)  # (tokens,)

    probs64, gate64, routed64 = probs.double(), gate.double(), routed.double()
    stats.token_count += tokens
    stats.counts += routed.sum(dim=0)
    stats.coactivation += (routed64.T @ routed64).long()
    stats.probability_sum += probs64.sum(dim=0)
    stats.routed_probability_sum += (probs64 * routed64).sum(dim=0)
    stats.routed_weight_sum += gate64.sum(dim=0)
    stats.easy_ep += (gate64 * norms * s[:, None]).sum(dim=0)
    # PreMoe's marker (JarvisPei/PreMoe collect_utils.py, its defaults k=1, no threshold): each
    # token's largest raw router logit, credited to that expert.
    top_value, top_index = torch.topk(logits, 1, dim=-1)
    stats.top1_logit_sum.index_add_(0, top_index[:, 0], top_value[:, 0].double())
    ranked = torch.sort(logits, dim=-1, descending=True).values
    return float((ranked[:, k - 1] - ranked[:, k]).min())  # router-logit gap k/k+1: the nearest top-k tie


def independent_reap(block, config, windows_xl):
    """Check (2): REAP, counts and EAN sums by a second loop, token by token, in Python floats."""
    num_experts, k = block.gate.out_features, config.num_experts_per_tok
    total = [0.0] * num_experts
    ean = [0.0] * num_experts
    count = [0] * num_experts
    for x, logits in windows_xl:
        for t in range(x.shape[0]):
            row = logits[t].double()
            p = torch.exp(row - row.max())
            p = (p / p.sum()).tolist()
            chosen = sorted(range(num_experts), key=lambda e: (-p[e], e))[:k]
            denominator = sum(p[e] for e in chosen) if renormalises(config) else 1.0
            for e in chosen:
                out = block.experts[e](x[t:t + 1])[0].tolist()
                norm = math.sqrt(sum(v * v for v in out))
                total[e] += p[e] / denominator * norm
                ean[e] += norm
                count[e] += 1
    reap = [total[e] / count[e] if count[e] else 0.0 for e in range(num_experts)]
    return reap, ean, count


@torch.no_grad()
def model_stats(name):
    directory = f"{FIXTURES}/models/{name}"
    model = load_reference(directory)
    config = model.config
    k = config.num_experts_per_tok
    capture = Capture(model)
    stats = {layer: LayerStats(block.gate.out_features, config.hidden_size) for layer, block in capture.blocks}
    check_layer, check_block = capture.blocks[-1]
    check_inputs, gaps = [], []
    windows = calibration_windows(directory)
    for ids in windows:
        capture.captured.clear()
        model(input_ids=torch.tensor([ids]), use_cache=False)
        for layer, block in capture.blocks:
            c = {key: capture.captured[layer, key] for key in ("h", "norm_out", "gate", "x", "out", "logits")}
            assert torch.equal(c["norm_out"], c["x"]) and torch.equal(c["gate"], c["logits"])
            flat = [c[key].reshape(-1, c[key].shape[-1]) for key in ("h", "x", "out")]
            gaps.append(accumulate(stats[layer], block, config, *flat, c["logits"]))
            if layer == check_layer:
                check_inputs.append((flat[1], c["logits"]))
    capture.remove()

    layers = []
    for layer, block in capture.blocks:
        s = stats[layer]
        # Check (1): every token picks exactly k distinct experts; probabilities sum to one per token.
        assert int(s.counts.sum()) == s.token_count * k, (name, layer)
        assert torch.equal(torch.diagonal(s.coactivation), s.counts) and torch.equal(s.coactivation,
                                                                                     s.coactivation.T)
        assert abs(float(s.probability_sum.sum()) - s.token_count) < 1e-6 * s.token_count  # float32 softmax
        layers.append(s.as_record(layer))

    # Check (2): REAP for one layer by an independent loop.
    reap, ean, count = independent_reap(check_block, config, check_inputs)
    s = stats[check_layer]
    assert count == s.counts.tolist(), (name, count, s.counts.tolist())
    vectorised = torch.where(s.counts > 0, s.weighted_norm_sum / s.counts.clamp(min=1).double(), 0.0).tolist()
    for a, b, e1, e2 in zip(reap, vectorised, ean, s.ean_sum.tolist()):
        assert abs(a - b) <= 1e-6 * max(abs(b), 1e-12), (name, a, b)
        assert abs(e1 - e2) <= 1e-6 * max(abs(e2), 1e-12), (name, e1, e2)
    check = {"layer": check_layer, "min_logit_gap": min(gaps), "max_relative_difference": max(
        abs(a - b) / abs(b) if b else abs(a) for a, b in zip(reap, vectorised))}

    record = {"model": directory, "num_experts_per_tok": k, "renormalise": bool(renormalises(config)),
              "hidden_size": config.hidden_size, "min_router_logit_gap": round7(min(gaps)), "windows": windows,
              "layers": layers, "super_experts": super_experts(layers)}
    return record, check


def super_experts(layers):
    """CerebrasResearch/reap's get_super_expert_indices on these statistics (with |activation|):
    max activations above max(torch.quantile(all, 0.995), overall max / 10), in the first
    int(0.75 * sparse layers) sparse layers only (its default, include_last_layers=False)."""
    values = torch.tensor([v for layer in layers for v in layer["max_abs_activation"]], dtype=torch.float64)
    threshold = max(torch.quantile(values, 0.995).item(), values.max().item() / 10)
    considered = layers[:int(len(layers) * 0.75)]
    return [[layer["layer"], j] for layer in considered for j, v in enumerate(layer["max_abs_activation"]) if v > threshold]


def main():
    torch.set_num_threads(1)  # one reduction order, so reruns give identical bytes
    started = time.perf_counter()
    models, checks = {}, {}
    for name in TINY:
        models[name], checks[name] = model_stats(name)
    write_json(OUT, {"versions": versions(), "text": TEXT, "add_special_tokens": True,
                     "window_length": WINDOW_LENGTH, "window_offsets": WINDOW_OFFSETS, "models": models})
    for name, check in checks.items():
        counts = {r["layer"]: r["counts"] for r in models[name]["layers"]}
        print(f"{name}: counts {counts}; REAP re-check layer {check['layer']}: "
              f"max relative difference {check['max_relative_difference']:.2g}; "
              f"min router-logit gap k/k+1 {check['min_logit_gap']:.2g}")
    print(f"wrote {OUT} ({os.path.getsize(OUT):,} bytes) in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
