"""Expert pruning with a different number of experts per layer (moe-compress `prune --budget
global`), done by transformers on the tiny fixtures and loaded back through the modeling file
moe-compress ships (Sources/Pruning/Resources/modeling_moe_compress.py) with trust_remote_code.

Run from the repository root after make_fixtures.py:
    /work/venv/bin/python Fixtures/scripts/record_per_layer_prune.py     (~10 s, most of it importing torch)
(any environment with Fixtures/requirements.txt works; one thread, so reruns give identical bytes)

For each tiny fixture and the fixed keep plan in KEEP (per sparse layer, sorted original expert
ids; the sparse layers keep different numbers, each at least num_experts_per_tok and fewer than
the original count; Qwen2-MoE's layer 2 keeps exactly num_experts_per_tok):
  - load it as make_fixtures.py's records do (float32 from the weights as stored, eager attention)
    and prune each sparse block as record_prune_reference.py does (its prune_block: kept experts in
    original order renumbered 0..K-1, router rows and bias sliced, the block's count set);
  - save_pretrained to a temporary directory in the fixture's on-disk dtype, then write the
    per-layer format into config.json as moe-compress does (everything else as transformers saved
    it, `model_type` and `architectures` the family's):
        S              = the largest kept count  (S: num_local_experts for Mixtral, num_experts
                                                  for Qwen2-MoE, Qwen3-MoE and OLMoE)
        S + "_per_layer" = [kept count of each decoder layer, 0 for a dense layer]
        auto_map       = {"AutoModelForCausalLM": "modeling_moe_compress.MoECompressForCausalLM"}
    and copy modeling_moe_compress.py beside it;
  - reload it with AutoModelForCausalLM.from_pretrained(tmp, trust_remote_code=True,
    output_loading_info=True) in float32 and record what the reloaded model computes.
Checks (assertions):
  - missing, unexpected and mismatched keys and error messages are all empty on reload; the
    reloaded model is an instance of the family's stock class and its sparse layers have the
    plan's router rows and expert counts; AutoConfig gives the stock config class;
  - every tensor saved is, byte for byte, the original tensor it came from (record_prune_reference's
    check_saved), nothing missing, dtypes the original ones;
  - the reloaded model's logits are equal (torch.equal) to the in-memory pruned model's once its
    parameters are copied into freshly allocated memory; as loaded (mmapped) within 1e-5;
  - the routing derived from the router logits rebuilds each pruned block's output, and the first
    sparse layer's router logits equal the unpruned model's at the kept columns (within 1e-5);
  - loaded with dtype="auto" (bf16 for the Qwen fixtures) the loading info is clean and every
    parameter is the saved tensor, dtype and bytes;
  - the stock loader (no trust_remote_code) refuses the checkpoint (size mismatch), so it cannot be
    silently misread;
  - save_pretrained of the reloaded model writes the same format (config keys, architectures,
    the modeling file) and that loads to the same logits;
  - the unpruned model reproduces the committed record's perplexity.

Writes Fixtures/records/per-layer-prune.json (the checkpoints themselves are not kept):
  versions, modeling_file {path, sha256} (the file this record was made with), and per model:
  model, expert_count_key (S), per_layer_key (S_per_layer), original_num_experts,
  num_experts (= config[S], the largest count), num_experts_per_layer, num_experts_per_tok,
  config (exactly the keys moe-compress writes into config.json, with their values),
  keep [{layer, experts: kept original ids}], and, computed by the reloaded model (parameters in
  fresh memory, so bitwise the in-memory pruned model), `forward` for the first two forward cases'
  ids of Fixtures/records/<name>.json and `perplexity` over that record's perplexity ids and
  seq_len, in the JSON shapes of prune-reference.json (top_k_index in the NEW numbering of each
  layer). One extension of the shape: in a layer that keeps exactly num_experts_per_tok experts
  there is no (k+1)-th expert, so its top_k_margin is the k-th probability (the gap to an
  expert of probability 0).
"""
import atexit
import copy
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

