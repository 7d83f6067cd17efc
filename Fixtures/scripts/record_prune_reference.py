"""Expert pruning done by transformers on the tiny fixtures, recorded as the ground truth for
moe-compress's prune step: the pruned checkpoint's logits, routing and perplexity.

Run from the repository root after make_fixtures.py:
    /work/venv/bin/python Fixtures/scripts/record_prune_reference.py     (~10 s, most of it importing torch)
(any environment with Fixtures/requirements.txt works; one thread, so reruns give identical bytes)

For each tiny fixture and the fixed keep-lists in KEEP (per sparse layer, sorted original expert
ids, the same number per layer, never fewer than num_experts_per_tok):
  - load it as make_fixtures.py's records do (float32 from the weights as stored, eager attention);
  - in every sparse block keep the listed experts in their original order (renumbered 0..K-1),
    slice the router gate.weight rows (and its bias, if it had one) to the same ids, set the
    block's expert count, and set the config's expert-count key (num_local_experts for Mixtral,
    num_experts for Qwen2-MoE, Qwen3-MoE and OLMoE) to K; num_experts_per_tok, norm_topk_prob,
    the shared expert and its gate, dense layers and everything else are left as they were;
  - save_pretrained to a temporary directory (safetensors, in the fixture's on-disk dtype: the
    Qwen fixtures' bf16 weights are bf16-exact in float32, so nothing is rounded), reload it with
    from_pretrained(output_loading_info=True) in float32, and record what the reloaded model computes.
Checks (assertions):
  - missing, unexpected and mismatched keys and error messages are all empty on reload;
  - every tensor saved is, byte for byte, the original tensor it came from (expert e of the
    pruned layer is original expert KEEP[layer][e]; routers are the original rows), no tensor is
    missing and the saved dtypes are the original ones; config.json has the new count;
  - the reloaded model's logits are equal (torch.equal) to the in-memory pruned model's once its
    parameters are copied into freshly allocated memory; as loaded (float32 tensors mmapped at the
    file's unaligned offsets, where the CPU matrix product rounds differently) within 1e-5;
  - the routing derived from the router logits rebuilds each pruned block's output (as in
    make_fixtures.py's forward records), and the first sparse layer's router logits equal the
    unpruned model's logits at the kept columns (within 1e-5: the narrower product may round
    differently);
  - the unpruned model reproduces the committed record's perplexity (the same ids and windows).

Writes Fixtures/records/prune-reference.json (the pruned checkpoints themselves are not kept):
per model, the keep-lists, the expert-count key and the new count, and, computed by the reloaded
pruned model (parameters in fresh memory, so bitwise the in-memory pruned model): `forward` for
the first two `forward` cases' input ids of Fixtures/records/<name>.json (the same JSON shape:
input_ids, logits rounded to 7 digits, routing per sparse layer with top_k_index in the NEW
numbering, top_k_weights and top_k_margin, by make_fixtures.forward_record itself), and
`perplexity` over the same ids and seq_len as that record's `perplexity` block, by
make_fixtures.perplexity_record itself (the same windows and NLL).
"""
import copy
import glob
import json
import os
import sys
import tempfile
import time

import safetensors
import torch
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import (  # noqa: E402  the fixtures' own loader, records and output helpers
    FIXTURES, RouterProbe, forward_record, load_reference, perplexity_record, sparse_blocks, versions, write_json)

OUT = f"{FIXTURES}/records/prune-reference.json"

# Per model: sparse layer -> kept original expert ids (sorted). Different subsets per layer; each
# model drops expert 0 in some layer and its last expert in some layer.
KEEP = {
    "tiny-mixtral": {0: [0, 2, 3, 5, 7], 1: [1, 2, 4, 6, 7]},            # 8 experts, top-2 -> 5
    "tiny-qwen2-moe": {0: [0, 1, 3], 2: [1, 2, 3]},                      # 4 experts, top-2 -> 3 (layer 1 dense)
    "tiny-qwen3-moe": {0: [0, 1, 2, 4, 5], 1: [1, 3, 4, 6, 7]},          # 8 experts, top-3 -> 5
    "tiny-olmoe": {0: [1, 2, 3, 4, 6, 7], 1: [0, 1, 3, 4, 5, 6]},        # 8 experts, top-2 -> 6
}
FORWARD_CASES = 2  # the first two forward cases of each model's record


def expert_count_key(config):
    return "num_local_experts" if config.model_type == "mixtral" else "num_experts"


