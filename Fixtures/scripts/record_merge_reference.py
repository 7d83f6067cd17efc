"""Expert merging done by transformers on the tiny fixtures, recorded as the ground truth for
moe-compress's merge step (fusing `average`, router `dominant`): the merged checkpoint's
clusters, usage weights, logits, routing and perplexity.

Run from the repository root after make_fixtures.py and record_calibration_stats.py:
    /work/venv/bin/python Fixtures/scripts/record_merge_reference.py     (~10 s, most of it importing torch)
(any environment with Fixtures/requirements.txt works; one thread, so reruns give identical bytes)

For each tiny fixture and the fixed clusterings in CLUSTERS (per sparse layer, a partition of the
layer's experts into K clusters, the same K in every layer of a model, num_experts_per_tok < K <
original count; clusters ordered by their smallest member, members ascending; merged expert i is
cluster i):
  - usage weights f: per layer and original expert, the routed `counts` of
    Fixtures/records/calibration-stats.json (same model, same layer), as float64;
  - load the fixture as make_fixtures.py's records do (float32 from the weights as stored, eager
    attention); rebuild every sparse block as record_prune_reference.prune_layers does with the
    clusters' smallest members as the kept ids (router Linear of K rows, K expert modules, the
    block's expert count set), then overwrite:
      expert weights (`average`): for each of the expert's weight matrices (gate, up, down: w1,
        w3, w2 for Mixtral; gate_proj, up_proj, down_proj otherwise),
            W = (sum over members j in ascending order of f_j * W_j) / (sum_j f_j)
        all in float64 (each W_j exactly widened from its stored dtype; each product f_j * W_j
        rounded to float64, accumulated left to right starting from the first member's product,
        one division at the end; no fused multiply-add), then cast to the dtype the fixture
        stores: torch's float64 -> float32 cast (round to nearest, ties to even) for the float32
        fixtures (Mixtral, OLMoE); for the bf16 fixtures (Qwen2-MoE, Qwen3-MoE) torch's float64
        -> bfloat16 cast, which is float64 -> float32 (round to nearest even) and then float32 ->
        bfloat16 (round to nearest even) -- two roundings, checked here on a probe value where
        that differs from one rounding (1 + 2^-8 + 2^-40 -> 1.0, not 1 + 2^-7); the summary
        prints how many merged bf16 elements would differ under a single rounding.
        A singleton cluster's expert is copied unchanged (byte-identical; the formula gives the
        same bytes, checked).
      router row (`dominant`): the merged expert's gate.weight row is the row of the member with
        the largest f (ties: the lowest expert id); a router bias likewise (none of these four
        families has one; handled). The dominant members are recorded.
    The config's expert-count key (num_local_experts for Mixtral, num_experts otherwise) is set
    to K; num_experts_per_tok, norm_topk_prob, the shared expert and its gate, dense layers and
    everything else are left as they were.
  - save_pretrained to a temporary directory (safetensors, in the fixture's on-disk dtype: the
    merged bf16 values are bf16-exact in float32, so saving rounds nothing), reload it with
    from_pretrained(output_loading_info=True) in float32, and record what the reloaded model computes.
Checks (assertions):
  - merging a singleton returns the expert unchanged, and merging a cluster of identical experts
    returns that expert: on a synthetic copy of each model, every member of every multi-member
    cluster is given the dominant member's weights, the copy is merged with the same clusters
    and usage, and each merged expert is torch.equal to that member's weights (exact in float64:
    f_j are small integers, so every product and sum is exact and the division returns W);
  - missing, unexpected and mismatched keys and error messages are all empty on reload;
  - every saved tensor is, byte for byte, what it should be, recomputed from the fixture's own
    safetensors (not from the model in memory): merged experts by the formula above, singletons
    and everything outside the sparse blocks' experts and router the original bytes, router rows
    the dominant members' original rows; no tensor is missing or extra, dtypes are the original
    ones; config.json has the new count;
  - the reloaded model's logits are equal (torch.equal) to the in-memory merged model's once its
    parameters are copied into freshly allocated memory; as loaded (float32 tensors mmapped at the
    file's unaligned offsets, where the CPU matrix product rounds differently) within 1e-5;
  - the routing derived from the router logits rebuilds each merged block's output (as in
    make_fixtures.py's forward records), and the first sparse layer's router logits equal the
    unmerged model's logits at the dominant members' columns (within 1e-5);
  - the unmerged model reproduces the committed record's perplexity (the same ids and windows).

Writes Fixtures/records/merge-reference.json (the merged checkpoints themselves are not kept):
per model, `model`, `dtype` (the stored weight dtype), `expert_count_key`,
`original_num_experts`, `num_experts` (K), `num_experts_per_tok`, `fusing` ("average"),
`router` ("dominant"), `clusters`: [{layer, clusters: [[ids]], dominant: [ids], usage: [f per
original expert]}], and, computed by the reloaded merged model (parameters in fresh memory, so
bitwise the in-memory merged model): `forward` for the first two `forward` cases' input ids of
Fixtures/records/<name>.json (the same JSON shape as prune-reference.json: input_ids, logits
rounded to 7 digits, routing per sparse layer with top_k_index in the MERGED numbering,
top_k_weights and top_k_margin, by make_fixtures.forward_record itself), and `perplexity` over
the same ids and seq_len as that record's `perplexity` block, by make_fixtures.perplexity_record.
"""
import copy
import json
import os
import sys
import tempfile
import time