# transformers copies remote code into HF_MODULES_CACHE (read when it is imported); keep those
# copies, one per temporary checkpoint, out of ~/.cache.
MODULES = tempfile.mkdtemp(prefix="hf-modules-")
atexit.register(shutil.rmtree, MODULES, ignore_errors=True)
os.environ["HF_MODULES_CACHE"] = MODULES

import torch  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import (  # noqa: E402
    FIXTURES, RouterProbe, derive_top_k, load_reference, perplexity_record, recompute_block,
    renormalises, round7, sparse_blocks, versions, write_json)
from record_prune_reference import (  # noqa: E402
    FORWARD_CASES, block_prefixes, check_saved, expert_count_key, prune_layers, saved_tensors)

OUT = f"{FIXTURES}/records/per-layer-prune.json"
MODELING_FILE = "Sources/Pruning/Resources/modeling_moe_compress.py"
AUTO_MAP = {"AutoModelForCausalLM": "modeling_moe_compress.MoECompressForCausalLM"}

# Per model: sparse layer -> kept original expert ids (sorted), a different count in each sparse
# layer; each model drops expert 0 in some layer and its last expert in some layer; the largest
# count is in the first sparse layer for two models and in the last for the other two.
KEEP = {
    "tiny-mixtral": {0: [0, 2, 3, 4, 5, 6], 1: [1, 4, 7]},                   # 8 experts, top-2 -> 6, 3
    "tiny-qwen2-moe": {0: [0, 2, 3], 2: [1, 2]},                             # 4, top-2 -> 3, (dense), 2
    "tiny-qwen3-moe": {0: [1, 3, 4, 6], 1: [0, 1, 2, 3, 4, 5, 6]},           # 8, top-3 -> 4, 7
    "tiny-olmoe": {0: [1, 2, 5], 1: [0, 2, 3, 4, 5, 6, 7]},                  # 8, top-2 -> 3, 7
}


def per_layer_config(config, keep):
    """The keys moe-compress writes into config.json for the plan keep, with their values."""
    key = expert_count_key(config)
    counts = [len(keep.get(layer, [])) for layer in range(config.num_hidden_layers)]
    return {key: max(counts), key + "_per_layer": counts, "auto_map": AUTO_MAP}


def write_per_layer_format(directory, written):
    """config.json edited as moe-compress writes it, and the modeling file copied beside it."""
    path = f"{directory}/config.json"
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    config.update(written)
    with open(path, "w", encoding="utf-8") as f:  # as transformers writes it
        f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
    shutil.copy(MODELING_FILE, directory)


def load_per_layer(directory, **kwargs):
    model, info = AutoModelForCausalLM.from_pretrained(
        directory, trust_remote_code=True, output_loading_info=True, attn_implementation="eager", **kwargs)
    assert all(not v for v in info.values()), info
    return model.eval()


def top_k(router_logits, k, renormalise):
    """make_fixtures.derive_top_k; a layer of exactly k experts gets a probability-0 (k+1)-th."""
    width = router_logits.shape[-1]
    if width == k:
        router_logits = torch.nn.functional.pad(router_logits, (0, 1), value=-torch.inf)
    index, weights, margin = derive_top_k(router_logits, k, renormalise)
    assert int(index.max()) < width
    return index, weights, margin


def logit_gap(router_logits, k):
    if router_logits.shape[-1] == k:
        return torch.inf
    ranked = torch.sort(router_logits, dim=-1, descending=True).values
    return float((ranked[:, k - 1] - ranked[:, k]).min())


