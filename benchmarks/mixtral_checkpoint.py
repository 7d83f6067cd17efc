"""The small random Mixtral-layout checkpoint of the attention benchmark (issue 13), and its F32
GGUF for llama.cpp.

Shapes: hidden 1024, 4 layers, 32 experts of width 512, top-4, 8 query heads and 2 KV heads of
head_dim 128 (Mixtral's head_dim and 4:1 grouping), vocab 32000 with the Mistral tokenizer, bf16,
untied output head, no sliding window. Written by transformers itself (MixtralForCausalLM with its
own N(0, 0.02) initialisation, save_pretrained), so names and layout are transformers'.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MISTRAL_TOKENIZER = REPO.parent / "shared" / "tokenizers" / "mistral" / "tokenizer.json"
GENERATOR_VERSION = 1
COMPLETE_MARKER = ".benchmark-complete.json"

SHAPE = {"hidden": 1024, "layers": 4, "experts": 32, "expert_width": 512, "top_k": 4,
         "heads": 8, "kv_heads": 2, "head_dim": 128, "vocab": 32000}


def mixtral_config() -> dict:
    """MixtralConfig keyword arguments."""
    s = SHAPE
    return {
        "hidden_size": s["hidden"], "intermediate_size": s["expert_width"],
        "num_hidden_layers": s["layers"], "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv_heads"], "head_dim": s["head_dim"],
        "num_local_experts": s["experts"], "num_experts_per_tok": s["top_k"],
        "vocab_size": s["vocab"], "max_position_embeddings": 32768, "rope_theta": 1e6,
        "rms_norm_eps": 1e-5, "sliding_window": None, "tie_word_embeddings": False,
        "hidden_act": "silu", "initializer_range": 0.02, "bos_token_id": 1, "eos_token_id": 2,
        "router_aux_loss_coef": 0.02, "output_router_logits": False,
        "attention_dropout": 0.0, "use_cache": True,
    }


def generate(model_dir: Path, seed: int, log) -> dict:
    """Writes the checkpoint once; a marker with its settings makes later runs reuse it."""
    spec = {"generator_version": GENERATOR_VERSION, "shape": SHAPE, "seed": seed}
    marker = model_dir / COMPLETE_MARKER
    if marker.exists() and json.loads(marker.read_text()).get("spec") == spec:
        return json.loads(marker.read_text())
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    if model_dir.exists():
        shutil.rmtree(model_dir)
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = MixtralForCausalLM(MixtralConfig(**mixtral_config())).to(torch.bfloat16)
    model.save_pretrained(model_dir, safe_serialization=True)
    shutil.copyfile(MISTRAL_TOKENIZER, model_dir / "tokenizer.json")
    (model_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False}, indent=2) + "\n")
    result = {"spec": spec, "parameters": sum(p.numel() for p in model.parameters()),
              "generation_seconds": round(time.perf_counter() - started, 2)}
    marker.write_text(json.dumps(result, indent=2) + "\n")
    log(f"checkpoint written to {model_dir} in {result['generation_seconds']} s")
    return result


def rope_interleaved(weight, heads: int):
    """transformers' q/k rows put each head's two RoPE halves one after the other; llama.cpp's
    `llama` graph rotates adjacent pairs. Reorders each head's rows from (half, i) to (i, half)."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def gguf_vocabulary(tokenizer_json: Path):
    """(pieces, scores, types) in id order for a SentencePiece-style ('llama') GGUF vocabulary.
    Only ids go through llama.cpp here, so scores just follow the id order (earlier merges first)."""
    import gguf

    data = json.loads(tokenizer_json.read_text())
    vocab = data["model"]["vocab"]
    special = {t["id"]: t["content"] for t in data.get("added_tokens", []) if t.get("special")}
    pieces = [None] * len(vocab)
    for piece, index in vocab.items():
        pieces[index] = piece
    types = []
    for index, piece in enumerate(pieces):
        if piece == data["model"].get("unk_token"):
            types.append(gguf.TokenType.UNKNOWN)
        elif index in special:
            types.append(gguf.TokenType.CONTROL)
        elif piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    return pieces, [-float(index) for index in range(len(pieces))], types


def write_f32_gguf(model_dir: Path, path: Path, log) -> None:
    """An F32 GGUF of the checkpoint in llama.cpp's `llama` architecture with stacked experts
    (the names and keys llama.cpp's converter uses for Mixtral). Written once."""
    if path.exists() and path.stat().st_mtime >= (model_dir / COMPLETE_MARKER).stat().st_mtime:
        return
    import gguf
    import numpy as np
    from safetensors.torch import load_file as load_torch

    started = time.perf_counter()
    s = SHAPE
    tensors = {name: t.float().numpy() for name, t in load_torch(str(model_dir / "model.safetensors")).items()}
    writer = gguf.GGUFWriter(str(path) + ".partial", "llama")
    writer.add_name("mixtral-attention-random")
    writer.add_context_length(32768)
    writer.add_embedding_length(s["hidden"])
    writer.add_block_count(s["layers"])
    writer.add_feed_forward_length(s["expert_width"])
    writer.add_head_count(s["heads"])
    writer.add_head_count_kv(s["kv_heads"])
    writer.add_key_length(s["head_dim"])
    writer.add_value_length(s["head_dim"])
    writer.add_rope_dimension_count(s["head_dim"])
    writer.add_rope_freq_base(1e6)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_expert_count(s["experts"])
    writer.add_expert_used_count(s["top_k"])
    writer.add_vocab_size(s["vocab"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    pieces, scores, types = gguf_vocabulary(model_dir / "tokenizer.json")
    writer.add_tokenizer_model("llama")
    writer.add_token_list(pieces)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)

    writer.add_tensor("token_embd.weight", tensors["model.embed_tokens.weight"])
    for layer in range(s["layers"]):
        p, b = f"model.layers.{layer}.", f"blk.{layer}."
        a = p + "self_attn."
        writer.add_tensor(b + "attn_norm.weight", tensors[p + "input_layernorm.weight"])
        writer.add_tensor(b + "attn_q.weight", rope_interleaved(tensors[a + "q_proj.weight"], s["heads"]))
        writer.add_tensor(b + "attn_k.weight", rope_interleaved(tensors[a + "k_proj.weight"], s["kv_heads"]))
        writer.add_tensor(b + "attn_v.weight", tensors[a + "v_proj.weight"])
        writer.add_tensor(b + "attn_output.weight", tensors[a + "o_proj.weight"])
        writer.add_tensor(b + "ffn_norm.weight", tensors[p + "post_attention_layernorm.weight"])
        m = p + "block_sparse_moe."
        writer.add_tensor(b + "ffn_gate_inp.weight", tensors[m + "gate.weight"])
        for gguf_name, hf_name in (("ffn_gate_exps", "w1"), ("ffn_down_exps", "w2"), ("ffn_up_exps", "w3")):
            stacked = np.stack([tensors[f"{m}experts.{e}.{hf_name}.weight"] for e in range(s["experts"])])
            writer.add_tensor(b + gguf_name + ".weight", stacked)
    writer.add_tensor("output_norm.weight", tensors["model.norm.weight"])
    writer.add_tensor("output.weight", tensors["lm_head.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    Path(str(path) + ".partial").rename(path)
    log(f"F32 GGUF written to {path} in {time.perf_counter() - started:.1f} s")
