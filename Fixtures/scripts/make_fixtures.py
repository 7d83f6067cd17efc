"""Ground-truth fixtures for moe-compress, made by Hugging Face transformers and tokenizers.

Run from the repository root:  python3 Fixtures/scripts/make_fixtures.py
(pinned versions: Fixtures/requirements.txt; corpus: Debian package python3.11-doc)

Writes, deterministically:
  Fixtures/tokenizers/{bytelevel-bpe,sentencepiece-bpe}/tokenizer.json   two tiny trained tokenizers
  Fixtures/records/tokenizers/<name>.json   ids from `tokenizers` for those two and the real ones in ../shared
  Fixtures/models/<name>/                   tiny random MoE checkpoints saved by transformers
  Fixtures/records/<name>.json              logits, routing and perplexity computed by transformers
"""
import glob
import json
import math
import os
import shutil

import numpy as np
import safetensors
import tokenizers
import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    MixtralConfig,
    MixtralForCausalLM,
    OlmoeConfig,
    OlmoeForCausalLM,
    Qwen2MoeConfig,
    Qwen2MoeForCausalLM,
    Qwen3MoeConfig,
    Qwen3MoeForCausalLM,
)

FIXTURES = "Fixtures"
SHARED_TOKENIZERS = "../shared/tokenizers"
CORPUS_FILES = "/usr/share/doc/python3.11/html/_sources/tutorial/*.rst.txt"

# The pre-tokenizer split of Qwen2/Qwen2.5/Qwen3 (as in their tokenizer.json).
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
EOS = "<|endoftext|>"
VOCAB = 512  # bytelevel-bpe: 256 bytes + 255 merges + EOS; every tiny model uses it


# ---------------------------------------------------------------------------------------------
# Output helpers

def round7(values):
    """Nested lists of floats rounded to 7 significant digits (float32 carries ~7.2)."""
    if isinstance(values, list):
        return [round7(v) for v in values]
    return float(f"{values:.7g}")


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def versions():
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__}


# ---------------------------------------------------------------------------------------------
# Tokenizers

def corpus_lines():
    lines = []
    for path in sorted(glob.glob(CORPUS_FILES)):
        with open(path, encoding="utf-8") as f:
            lines.extend(f.read().splitlines())
    assert lines, f"corpus missing: install python3.11-doc ({CORPUS_FILES})"
    return lines