@torch.no_grad()
def forward_record(model, probe, ids):
    """make_fixtures.forward_record (same JSON), with top_k for layers that keep only k experts."""
    probe.captured.clear()
    logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
    config = model.config
    k = config.num_experts_per_tok
    routing, gaps = [], []
    for layer, block in probe.blocks:
        router_logits = probe.captured[layer, "logits"]
        x, block_out, block_logits = probe.captured[layer, "block"]
        assert torch.equal(router_logits, block_logits)
        index, weights, margin = top_k(router_logits, k, renormalises(config))
        x = x.reshape(-1, x.shape[-1])
        rebuilt = recompute_block(block, x, index, weights)
        torch.testing.assert_close(rebuilt, block_out.reshape(x.shape), atol=1e-5, rtol=0)
        gaps.append(logit_gap(router_logits, k))
        routing.append({"layer": layer, "top_k_index": index.tolist(), "top_k_weights": round7(weights.tolist()),
                        "top_k_margin": round7(margin.tolist())})
    return {"input_ids": ids, "logits": round7(logits.tolist()), "routing": routing}, min(gaps)


def check_layers(model, keep):
    blocks = dict(sparse_blocks(model))
    assert sorted(blocks) == sorted(keep), (sorted(blocks), sorted(keep))
    for layer, block in blocks.items():
        assert block.gate.out_features == len(keep[layer]) == len(block.experts) == block.num_experts, layer