def block_prefixes(model):
    """Sparse layer -> the tensor-name prefix of its block (model.layers.N.block_sparse_moe / .mlp)."""
    names = {id(module): name for name, module in model.named_modules()}
    return {layer: names[id(block)] for layer, block in sparse_blocks(model)}


@torch.no_grad()
def prune_block(block, ids, k):
    """Keep the experts `ids` (sorted original ids) of a sparse block, in place, renumbered 0..len-1."""
    assert ids == sorted(set(ids)) and k <= len(ids) < block.gate.out_features, ids
    assert ids[-1] < block.gate.out_features
    old = block.gate
    gate = torch.nn.Linear(old.in_features, len(ids), bias=old.bias is not None, dtype=old.weight.dtype)
    gate.weight.copy_(old.weight[ids])
    if old.bias is not None:
        gate.bias.copy_(old.bias[ids])
    block.gate = gate
    block.experts = torch.nn.ModuleList([block.experts[i] for i in ids])
    block.num_experts = len(ids)  # the block's forward one-hot encodes with it


def prune_layers(model, keep):
    """A deep copy of model with every sparse layer pruned to keep[layer]; the config untouched."""
    pruned = copy.deepcopy(model)
    blocks = dict(sparse_blocks(pruned))
    assert sorted(blocks) == sorted(keep), (sorted(blocks), sorted(keep))
    for layer, ids in keep.items():
        prune_block(blocks[layer], ids, pruned.config.num_experts_per_tok)
    return pruned.eval()


def prune(model, keep):
    """A pruned deep copy of model: kept experts in original order, router rows sliced, counts set."""
    kept = {len(ids) for ids in keep.values()}
    assert len(kept) == 1, "the config has one expert count for every layer"
    pruned = prune_layers(model, keep)
    setattr(pruned.config, expert_count_key(pruned.config), kept.pop())
    return pruned


def saved_tensors(directory):
    tensors = {}
    for path in sorted(glob.glob(f"{directory}/*.safetensors")):
        with safetensors.safe_open(path, "pt") as f:
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    return tensors


def check_saved(original_dir, pruned_dir, prefixes, keep, count_key, count):
    """Every saved tensor is byte-identical to the original tensor it came from; nothing is missing."""
    original, pruned = saved_tensors(original_dir), saved_tensors(pruned_dir)
    expected = {}
    for key, tensor in original.items():
        owner = next(((layer, p) for layer, p in prefixes.items() if key.startswith(p + ".")), None)
        if owner is None:
            expected[key] = tensor
            continue
        layer, prefix = owner
        rest = key[len(prefix) + 1:]
        if rest.startswith("experts."):
            expert, tail = rest[len("experts."):].split(".", 1)
            if int(expert) in keep[layer]:
                expected[f"{prefix}.experts.{keep[layer].index(int(expert))}.{tail}"] = tensor
        elif rest.startswith("gate."):
            expected[key] = tensor[keep[layer]]
        else:  # the shared expert and its gate
            expected[key] = tensor
    assert sorted(pruned) == sorted(expected), set(pruned) ^ set(expected)
    for key, tensor in expected.items():
        assert pruned[key].dtype == tensor.dtype and torch.equal(pruned[key], tensor), key
    with open(f"{pruned_dir}/config.json", encoding="utf-8") as f:
        assert json.load(f)[count_key] == count