def build_bytelevel_bpe(lines):
    """GPT-2/Qwen style: NFC, Qwen split regex then byte-to-unicode mapping, EOS added last like Qwen."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = tokenizers.normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - 1, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer)
    tok.add_special_tokens([EOS])
    assert tok.get_vocab_size() == VOCAB and tok.token_to_id(EOS) == VOCAB - 1
    return tok


def build_sentencepiece_bpe(lines):
    """Llama/Mistral style: Metaspace, byte fallback to <0xXX> pieces at ids 3..258, <s> prepended."""
    specials = ["<unk>", "<s>", "</s>"]
    byte_pieces = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    # Train with split=True so merges stay inside words, as SentencePiece's do.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tok.decoder = decoders.Sequence([
        decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[("<s>", 1)])
    # Passing the byte pieces as trainer specials reserves their ids; a small alphabet leaves
    # most non-ASCII characters (and DEL) out of the vocab so byte fallback gets exercised.
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=specials + byte_pieces, limit_alphabet=80,
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer)

    spec = json.loads(tok.to_str())
    # In Llama/Mistral files the byte pieces are ordinary vocab entries, not added tokens.
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] in specials]
    spec["pre_tokenizer"]["split"] = False  # as Mistral's tokenizer.json ships it
    tok = Tokenizer.from_str(json.dumps(spec))
    vocab = tok.get_vocab()
    assert [vocab[p] for p in specials + byte_pieces] == list(range(259))
    assert "\x7f" not in vocab and "é" not in vocab
    return tok


def tokenizer_texts(lines):
    """The texts every tokenizer record encodes; one reStructuredText paragraph comes from the corpus."""
    paragraphs = "\n".join(lines).split("\n\n")
    rst = next(p for p in paragraphs if "``" in p and ":ref:" in p and len(p) > 200)
    return [
        "The quick brown fox jumps over the lazy dog.",
        "Hello, world! How are you doing today?",
        rst,
        "café naïve Ångström façade",
        "e\u0301 A\u030a",
        "中文分词测试 日本語のテキスト 한국어",
        "👨‍👩‍👧‍👦 🇯🇵🇫🇷 👍🏽👋🏿 🤗",
        "a   b",
        "\t\tx",
        "line1\n\n\nline2",
        "   leading and trailing   ",
        "  ",
        " ",
        "1234567890 3.14159 2026-11-23",
        "a1b22c333",
        "don't I'LL we've They'RE",
        "def f(x):\n    if x:\n        return x * 2\n    return None\n",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ꙮ a\u2028b \x7f",
        "",
        "hello <|endoftext|> world",
        "<s> hi </s>",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "مرحبا بالعالم שלום עולם नमस्ते दुनिया สวัสดีชาวโลก",
        "Mixed CASE words, UPPER lower, and punctuation... (parentheses) [brackets] {braces}!?",
        "x = {'key': [1, 2.5, -3e10]}  # comment\r\nprint(x)",
    ]


def tokenizer_record(path, texts):
    tok = Tokenizer.from_file(path)
    cases = [{"text": text,
              "ids": tok.encode(text, add_special_tokens=False).ids,
              "ids_with_special_tokens": tok.encode(text, add_special_tokens=True).ids}
             for text in texts]
    return {"tokenizer": path, "tokenizers_version": tokenizers.__version__, "cases": cases}


def make_tokenizers():
    lines = corpus_lines()
    built = {"bytelevel-bpe": build_bytelevel_bpe(lines), "sentencepiece-bpe": build_sentencepiece_bpe(lines)}
    paths = {}
    for name, tok in built.items():
        paths[name] = f"{FIXTURES}/tokenizers/{name}/tokenizer.json"
        os.makedirs(os.path.dirname(paths[name]), exist_ok=True)
        tok.save(paths[name])
    for name in ["qwen3", "mistral", "olmoe", "deepseek_v3"]:
        paths[name] = f"{SHARED_TOKENIZERS}/{name}/tokenizer.json"

    texts = tokenizer_texts(lines)
    written = [paths["bytelevel-bpe"], paths["sentencepiece-bpe"]]
    for name, path in paths.items():
        out = f"{FIXTURES}/records/tokenizers/{name}.json"
        write_json(out, tokenizer_record(path, texts))
        written.append(out)
    sp = Tokenizer.from_file(paths["sentencepiece-bpe"])
    assert any(i < 259 for i in sp.encode("ꙮ 中文").ids), "byte fallback not exercised"
    return paths["bytelevel-bpe"], written


# ---------------------------------------------------------------------------------------------
# Tiny checkpoints

SINGLE_FILE, SHARDED = "10MB", "150KB"  # ~420 KB of bf16 weights -> 3 shards
COMMON = dict(vocab_size=VOCAB, hidden_size=64, max_position_embeddings=512, bos_token_id=VOCAB - 1,
              eos_token_id=VOCAB - 1, pad_token_id=None)

# name -> (model class, config, dtype on disk, max_shard_size). rms_norm_eps differs per model; OLMoE's
# is large enough that an implementation ignoring the configured value misses by more than float noise.
MODELS = {
    "tiny-mixtral": (MixtralForCausalLM, MixtralConfig(
        **COMMON, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=32,
        num_local_experts=8, num_experts_per_tok=2, rope_theta=1e6, rms_norm_eps=1e-5,
        tie_word_embeddings=False), torch.float32, SINGLE_FILE),
    "tiny-qwen2-moe": (Qwen2MoeForCausalLM, Qwen2MoeConfig(
        **COMMON, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4, intermediate_size=96,
        moe_intermediate_size=32, shared_expert_intermediate_size=64, num_experts=4, num_experts_per_tok=2,
        norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[1], qkv_bias=True, rope_theta=10000.0,
        rms_norm_eps=1e-6, tie_word_embeddings=False), torch.bfloat16, SHARDED),
    "tiny-qwen3-moe": (Qwen3MoeForCausalLM, Qwen3MoeConfig(
        **COMMON, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
        intermediate_size=96, moe_intermediate_size=16, num_experts=8, num_experts_per_tok=3,
        norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[], rope_theta=1e6, rms_norm_eps=3e-6,
        tie_word_embeddings=True), torch.bfloat16, SINGLE_FILE),
    "tiny-olmoe": (OlmoeForCausalLM, OlmoeConfig(
        **COMMON, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, intermediate_size=16,
        num_experts=8, num_experts_per_tok=2, norm_topk_prob=False, clip_qkv=2.5, rope_theta=50000.0,
        rms_norm_eps=1e-3, tie_word_embeddings=False), torch.float32, SINGLE_FILE),
}


def sparse_blocks(model):
    """(layer index, sparse MoE block) for every MoE layer; dense layers have no router."""
    blocks = []
    for index, layer in enumerate(model.model.layers):
        block = getattr(layer, "block_sparse_moe", None) or layer.mlp
        if hasattr(block, "gate") and hasattr(block, "experts"):
            blocks.append((index, block))
    return blocks


@torch.no_grad()
def reinitialise(model, generator):
    """Transformers' std-0.02 init gives near-equal router logits, so top-k would be decided by noise.

    Embeddings go last because a tied lm_head shares their tensor; when tied they get std
    hidden**-0.5 instead of 1 so that the logits stay O(1) like the untied models'.
    """
    def normal(tensor, std):
        tensor.copy_(torch.randn(tensor.shape, generator=generator) * std)

    routers = {id(block.gate) for _, block in sparse_blocks(model)}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            normal(module.weight, 0.5 if id(module) in routers else module.in_features ** -0.5)
            if module.bias is not None:
                normal(module.bias, 0.1)
        elif type(module).__name__.endswith("RMSNorm"):
            module.weight.copy_(1 + 0.1 * torch.randn(module.weight.shape, generator=generator))
        else:
            assert not list(module.parameters(recurse=False)) or isinstance(module, torch.nn.Embedding), name
    tied = model.config.tie_word_embeddings
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            normal(module.weight, module.embedding_dim ** -0.5 if tied else 1.0)


def write_tokenizer_files(directory, tokenizer_path):
    shutil.copyfile(tokenizer_path, f"{directory}/tokenizer.json")
    write_json(f"{directory}/tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": EOS, "pad_token": EOS,
        "model_max_length": 512, "clean_up_tokenization_spaces": False})
    loaded = AutoTokenizer.from_pretrained(directory)
    assert loaded("don't stop", add_special_tokens=False)["input_ids"] == \
        Tokenizer.from_file(tokenizer_path).encode("don't stop", add_special_tokens=False).ids


def save_checkpoint(name, tokenizer_path, seed):
    model_class, config, dtype, max_shard_size = MODELS[name]
    model = model_class(config).eval()
    reinitialise(model, torch.Generator().manual_seed(seed))
    directory = f"{FIXTURES}/models/{name}"
    shutil.rmtree(directory, ignore_errors=True)
    model.to(dtype).save_pretrained(directory, safe_serialization=True, max_shard_size=max_shard_size)
    write_tokenizer_files(directory, tokenizer_path)
    return directory


def stored_dtypes(directory):
    dtypes = {}
    for path in sorted(glob.glob(f"{directory}/*.safetensors")):
        with safetensors.safe_open(path, "pt") as f:
            for key in f.keys():
                dtypes[key] = f.get_slice(key).get_dtype()
    return dtypes


def check_checkpoint(name, directory):
    """The on-disk layout the Swift loader is tested against; returns facts for the summary."""
    _, config, dtype, max_shard_size = MODELS[name]
    tensors = stored_dtypes(directory)
    expected_dtype = {torch.float32: "F32", torch.bfloat16: "BF16"}[dtype]
    assert set(tensors.values()) == {expected_dtype}, set(tensors.values())
    expert = {"tiny-mixtral": "model.layers.0.block_sparse_moe.experts.3.w1.weight"}.get(
        name, "model.layers.0.mlp.experts.3.gate_proj.weight")
    assert expert in tensors, expert
    assert not any("experts.gate_up_proj" in k or k.endswith("experts.down_proj") for k in tensors)
    # save_pretrained drops the tied lm_head.weight; readers must fall back to embed_tokens.
    assert ("lm_head.weight" in tensors) != config.tie_word_embeddings
    if name == "tiny-qwen2-moe":  # layer 1 is dense (mlp_only_layers); MoE layers carry the shared expert
        assert "model.layers.1.mlp.gate_proj.weight" in tensors and "model.layers.1.mlp.gate.weight" not in tensors
        assert "model.layers.0.mlp.shared_expert_gate.weight" in tensors
        assert "model.layers.0.self_attn.q_proj.bias" in tensors

    shards = sorted(os.path.basename(p) for p in glob.glob(f"{directory}/*.safetensors"))
    if max_shard_size == SHARDED:
        assert len(shards) >= 3 and os.path.exists(f"{directory}/model.safetensors.index.json"), shards
    else:
        assert shards == ["model.safetensors"], shards
    return {"shards": len(shards), "tensors": len(tensors),
            "lm_head_saved": "lm_head.weight" in tensors, "tied": config.tie_word_embeddings}


def load_reference(directory):
    """transformers computing in float32 from the weights exactly as stored."""
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager")
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Records

def renormalises(config):
    # Mixtral always renormalises the top-k; Qwen2-MoE, Qwen3-MoE and OLMoE only if norm_topk_prob.
    return config.model_type == "mixtral" or config.norm_topk_prob


def derive_top_k(router_logits, k, renormalise):
    """The routing of the 4.57 sparse blocks: float32 softmax over all experts, topk, optional renorm."""
    probs = torch.softmax(router_logits, dim=-1, dtype=torch.float32)
    weights, index = torch.topk(probs, k, dim=-1)
    if renormalise:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    ranked = torch.sort(probs, dim=-1, descending=True).values
    margin = ranked[:, k - 1] - ranked[:, k]
    return index, weights, margin


def recompute_block(block, x, index, weights):
    """Block output rebuilt from the derived routing, to prove the derivation is the block's."""
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for e, w in zip(index[t].tolist(), weights[t]):
            out[t] += w * block.experts[e](x[t:t + 1])[0]
    if hasattr(block, "shared_expert"):  # Qwen2-MoE: sigmoid-gated shared expert
        out += torch.sigmoid(block.shared_expert_gate(x)) * block.shared_expert(x)
    return out