import torch
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import (  # noqa: E402  the fixtures' own loader, records and output helpers
    FIXTURES, RouterProbe, forward_record, load_reference, perplexity_record, sparse_blocks, versions, write_json)
from record_prune_reference import (  # noqa: E402  block rebuilding and checkpoint helpers
    FORWARD_CASES, block_prefixes, expert_count_key, prune_layers, saved_tensors)

OUT = f"{FIXTURES}/records/merge-reference.json"
STATS = f"{FIXTURES}/records/calibration-stats.json"

# Per model: sparse layer -> clusters (ordered by smallest member, members ascending). Each model
# has a singleton and a cluster of >= 3 members in every layer where K allows (Qwen2-MoE: 4 experts,
# top-2, K = 3 forces sizes 2+1+1; K = top_k would leave no k+1-th expert for the routing margin).
# Dominant members (largest calibration count, ties to the lowest id) in the comments; they are
# computed, not read from here. Count ties decide: Mixtral layer 1 (0/6 and 4/7), OLMoE layer 0
# (1/2); the dominant is not the smallest member in several clusters, and not ascending across
# clusters in Mixtral layer 0 and OLMoE layer 1.
CLUSTERS = {
    "tiny-mixtral": {                                                   # 8 experts, top-2 -> 4
        0: [[0, 3], [1, 2, 4], [5], [6, 7]],                            # dominant 3, 1, 5, 7
        1: [[0, 5, 6], [1], [2, 3], [4, 7]],                            # dominant 0, 1, 3, 4
    },
    "tiny-qwen2-moe": {                                                 # 4 experts, top-2 -> 3 (layer 1 dense)
        0: [[0, 3], [1], [2]],                                          # dominant 0, 1, 2
        2: [[0], [1], [2, 3]],                                          # dominant 0, 1, 3
    },
    "tiny-qwen3-moe": {                                                 # 8 experts, top-3 -> 4
        0: [[0, 5], [1, 2, 6], [3], [4, 7]],                            # dominant 0, 2, 3, 7
        1: [[0], [1, 3, 4, 7], [2, 5], [6]],                            # dominant 0, 4, 5, 6
    },
    "tiny-olmoe": {                                                     # 8 experts, top-2 -> 5
        0: [[0, 7], [1, 2, 5], [3], [4], [6]],                          # dominant 0, 1, 3, 4, 6
        1: [[0], [1, 4, 6], [2, 7], [3], [5]],                          # dominant 0, 6, 2, 3, 5
    },
}


def check_clusters(clusters, n, k):
    assert k < len(clusters) < n, (len(clusters), n, k)
    assert all(c == sorted(set(c)) and c for c in clusters), clusters
    assert [c[0] for c in clusters] == sorted(c[0] for c in clusters), "ordered by smallest member"
    assert sorted(j for c in clusters for j in c) == list(range(n)), "a partition of the experts"


def dominant(cluster, usage):
    """The member with the largest usage; ties to the lowest expert id."""
    return max(cluster, key=lambda j: (usage[j], -j))


def to_stored(w64, dtype):
    """torch's cast of the float64 average to the stored dtype (for bf16: via float32, two RNEs)."""
    assert w64.dtype == torch.float64
    if dtype == torch.float32:
        return w64.to(torch.float32)
    assert dtype == torch.bfloat16, dtype
    stored = w64.to(torch.float32).to(torch.bfloat16)
    assert torch.equal(stored, w64.to(torch.bfloat16))  # torch's direct cast is the same two steps
    return stored