@torch.no_grad()
def model_reference(name):
    directory = f"{FIXTURES}/models/{name}"
    with open(f"{FIXTURES}/records/{name}.json", encoding="utf-8") as f:
        original_record = json.load(f)
    keep = KEEP[name]
    model = load_reference(directory)
    stock_class = type(model)
    dtypes = {t.dtype for t in saved_tensors(directory).values()}
    assert len(dtypes) == 1, dtypes
    disk_dtype = dtypes.pop()
    k = model.config.num_experts_per_tok
    counts = {len(ids) for ids in keep.values()}
    assert len(counts) == len(keep) and min(counts) >= k, "a different count in each sparse layer"

    ppl = original_record["perplexity"]
    again = perplexity_record(model, ppl["input_ids"], ppl["seq_len"])["perplexity"]
    assert abs(again - ppl["perplexity"]) <= 1e-12 * ppl["perplexity"], (again, ppl["perplexity"])

    pruned = prune_layers(model, keep)
    count_key = expert_count_key(model.config)
    written = per_layer_config(model.config, keep)
    cases = [case["input_ids"] for case in original_record["forward"][:FORWARD_CASES]]

    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as resaved:
        copy.deepcopy(pruned).to(disk_dtype).save_pretrained(tmp, safe_serialization=True)
        write_per_layer_format(tmp, written)
        check_saved(directory, tmp, block_prefixes(model), keep, count_key, written[count_key])
        with open(f"{tmp}/config.json", encoding="utf-8") as f:
            on_disk = json.load(f)
        assert on_disk["architectures"] == [stock_class.__name__]
        assert on_disk["model_type"] == model.config.model_type
        assert type(AutoConfig.from_pretrained(tmp)) is type(model.config)

        # The stock loader cannot take it: without the modeling file a smaller layer mismatches.
        try:
            AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32)
            raise AssertionError(f"{name}: the stock class loaded a per-layer checkpoint")
        except RuntimeError as error:
            assert "size mismatch" in str(error), error

        # dtype="auto": the checkpoint's own dtype (bf16 for the Qwen fixtures), tensors as saved.
        native = load_per_layer(tmp, dtype="auto")
        check_layers(native, keep)
        saved = saved_tensors(tmp)
        state = native.state_dict()
        for key, tensor in saved.items():
            assert state[key].dtype == tensor.dtype and torch.equal(state[key], tensor), key
        del native, state

        reloaded = load_per_layer(tmp, dtype=torch.float32)
        assert isinstance(reloaded, stock_class) and type(reloaded).__name__ == stock_class.__name__
        assert getattr(reloaded.config, count_key + "_per_layer") == written[count_key + "_per_layer"]
        check_layers(reloaded, keep)
        as_loaded = [reloaded(input_ids=torch.tensor([ids]), use_cache=False).logits for ids in cases]
        for parameter in reloaded.parameters():
            parameter.data = parameter.data.clone()  # off the mmapped file (see record_prune_reference)

        # save_pretrained of the loaded model writes the same format, and it loads back.
        reloaded.save_pretrained(resaved, safe_serialization=True)
        with open(f"{resaved}/config.json", encoding="utf-8") as f:
            again_on_disk = json.load(f)
        assert all(again_on_disk[key] == value for key, value in written.items()), again_on_disk
        assert again_on_disk["architectures"] == [stock_class.__name__]
        with open(f"{resaved}/modeling_moe_compress.py", "rb") as a, open(MODELING_FILE, "rb") as b:
            assert a.read() == b.read()
        resaved_model = load_per_layer(resaved, dtype=torch.float32)
        for parameter in resaved_model.parameters():
            parameter.data = parameter.data.clone()

    mmap_difference = 0.0
    for ids, loaded in zip(cases, as_loaded):
        a = pruned(input_ids=torch.tensor([ids]), use_cache=False).logits
        b = reloaded(input_ids=torch.tensor([ids]), use_cache=False).logits
        assert torch.equal(a, b), (name, float((a - b).abs().max()))
        assert torch.equal(a, resaved_model(input_ids=torch.tensor([ids]), use_cache=False).logits), name
        torch.testing.assert_close(loaded, a, atol=1e-5, rtol=0)
        mmap_difference = max(mmap_difference, float((loaded - a).abs().max()))
    del resaved_model

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
    gaps = []
    handles = [block.gate.register_forward_hook(lambda module, inputs, output: gaps.append(logit_gap(output, k)))
               for _, block in sparse_blocks(reloaded)]
    perplexity = perplexity_record(reloaded, ppl["input_ids"], ppl["seq_len"])
    for handle in handles:
        handle.remove()
    per_layer = written[count_key + "_per_layer"]
    record = {"model": directory, "expert_count_key": count_key, "per_layer_key": count_key + "_per_layer",
              "original_num_experts": getattr(model.config, count_key), "num_experts": written[count_key],
              "num_experts_per_layer": per_layer, "num_experts_per_tok": k, "config": written,
              "keep": [{"layer": layer, "experts": ids} for layer, ids in sorted(keep.items())],
              "forward": [record for record, _ in results], "perplexity": perplexity}
    facts = {"min_logit_gap": min(gap for _, gap in results), "perplexity_min_logit_gap": min(gaps),
             "perplexity": perplexity["perplexity"], "unpruned_perplexity": ppl["perplexity"],
             "mmap_difference": mmap_difference, "router_difference": router_difference}
    return record, facts


def main():
    torch.set_num_threads(1)  # one reduction order, so reruns give identical bytes
    started = time.perf_counter()
    with open(MODELING_FILE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    models, facts = {}, {}
    for name in KEEP:
        models[name], facts[name] = model_reference(name)
    write_json(OUT, {"versions": versions(), "modeling_file": {"path": MODELING_FILE, "sha256": digest},
                     "models": models})
    for name, f in facts.items():
        m = models[name]
        print(f"{name}: {m['expert_count_key']} {m['original_num_experts']} -> {m['num_experts']}, "
              f"{m['per_layer_key']} {m['num_experts_per_layer']}, perplexity {f['unpruned_perplexity']:.6g} -> "
              f"{f['perplexity']:.6g}, min router-logit gap k/k+1 {f['min_logit_gap']:.2g} (forward), "
              f"{f['perplexity_min_logit_gap']:.2g} (perplexity); max |logit| difference as mmapped "
              f"{f['mmap_difference']:.2g}; layer-0 router logits vs unpruned columns "
              f"{f['router_difference']:.2g}")
    print(f"wrote {OUT} ({os.path.getsize(OUT):,} bytes) in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