class RouterProbe:
    """Forward hooks on each sparse block and its router, cleared per forward call."""

    def __init__(self, model):
        self.blocks = sparse_blocks(model)
        self.captured = {}
        self.handles = []
        for layer, block in self.blocks:
            self.handles.append(block.gate.register_forward_hook(self._hook(layer, "logits")))
            self.handles.append(block.register_forward_hook(self._hook(layer, "block")))

    def _hook(self, layer, kind):
        def hook(module, inputs, output):
            if kind == "logits":
                self.captured[layer, kind] = output.detach().clone()
            else:
                self.captured[layer, kind] = (inputs[0].detach().clone(), output[0].detach().clone(),
                                              output[1].detach().clone())
        return hook

    def remove(self):
        for handle in self.handles:
            handle.remove()


class ClipCounter:
    """Counts OLMoE q/k/v values beyond clip_qkv, read before the in-place clamp."""

    def __init__(self, model):
        self.clip = model.config.clip_qkv
        self.clipped = self.total = 0
        self.handles = [m.register_forward_hook(self._hook) for layer in model.model.layers
                        for m in (layer.self_attn.q_norm, layer.self_attn.k_norm, layer.self_attn.v_proj)]

    def _hook(self, module, inputs, output):
        self.clipped += int((output.abs() > self.clip).sum())
        self.total += output.numel()

    def remove(self):
        for handle in self.handles:
            handle.remove()