def average(tensors, usage, dtype):
    """sum_j f_j W_j / sum_j f_j in float64 (members in order, one division), cast to dtype."""
    total = sum(usage)
    assert total > 0
    acc = tensors[0].to(torch.float64) * float(usage[0])
    for tensor, f in zip(tensors[1:], usage[1:]):
        acc = acc + tensor.to(torch.float64) * float(f)
    return to_stored(acc / float(total), dtype)


def fuse(tensors, usage, dtype):
    """The merged tensor of a cluster: a singleton's own tensor (unchanged), else the average."""
    if len(tensors) == 1:
        merged = tensors[0].to(dtype).clone()
        assert torch.equal(average(tensors, usage, dtype), merged), "singleton formula is the identity"
        return merged
    return average(tensors, usage, dtype)


def double_rounding_differs(w64):
    """Elements where float64 -> float32 -> bf16 differs from one round-to-nearest-even to bf16:
    the float32 lands exactly on a bf16 halfway point while the float64 was not there."""
    w32 = w64.to(torch.float32)
    halfway = (w32.view(torch.int32) & 0xFFFF) == 0x8000
    return int((halfway & (w32.to(torch.float64) != w64)).sum())


@torch.no_grad()
def merge(model, clusters, usage, dtype):
    """A merged deep copy of model: block rebuilt as prune_layers does, then experts averaged and
    router rows (and bias) taken from the dominant members; config's expert count set to K."""
    sizes = {len(c) for c in clusters.values()}
    assert len(sizes) == 1, "the config has one expert count for every layer"
    merged = prune_layers(model, {layer: [c[0] for c in cs] for layer, cs in clusters.items()})
    originals = dict(sparse_blocks(model))
    for layer, block in sparse_blocks(merged):
        original = originals[layer]
        dom = [dominant(c, usage[layer]) for c in clusters[layer]]
        block.gate.weight.copy_(original.gate.weight[dom])
        if original.gate.bias is not None:
            block.gate.bias.copy_(original.gate.bias[dom])
        for i, members in enumerate(clusters[layer]):
            params = dict(block.experts[i].named_parameters())
            sources = [dict(original.experts[j].named_parameters()) for j in members]
            assert all(sorted(s) == sorted(params) for s in sources)
            f = [usage[layer][j] for j in members]
            for pname, param in params.items():
                # fused in the stored dtype, held in float32 (bf16 values are exact in float32)
                param.copy_(fuse([s[pname] for s in sources], f, dtype).to(param.dtype))
    setattr(merged.config, expert_count_key(merged.config), sizes.pop())
    return merged.eval()


@torch.no_grad()
def check_identical_experts(model, clusters, usage, dtype):
    """Merging identical experts returns that expert: give every member of each multi-member
    cluster the dominant member's weights, merge, compare. Singletons come back unchanged."""
    synthetic = copy.deepcopy(model)
    blocks = dict(sparse_blocks(synthetic))
    checked = 0
    for layer, cs in clusters.items():
        for c in cs:
            source = dict(blocks[layer].experts[dominant(c, usage[layer])].named_parameters())
            for j in c:
                for pname, param in blocks[layer].experts[j].named_parameters():
                    param.copy_(source[pname])
    merged = merge(synthetic, clusters, usage, dtype)
    for (layer, block), (_, before) in zip(sparse_blocks(merged), sparse_blocks(synthetic)):
        for i, c in enumerate(clusters[layer]):
            expected = dict(before.experts[dominant(c, usage[layer])].named_parameters())
            for pname, param in block.experts[i].named_parameters():
                assert torch.equal(param, expected[pname]), (layer, c, pname)
            checked += len(c) > 1
    # singletons of the real merge are the original expert, checked in check_saved_merge too
    return checked


