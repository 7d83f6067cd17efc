#!/usr/bin/env python3
"""Writes the fuzzers' seed inputs, taken from Fixtures/ and ../shared/tokenizers, into
SEEDS_DIR/{safetensors,index,config,tokenizer,gguf}/ (scripts/fuzz.sh calls this; standard library only).

Safetensors seeds keep each fixture's header (names, dtypes, metadata) but shrink every tensor to at
most 2 elements per dimension, so that mutations land in the header rather than in megabytes of
weights; one small fixture shard is kept whole, and one header is cut off from its data.
"""
import hashlib
import json
import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MOE_COMPRESS_SHARED", ROOT.parent / "shared"))


def write(directory: Path, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # writers pad the header to 8 bytes, as safetensors does
    return struct.pack("<Q", len(text)) + text + data


def shrunk(path: Path) -> bytes:
    """The file's header with every tensor cut to <= 2 per dimension, keeping its first bytes."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    body = raw[8 + length :]
    sizes = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2,
             "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}
    data = bytearray()
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = [min(dimension, 2) for dimension in entry["shape"]]
        count = sizes[entry["dtype"]]
        for dimension in shape:
            count *= dimension
        begin = entry["data_offsets"][0]
        entry["shape"] = shape
        entry["data_offsets"] = [len(data), len(data) + count]
        data += body[begin : begin + count]
    return safetensors_bytes(header, bytes(data))


def trimmed(path: Path, kept_ids: int = 1500) -> bytes:
    """A real tokenizer.json with its vocabulary cut to the first ids and the merges among them.

    Whole, they are megabytes: the fuzzer ran 44 inputs/s on them and its corpus grew by a copy
    per new input. Cut, they keep each family's normalizer, pre-tokenizer, post-processor, decoder
    and added tokens at a few dozen kilobytes.
    """
    tokenizer = json.loads(path.read_bytes())
    model = tokenizer["model"]
    model["vocab"] = {token: id for token, id in model["vocab"].items() if id < kept_ids}
    def pair(merge):
        return merge.split(" ", 1) if isinstance(merge, str) else merge
    model["merges"] = [merge for merge in model["merges"]
                       if all(part in model["vocab"] for part in pair(merge)) and "".join(pair(merge)) in model["vocab"]]
    return json.dumps(tokenizer, ensure_ascii=False).encode()


def gguf_bytes(metadata: list, tensors: list) -> bytes:
    """A GGUF v3 file: metadata as (key, type id, packed value bytes), tensors as (name, ne, ggml type, data)."""
    def string(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, kind, value in metadata:
        out += string(key) + struct.pack("<I", kind) + value
    offset, blobs = 0, []
    for name, dims, kind, data in tensors:
        out += string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", kind, offset)
        blobs.append(data + b"\0" * (-len(data) % 32))
        offset += len(blobs[-1])
    out += b"\0" * (-len(out) % 32)
    return out + b"".join(blobs)


def gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf_from_checkpoint(path: Path) -> bytes:
    """tiny-mixtral (float32) as a `llama` GGUF: names and metadata as moe-compress writes them,
    experts stacked, data copied as F32 (q/k rows not permuted: the numbers do not matter here)."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8: 8 + length])
    data = raw[8 + length:]
    config = json.loads((path.parent / "config.json").read_text())
    def tensor(name):
        entry = header[name]
        start, end = entry["data_offsets"]
        return entry["shape"], data[start:end]
    layers, experts = config["num_hidden_layers"], config["num_local_experts"]
    names = [("token_embd.weight", "model.embed_tokens.weight"), ("output_norm.weight", "model.norm.weight"),
             ("output.weight", "lm_head.weight")]
    tensors = []
    for gguf, hf in names:
        shape, blob = tensor(hf)
        tensors.append((gguf, shape[::-1], 0, blob))
    per_layer = [("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm"), ("attn_q", "self_attn.q_proj"),
                 ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"),
                 ("ffn_gate_inp", "block_sparse_moe.gate")]
    for layer in range(layers):
        for gguf, hf in per_layer:
            shape, blob = tensor(f"model.layers.{layer}.{hf}.weight")
            tensors.append((f"blk.{layer}.{gguf}.weight", shape[::-1], 0, blob))
        for gguf, hf in [("ffn_gate_exps", "w1"), ("ffn_up_exps", "w3"), ("ffn_down_exps", "w2")]:
            parts = [tensor(f"model.layers.{layer}.block_sparse_moe.experts.{e}.{hf}.weight") for e in range(experts)]
            tensors.append((f"blk.{layer}.{gguf}.weight", parts[0][0][::-1] + [experts], 0, b"".join(p[1] for p in parts)))
    u32 = lambda v: struct.pack("<I", v)
    f32 = lambda v: struct.pack("<f", v)
    metadata = [("general.architecture", 8, gguf_string("llama")), ("general.alignment", 4, u32(32))]
    for key, value in [("context_length", config["max_position_embeddings"]), ("embedding_length", config["hidden_size"]),
                       ("block_count", layers), ("attention.head_count", config["num_attention_heads"]),
                       ("attention.head_count_kv", config["num_key_value_heads"]), ("expert_count", experts),
                       ("expert_used_count", config["num_experts_per_tok"]), ("feed_forward_length", config["intermediate_size"])]:
        metadata.append((f"llama.{key}", 4, u32(value)))
    metadata += [("llama.rope.freq_base", 6, f32(config["rope_theta"])),
                 ("llama.attention.layer_norm_rms_epsilon", 6, f32(config["rms_norm_eps"])),
                 ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + b"".join(gguf_string(t) for t in ["a", "b", "ab"]))]
    return gguf_bytes(metadata, tensors)