@torch.no_grad()
def forward_record(model, probe, ids):
    probe.captured.clear()
    logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
    config = model.config
    routing, logit_gaps = [], []
    for layer, block in probe.blocks:
        router_logits = probe.captured[layer, "logits"]
        x, block_out, block_logits = probe.captured[layer, "block"]
        assert torch.equal(router_logits, block_logits)
        k = config.num_experts_per_tok
        index, weights, margin = derive_top_k(router_logits, k, renormalises(config))
        x = x.reshape(-1, x.shape[-1])
        rebuilt = recompute_block(block, x, index, weights)
        torch.testing.assert_close(rebuilt, block_out.reshape(x.shape), atol=1e-5, rtol=0)
        ranked_logits = torch.sort(router_logits, dim=-1, descending=True).values
        logit_gaps.append(float((ranked_logits[:, k - 1] - ranked_logits[:, k]).min()))
        routing.append({"layer": layer, "top_k_index": index.tolist(), "top_k_weights": round7(weights.tolist()),
                        "top_k_margin": round7(margin.tolist())})
    record = {"input_ids": ids, "logits": round7(logits.tolist()), "routing": routing}
    return record, min(logit_gaps)


@torch.no_grad()
def perplexity_record(model, ids, seq_len):
    """Non-overlapping windows of seq_len+1 ids stepping by seq_len: each id after the first predicted once."""
    nll, predicted = 0.0, 0
    for start in range(0, len(ids) - 1, seq_len):
        window = ids[start:start + seq_len + 1]
        logits = model(input_ids=torch.tensor([window]), use_cache=False).logits[0]
        log_probs = torch.log_softmax(logits[:-1].double(), dim=-1)
        targets = torch.tensor(window[1:])
        nll -= float(log_probs[torch.arange(len(targets)), targets].sum())
        predicted += len(targets)
    assert predicted == len(ids) - 1
    return {"input_ids": ids, "seq_len": seq_len, "tokens": len(ids), "perplexity": math.exp(nll / predicted)}