def check_saved_merge(original_dir, merged_dir, prefixes, clusters, usage, count_key, count):
    """Every saved tensor is byte for byte what the recipe makes of the fixture's own tensors."""
    original, merged = saved_tensors(original_dir), saved_tensors(merged_dir)
    expected, differs = {}, 0
    for key, tensor in original.items():
        owner = next(((layer, p) for layer, p in prefixes.items() if key.startswith(p + ".")), None)
        if owner is None:
            expected[key] = tensor
            continue
        layer, prefix = owner
        rest = key[len(prefix) + 1:]
        if rest.startswith("experts."):
            expert, tail = rest[len("experts."):].split(".", 1)
            firsts = [c[0] for c in clusters[layer]]
            if int(expert) not in firsts:
                continue  # a non-first member: folded into its cluster's merged expert
            i = firsts.index(int(expert))
            members = clusters[layer][i]
            sources = [original[f"{prefix}.experts.{j}.{tail}"] for j in members]
            f = [usage[layer][j] for j in members]
            expected[f"{prefix}.experts.{i}.{tail}"] = fuse(sources, f, tensor.dtype)
            if len(members) == 1:
                assert torch.equal(expected[f"{prefix}.experts.{i}.{tail}"], tensor)
            elif tensor.dtype == torch.bfloat16:
                acc = sources[0].double() * float(f[0])
                for s, fj in zip(sources[1:], f[1:]):
                    acc = acc + s.double() * float(fj)
                differs += double_rounding_differs(acc / float(sum(f)))
        elif rest.startswith("gate."):
            expected[key] = tensor[[dominant(c, usage[layer]) for c in clusters[layer]]]
        else:  # the shared expert and its gate
            expected[key] = tensor
    assert sorted(merged) == sorted(expected), set(merged) ^ set(expected)
    for key, tensor in expected.items():
        assert merged[key].dtype == tensor.dtype and torch.equal(merged[key], tensor), key
    with open(f"{merged_dir}/config.json", encoding="utf-8") as f:
        assert json.load(f)[count_key] == count
    return differs