@torch.no_grad()
def model_reference(name):
    directory = f"{FIXTURES}/models/{name}"
    with open(f"{FIXTURES}/records/{name}.json", encoding="utf-8") as f:
        original_record = json.load(f)
    keep = KEEP[name]
    model = load_reference(directory)
    dtypes = {t.dtype for t in saved_tensors(directory).values()}
    assert len(dtypes) == 1, dtypes
    disk_dtype = dtypes.pop()

    # The unpruned model reproduces its committed perplexity: same ids, windows and code.
    ppl = original_record["perplexity"]
    again = perplexity_record(model, ppl["input_ids"], ppl["seq_len"])["perplexity"]
    assert abs(again - ppl["perplexity"]) <= 1e-12 * ppl["perplexity"], (again, ppl["perplexity"])

    pruned = prune(model, keep)
    count_key = expert_count_key(model.config)
    count = getattr(pruned.config, count_key)
    prefixes = block_prefixes(model)
    cases = [case["input_ids"] for case in original_record["forward"][:FORWARD_CASES]]

    with tempfile.TemporaryDirectory() as tmp:
        copy.deepcopy(pruned).to(disk_dtype).save_pretrained(tmp, safe_serialization=True)
        check_saved(directory, tmp, prefixes, keep, count_key, count)
        reloaded, info = AutoModelForCausalLM.from_pretrained(
            tmp, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
        reloaded.eval()
        assert all(not v for v in info.values()), info
        assert getattr(reloaded.config, count_key) == count
        assert all(block.gate.out_features == count and len(block.experts) == count
                   for _, block in sparse_blocks(reloaded))
        # As loaded, float32 tensors are views into the mmapped file at whatever alignment the
        # header leaves, and the CPU matrix product rounds differently on unaligned operands
        # (~1e-6); with the parameters copied into freshly allocated memory the logits are
        # bitwise the in-memory ones.
        as_loaded = [reloaded(input_ids=torch.tensor([ids]), use_cache=False).logits for ids in cases]
        for parameter in reloaded.parameters():
            parameter.data = parameter.data.clone()
    for ids, loaded in zip(cases, as_loaded):
        a = pruned(input_ids=torch.tensor([ids]), use_cache=False).logits
        b = reloaded(input_ids=torch.tensor([ids]), use_cache=False).logits
        assert torch.equal(a, b), (name, float((a - b).abs().max()))
        torch.testing.assert_close(loaded, a, atol=1e-5, rtol=0)
    mmap_difference = max(float((loaded - pruned(input_ids=torch.tensor([ids]), use_cache=False).logits)
                                .abs().max()) for ids, loaded in zip(cases, as_loaded))

    # Layer 0's input is unchanged by pruning, so its router logits are the original's kept columns
    # (to float32 rounding: the narrower product need not round like the full one).
    first = sparse_blocks(model)[0][0]
    probe_before, probe_after = RouterProbe(model), RouterProbe(reloaded)
    router_difference = 0.0
    for ids in cases:
        model(input_ids=torch.tensor([ids]), use_cache=False)
        reloaded(input_ids=torch.tensor([ids]), use_cache=False)
        before = probe_before.captured[first, "logits"][:, keep[first]]
        after = probe_after.captured[first, "logits"]
        torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
        router_difference = max(router_difference, float((after - before).abs().max()))
    probe_before.remove()

    results = [forward_record(reloaded, probe_after, ids) for ids in cases]  # asserts the block rebuild
    probe_after.remove()
    forward = [record for record, _ in results]
    gaps = []  # router-logit gap k/k+1 over the perplexity windows too, for the summary
    k = reloaded.config.num_experts_per_tok

    def gap_hook(module, inputs, output):
        ranked = torch.sort(output, dim=-1, descending=True).values
        gaps.append(float((ranked[:, k - 1] - ranked[:, k]).min()))
    handles = [block.gate.register_forward_hook(gap_hook) for _, block in sparse_blocks(reloaded)]
    perplexity = perplexity_record(reloaded, ppl["input_ids"], ppl["seq_len"])
    for handle in handles:
        handle.remove()
    record = {"model": directory, "expert_count_key": count_key,
              "original_num_experts": getattr(model.config, count_key),
              "num_experts": count, "num_experts_per_tok": reloaded.config.num_experts_per_tok,
              "keep": [{"layer": layer, "experts": ids} for layer, ids in sorted(keep.items())],
              "forward": forward, "perplexity": perplexity}
    facts = {"min_logit_gap": min(gap for _, gap in results), "perplexity_min_logit_gap": min(gaps),
             "perplexity": perplexity["perplexity"], "unpruned_perplexity": ppl["perplexity"],
             "mmap_difference": mmap_difference, "router_difference": router_difference}
    return record, facts


def main():
    torch.set_num_threads(1)  # one reduction order, so reruns give identical bytes
    started = time.perf_counter()
    models, facts = {}, {}
    for name in KEEP:
        models[name], facts[name] = model_reference(name)
    write_json(OUT, {"versions": versions(), "models": models})
    for name, f in facts.items():
        m = models[name]
        print(f"{name}: {m['expert_count_key']} {m['original_num_experts']} -> {m['num_experts']}, "
              f"perplexity {f['unpruned_perplexity']:.6g} -> {f['perplexity']:.6g}, "
              f"min router-logit gap k/k+1 {f['min_logit_gap']:.2g} (forward), "
              f"{f['perplexity_min_logit_gap']:.2g} (perplexity); max |logit| difference as mmapped "
              f"{f['mmap_difference']:.2g}; layer-0 router logits vs unpruned columns "
              f"{f['router_difference']:.2g}")
    print(f"wrote {OUT} ({os.path.getsize(OUT):,} bytes) in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