def main() -> None:
    seeds = Path(sys.argv[1])
    models = sorted(p for p in (ROOT / "Fixtures").glob("**/*.safetensors"))
    for model in models:
        write(seeds / "safetensors", shrunk(model))
    smallest = min(models, key=lambda p: p.stat().st_size)
    write(seeds / "safetensors", smallest.read_bytes())
    raw = smallest.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    write(seeds / "safetensors", raw[: 8 + length])

    for index in (ROOT / "Fixtures").glob("**/*.safetensors.index.json"):
        write(seeds / "index", index.read_bytes())
    for config in (ROOT / "Fixtures").glob("**/config.json"):
        write(seeds / "config", config.read_bytes())

    tokenizers = sorted((ROOT / "Fixtures").glob("**/tokenizer.json"))
    for tokenizer in tokenizers:
        write(seeds / "tokenizer", tokenizer.read_bytes())
    for tokenizer in sorted(SHARED.glob("tokenizers/*/tokenizer.json")):
        write(seeds / "tokenizer", trimmed(tokenizer))
    gguf = gguf_from_checkpoint(ROOT / "Fixtures/models/tiny-mixtral/model.safetensors")
    write(seeds / "gguf", gguf)
    write(seeds / "gguf", gguf[: gguf.index(b"blk.0.attn_norm.weight") + 64])  # the header alone, cut
    # Blocks of every quantized type (random bytes are valid blocks, except the fp16 scales may be NaN).
    random = bytes((i * 2654435761) % 251 for i in range(4096))
    quantized = [(f"t{kind}", [256, 2], kind, random[: size * 2]) for kind, size in
                 [(8, 34 * 8), (2, 18 * 8), (3, 20 * 8), (6, 22 * 8), (7, 24 * 8), (10, 84), (11, 110), (12, 144), (13, 176), (14, 210), (16, 66), (17, 74)]]
    write(seeds / "gguf", gguf_bytes([("general.architecture", 8, gguf_string("olmoe"))], quantized))
    # The target reads a text to encode after a NUL; show it the form once on a small tokenizer.
    small = min(tokenizers, key=lambda p: p.stat().st_size)
    write(seeds / "tokenizer", small.read_bytes() + b"\0Hello  world 123 \xf0\x9f\xa4\x97")


if __name__ == "__main__":
    main()