def input_cases(rng, vocab):
    cases = [rng.integers(0, vocab, size=n).tolist() for n in (1, 7, 24)]
    # Both ends of the embedding table appear.
    cases[1][2], cases[1][5] = 0, vocab - 1
    cases[2][9], cases[2][20] = vocab - 1, 0
    return cases


def model_record(name, directory, seed):
    model = load_reference(directory)
    rng = np.random.default_rng(seed)
    probe = RouterProbe(model)
    clips = ClipCounter(model) if model.config.model_type == "olmoe" else None
    results = [forward_record(model, probe, ids) for ids in input_cases(rng, model.config.vocab_size)]
    forward, logit_gaps = [r for r, _ in results], [g for _, g in results]
    probe.remove()
    if clips:
        clips.remove()
        assert clips.clipped > 0, "clip_qkv never triggered"
    perplexity = perplexity_record(model, rng.integers(0, model.config.vocab_size, size=70).tolist(), 16)
    record = {"model": directory, "versions": versions(), "forward": forward, "perplexity": perplexity}
    write_json(f"{FIXTURES}/records/{name}.json", record)
    margins = [m for case in forward for r in case["routing"] for m in r["top_k_margin"]]
    return {"min_margin": min(margins), "min_logit_gap": min(logit_gaps), "perplexity": perplexity["perplexity"],
            "clipped": f"{clips.clipped}/{clips.total}" if clips else None}


# ---------------------------------------------------------------------------------------------

def size_of(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(p) for p in glob.glob(f"{path}/**", recursive=True) if os.path.isfile(p))
    return os.path.getsize(path)


def main():
    torch.set_num_threads(1)  # one reduction order, so reruns give identical bytes
    tokenizer_path, written = make_tokenizers()

    facts = {}
    for seed, name in enumerate(MODELS, start=1):
        directory = save_checkpoint(name, tokenizer_path, seed)
        facts[name] = check_checkpoint(name, directory) | model_record(name, directory, seed)
        written += [directory, f"{FIXTURES}/records/{name}.json"]

    total = 0
    for path in written:
        total += size_of(path)
        print(f"{size_of(path):>9,}  {path}")
    print(f"{total:>9,}  total")
    for name, f in facts.items():
        print(f"{name}: {f['shards']} shard(s), {f['tensors']} tensors, lm_head.weight saved={f['lm_head_saved']}"
              f" (tied={f['tied']}), min top_k_margin={f['min_margin']:.3g}"
              f" (min router-logit gap k/k+1={f['min_logit_gap']:.3g}), perplexity={f['perplexity']:.4g}"
              + (f", clip_qkv hits={f['clipped']}" if f["clipped"] else ""))


if __name__ == "__main__":
    main()