@torch.no_grad()
def model_reference(name, stats):
    directory = f"{FIXTURES}/models/{name}"
    with open(f"{FIXTURES}/records/{name}.json", encoding="utf-8") as f:
        original_record = json.load(f)
    model = load_reference(directory)
    dtypes = {t.dtype for t in saved_tensors(directory).values()}
    assert len(dtypes) == 1, dtypes
    disk_dtype = dtypes.pop()
    k = model.config.num_experts_per_tok
    count_key = expert_count_key(model.config)
    n = getattr(model.config, count_key)

    assert stats["model"] == directory and stats["num_experts_per_tok"] == k
    usage = {layer["layer"]: layer["counts"] for layer in stats["layers"]}
    clusters = CLUSTERS[name]
    assert sorted(usage) == sorted(clusters) == [layer for layer, _ in sparse_blocks(model)]
    for layer, cs in clusters.items():
        assert len(usage[layer]) == n and all(isinstance(c, int) and c >= 0 for c in usage[layer])
        check_clusters(cs, n, k)

    # The unmerged model reproduces its committed perplexity: same ids, windows and code.
    ppl = original_record["perplexity"]
    again = perplexity_record(model, ppl["input_ids"], ppl["seq_len"])["perplexity"]
    assert abs(again - ppl["perplexity"]) <= 1e-12 * ppl["perplexity"], (again, ppl["perplexity"])

    identical_checked = check_identical_experts(model, clusters, usage, disk_dtype)
    merged = merge(model, clusters, usage, disk_dtype)
    count = getattr(merged.config, count_key)
    prefixes = block_prefixes(model)
    cases = [case["input_ids"] for case in original_record["forward"][:FORWARD_CASES]]

    with tempfile.TemporaryDirectory() as tmp:
        copy.deepcopy(merged).to(disk_dtype).save_pretrained(tmp, safe_serialization=True)
        double_rounding = check_saved_merge(directory, tmp, prefixes, clusters, usage, count_key, count)
        reloaded, info = AutoModelForCausalLM.from_pretrained(
            tmp, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
        reloaded.eval()
        assert all(not v for v in info.values()), info
        assert getattr(reloaded.config, count_key) == count
        assert reloaded.config.num_experts_per_tok == k
        assert all(block.gate.out_features == count and len(block.experts) == count
                   for _, block in sparse_blocks(reloaded))
        # As in record_prune_reference.py: mmapped float32 tensors at unaligned offsets make the
        # CPU matrix product round differently; in fresh memory the logits are bitwise equal.
        as_loaded = [reloaded(input_ids=torch.tensor([ids]), use_cache=False).logits for ids in cases]
        for parameter in reloaded.parameters():
            parameter.data = parameter.data.clone()
    for ids, loaded in zip(cases, as_loaded):
        a = merged(input_ids=torch.tensor([ids]), use_cache=False).logits
        b = reloaded(input_ids=torch.tensor([ids]), use_cache=False).logits
        assert torch.equal(a, b), (name, float((a - b).abs().max()))
        torch.testing.assert_close(loaded, a, atol=1e-5, rtol=0)
    mmap_difference = max(float((loaded - merged(input_ids=torch.tensor([ids]), use_cache=False).logits)
                                .abs().max()) for ids, loaded in zip(cases, as_loaded))

    # Layer 0's input is unchanged by merging, so its router logits are the original's columns at
    # the dominant members (to float32 rounding: the narrower product need not round the same).
    first = sparse_blocks(model)[0][0]
    dom_first = [dominant(c, usage[first]) for c in clusters[first]]
    probe_before, probe_after = RouterProbe(model), RouterProbe(reloaded)
    router_difference = 0.0
    for ids in cases:
        model(input_ids=torch.tensor([ids]), use_cache=False)
        reloaded(input_ids=torch.tensor([ids]), use_cache=False)
        before = probe_before.captured[first, "logits"][:, dom_first]
        after = probe_after.captured[first, "logits"]
        torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
        router_difference = max(router_difference, float((after - before).abs().max()))
    probe_before.remove()

    results = [forward_record(reloaded, probe_after, ids) for ids in cases]  # asserts the block rebuild
    probe_after.remove()
    forward = [record for record, _ in results]
    gaps = []  # router-logit gap k/k+1 over the perplexity windows too, for the summary

    def gap_hook(module, inputs, output):
        ranked = torch.sort(output, dim=-1, descending=True).values
        gaps.append(float((ranked[:, k - 1] - ranked[:, k]).min()))
    handles = [block.gate.register_forward_hook(gap_hook) for _, block in sparse_blocks(reloaded)]
    perplexity = perplexity_record(reloaded, ppl["input_ids"], ppl["seq_len"])
    for handle in handles:
        handle.remove()
    record = {"model": directory, "dtype": str(disk_dtype).removeprefix("torch."),
              "expert_count_key": count_key, "original_num_experts": n, "num_experts": count,
              "num_experts_per_tok": k, "fusing": "average", "router": "dominant",
              "clusters": [{"layer": layer, "clusters": cs,
                            "dominant": [dominant(c, usage[layer]) for c in cs],
                            "usage": usage[layer]} for layer, cs in sorted(clusters.items())],
              "forward": forward, "perplexity": perplexity}
    facts = {"min_logit_gap": min(gap for _, gap in results), "perplexity_min_logit_gap": min(gaps),
             "perplexity": perplexity["perplexity"], "unmerged_perplexity": ppl["perplexity"],
             "mmap_difference": mmap_difference, "router_difference": router_difference,
             "identical_checked": identical_checked, "double_rounding": double_rounding}
    return record, facts


def main():
    torch.set_num_threads(1)  # one reduction order, so reruns give identical bytes
    started = time.perf_counter()
    # torch's float64 -> bf16 cast rounds twice (via float32): a probe where that matters.
    probe = torch.tensor([1 + 2 ** -8 + 2 ** -40], dtype=torch.float64)
    assert probe.to(torch.bfloat16).item() == 1.0 and double_rounding_differs(probe) == 1
    with open(STATS, encoding="utf-8") as f:
        stats = json.load(f)["models"]
    models, facts = {}, {}
    for name in CLUSTERS:
        models[name], facts[name] = model_reference(name, stats[name])
    write_json(OUT, {"versions": versions(), "models": models})
    for name, f in facts.items():
        m = models[name]
        print(f"{name} ({m['dtype']}): {m['expert_count_key']} {m['original_num_experts']} -> "
              f"{m['num_experts']}, perplexity {f['unmerged_perplexity']:.6g} -> {f['perplexity']:.6g}, "
              f"min router-logit gap k/k+1 {f['min_logit_gap']:.2g} (forward), "
              f"{f['perplexity_min_logit_gap']:.2g} (perplexity); max |logit| difference as mmapped "
              f"{f['mmap_difference']:.2g}; layer-0 router logits vs dominant columns "
              f"{f['router_difference']:.2g}; identical-expert merges checked {f['identical_checked']}; "
              f"bf16 elements where one rounding would differ {f['double_rounding']}")
    print(f"wrote {OUT} ({os.path.getsize(OUT):,} bytes) in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
