"""What llama.cpp computes from the GGUF files moe-compress writes: proof, with the real client,
that llama.cpp reads the same model (weights, hyperparameters, tokenizer) that moe-compress does.

Run from the repository root (needs the debug binary, `swift build`, and llama.cpp with its
Python binding: Fixtures/scripts/setup_llama_cpp.sh, versions in Fixtures/requirements-llama.txt):
    /work/venv/bin/python Fixtures/scripts/record_gguf_reference.py      (~15 s)
MOE_COMPRESS_BIN=path/to/moe-compress picks another binary. Deterministic: moe-compress writes the
same bytes for the same code, llama.cpp runs on the CPU with a fixed thread count (every dot
product is computed by one thread, so the count does not change the result), transformers on one
thread; rerunning gives identical JSON.

For each model in MODELS and each requested ggml type in its list:
1. `moe-compress quantize MODEL -o TMP/<type>.gguf --types TYPE` (the case is keyed by the
   requested TYPE); a type that does not tile a tensor's rows falls back as llama-quantize does,
   so the record keeps what the file holds: gguf-py's GGUFReader's name -> type for every
   tensor, plus the file's SHA-256 and size (Tests/QuantizingTests/GGUFLlamaCppTests.swift
   writes the same file with the library and notices when its bytes change);
2. llama.cpp (llama-cpp-python's Llama: CPU, F32 KV cache, no flash attention, one ubatch; the
   default F16 KV cache alone moves the F32 files' logits by up to 4e-3) evaluates INPUT_TOKENS
   ids: the Hugging Face `tokenizers` encoding of the start of Fixtures/text/heldout.txt,
   special tokens added as the tokenizer adds them (the default model's BOS). Recorded: its
   logits at `positions` (every position for the tiny models' F32 files, POSITION_SUBSET
   otherwise, so the JSON stays near 2 MB), rounded to 1e-5, and its arg-max at every position.
   llama.cpp's CPU kernels round the input of every matrix product to the weight type's partner
   (F16 for F16, q8_0/q8_1 blocks for Q4_0…Q8_0, q8_K for k-quants), so for quantized files it
   also evaluates a twin: the same file with every tensor widened to F32 by ggml's own decoder
   (ggml_get_type_traits(type)->to_float), i.e. llama.cpp's reading of the weights without
   that rounding (`dequantized`, at TWIN_POSITIONS);
3. transformers on the same checkpoint (float32, eager attention) on the same ids: the max
   |logit difference| to llama.cpp over every position is recorded and printed (for F32 files
   that is the check that the file is right; for the others it is the quantization error).
Per model, llama.cpp's own tokenization (`Llama.tokenize`, BOS as the file's
tokenizer.ggml.add_bos_token decides, special=False) of TEXTS is recorded beside Hugging Face
tokenizers' ids of the same texts (and of " " + text): the check of the tokenizer metadata; also
the BOS and EOS llama.cpp reads, and the special token ids llama.cpp's converter would write
(gguf-py's SpecialVocab on the checkpoint).

Two fixtures have what llama.cpp's graph for their family cannot compute, and moe-compress
refuses to write them (its message is recorded under `refused`): tiny-qwen2-moe's layer 1 is a
dense MLP (llama.cpp's qwen2moe graph runs every layer as a sparse block) and tiny-olmoe has
clip_qkv (llama.cpp's olmoe graph reads no clamp). They are recorded through a variant made in
the temporary directory: `layers` keeps those layers (renumbered), `config` overrides
config.json keys; the tokenizer files are copied unchanged. The Swift test builds the same
variant in memory.
"""
import ctypes
import hashlib
from importlib import metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from llama_cpp_tools import ggml_library, lib_dir  # noqa: E402

if "LLAMA_CPP_LIB_PATH" not in os.environ and (lib_dir() / "libllama.so").exists():
    os.environ["LLAMA_CPP_LIB_PATH"] = str(lib_dir())  # the build setup_llama_cpp.sh made

import gguf  # noqa: E402
import llama_cpp  # noqa: E402
import numpy as np  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

torch.set_num_threads(1)
OUT = "Fixtures/records/gguf-reference.json"
TEXT = "Fixtures/text/heldout.txt"
INPUT_TOKENS = 48
POSITION_SUBSET = [0, 9, 18, 28, 37, 47]
TWIN_POSITIONS = [0, 23, 47]
FLOAT_TYPES = {"F32", "F16", "BF16"}
LLAMA_SETTINGS = {"n_ctx": 64, "n_batch": 64, "n_ubatch": 64, "n_threads": 2, "n_threads_batch": 2,
                  "type_k": 0, "type_v": 0, "flash_attn": False}  # type 0: GGML_TYPE_F32 KV cache

# The tiny models' rows are 64 (hidden) and 16-96 (expert widths) long: 32-weight blocks tile most
# of them (a 16-wide expert's down rows fall back to F16), k-quants' 256-weight super-blocks none.
TINY_TYPES = ["F32", "F16", "Q8_0", "Q5_1", "Q4_0"]
# The default model is 256 wide (hidden, expert width, heads x head_dim): every k-quant applies.
DEFAULT_TYPES = ["F32", "F16", "Q8_0", "Q6_K", "Q4_K", "Q3_K", "Q2_K", "IQ2_XS", "IQ2_XXS"]

MODELS = {
    "tiny-mixtral": {"path": "Fixtures/models/tiny-mixtral", "types": TINY_TYPES, "all_positions": ["F32"]},
    "tiny-qwen2-moe": {"path": "Fixtures/models/tiny-qwen2-moe", "types": TINY_TYPES, "all_positions": ["F32"],
                       "variant": {"name": "tiny-qwen2-moe-sparse", "layers": [0, 2],
                                   "config": {"num_hidden_layers": 2, "mlp_only_layers": []}}},
    "tiny-qwen3-moe": {"path": "Fixtures/models/tiny-qwen3-moe", "types": TINY_TYPES, "all_positions": ["F32"]},
    "tiny-olmoe": {"path": "Fixtures/models/tiny-olmoe", "types": TINY_TYPES, "all_positions": ["F32"],
                   "variant": {"name": "tiny-olmoe-unclipped", "layers": None, "config": {"clip_qkv": None}}},
    "default-model": {"path": "Fixtures/default-model", "types": DEFAULT_TYPES, "all_positions": []},
}

TEXTS = [
    "The quick brown fox jumps over the lazy dog. Isn't it?  It's 'quoted' -- twice.",
    "def área(radius):\n    \"\"\"Kreisfläche — π·r².\"\"\"\n\treturn 3.14159 * radius ** 2  # ✓ naïve\n",
    "Numbers: 0, 7, 42, 1234567, 3.5e-10, -273.15 and 2026-12-02; 100% of 1,000,000.",
    "    indented = True  # a first line that starts with spaces",
]


def binary():
    if "MOE_COMPRESS_BIN" in os.environ:
        return os.environ["MOE_COMPRESS_BIN"]
    path = subprocess.run(["swift", "build", "--show-bin-path"], check=True, capture_output=True, text=True).stdout.strip()
    return os.path.join(path, "moe-compress")


def make_variant(source, variant, tmp):
    """The checkpoint `source` with only `layers` (renumbered from 0) and config keys overridden."""
    directory = Path(tmp) / variant["name"]
    directory.mkdir()
    config = json.loads((Path(source) / "config.json").read_text())
    config.update(variant["config"])
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if (Path(source) / name).exists():
            shutil.copyfile(Path(source) / name, directory / name)
    tensors = {}
    for shard in sorted(Path(source).glob("*.safetensors")):
        tensors.update(load_file(str(shard)))
    if variant["layers"] is not None:
        renumber = {old: new for new, old in enumerate(variant["layers"])}
        kept = {}
        for name, tensor in tensors.items():
            if name.startswith("model.layers."):
                layer = int(name.split(".")[2])
                if layer not in renumber:
                    continue
                name = f"model.layers.{renumber[layer]}." + name.split(".", 3)[3]
            kept[name] = tensor
        tensors = kept
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    return str(directory)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class TypeTraits(ctypes.Structure):
    """struct ggml_type_traits (ggml/include/ggml.h of the pinned llama.cpp)."""
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64), ("blck_size_interleave", ctypes.c_int64),
                ("type_size", ctypes.c_size_t), ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p),
                ("from_float_ref", ctypes.c_void_p)]


# void (*ggml_to_float_t)(const void * x, float * y, int64_t k)
ToFloat = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64)


def ggml_to_float(type_id, data, count):
    """A tensor's stored bytes decoded by ggml itself."""
    if type_id == int(gguf.GGMLQuantizationType.F32):
        return np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.float32).copy()
    lib = ggml_library()
    lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
    lib.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
    decode = ToFloat(lib.ggml_get_type_traits(type_id).contents.to_float)
    source = np.ascontiguousarray(data).view(np.uint8)
    out = np.empty(count, dtype=np.float32)
    decode(source.ctypes.data, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), count)
    return out


def dequantized_twin(path, out):
    """The GGUF file at `path` with the same metadata and every tensor widened to F32 by ggml."""
    reader = gguf.GGUFReader(path)
    writer = gguf.GGUFWriter(out, reader.fields["general.architecture"].contents())  # writes general.architecture
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        kind = field.types[0]
        writer.add_key_value(key, field.contents(), kind, sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    for tensor in reader.tensors:
        shape = tuple(reversed([int(n) for n in tensor.shape]))
        writer.add_tensor(tensor.name, ggml_to_float(int(tensor.tensor_type), tensor.data, int(tensor.n_elements)).reshape(shape))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def llama(path):
    return llama_cpp.Llama(model_path=path, logits_all=True, verbose=False, **LLAMA_SETTINGS)


def llama_logits(path, ids):
    model = llama(path)
    model.reset()
    model.eval(ids)
    logits = np.array(model.scores[:len(ids)], dtype=np.float32)
    del model
    return logits


@torch.no_grad()
def transformers_logits(directory, ids):
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager").eval()
    return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].numpy()


def rounded(rows):
    return [[round(float(x), 5) for x in row] for row in rows]


def main():
    executable = binary()
    heldout = Path(TEXT).read_text(encoding="utf-8")
    records = {}
    table = []
    for name, spec in MODELS.items():
        with tempfile.TemporaryDirectory() as tmp:
            record = {"model": spec["path"]}
            directory = spec["path"]
            if "variant" in spec:
                refused = subprocess.run([executable, "quantize", directory, "-o", f"{tmp}/refused.gguf", "--types", "F32"],
                                         capture_output=True, text=True)
                assert refused.returncode != 0, f"{name}: moe-compress now writes the fixture itself; drop its variant"
                # The message after "Error: <path>/config.json: ".
                record["refused"] = refused.stderr.strip().splitlines()[-1].split("config.json: ", 1)[-1]
                record["variant"] = spec["variant"]
                directory = make_variant(directory, spec["variant"], tmp)
            tokenizer = tokenizers.Tokenizer.from_file(f"{directory}/tokenizer.json")
            ids = tokenizer.encode(heldout[:4000]).ids[:INPUT_TOKENS]
            assert len(ids) == INPUT_TOKENS
            record["input_ids"] = ids
            # What llama.cpp's own converter (gguf-py's SpecialVocab) would write as tokenizer.ggml.*_token_id.
            special = gguf.SpecialVocab(directory, load_merges=False).special_token_ids
            record["converter_special_token_ids"] = {k: special[k] for k in ("bos", "eos", "unk", "pad") if k in special}
            reference = transformers_logits(directory, ids)
            cases = {}
            for type_name in spec["types"]:
                output = f"{tmp}/{type_name}.gguf"
                subprocess.run([executable, "quantize", directory, "-o", output, "--types", type_name],
                               check=True, capture_output=True)
                reader = gguf.GGUFReader(output)
                tensor_types = {tensor.name: tensor.tensor_type.name for tensor in reader.tensors}
                del reader
                logits = llama_logits(output, ids)
                difference = float(np.abs(logits - reference).max())
                scale = float(np.abs(reference).max())
                agreement = float(np.mean(logits.argmax(-1) == reference.argmax(-1)))
                positions = list(range(INPUT_TOKENS)) if type_name in spec["all_positions"] else POSITION_SUBSET
                counts = {}
                for value in tensor_types.values():
                    counts[value] = counts.get(value, 0) + 1
                cases[type_name] = {
                    "sha256": sha256(output), "bytes": os.path.getsize(output),
                    "tensor_types": tensor_types, "positions": positions,
                    "logits": rounded(logits[positions]), "argmax": [int(i) for i in logits.argmax(-1)],
                    "transformers_max_abs_difference": difference,
                    "transformers_max_relative_difference": difference / scale,
                    "transformers_argmax_agreement": agreement,
                }
                if type_name not in FLOAT_TYPES:
                    dequantized_twin(output, f"{tmp}/twin.gguf")
                    twin = llama_logits(f"{tmp}/twin.gguf", ids)
                    cases[type_name]["dequantized"] = {"positions": TWIN_POSITIONS, "logits": rounded(twin[TWIN_POSITIONS])}
                    os.remove(f"{tmp}/twin.gguf")
                if type_name == "F32":
                    # The tokenizer metadata is the same in every file of a model.
                    model = llama(output)
                    record["tokenization"] = [
                        {"text": text, "huggingface": tokenizer.encode(text).ids,
                         "huggingface_space_prefixed": tokenizer.encode(" " + text).ids,
                         "llama_cpp": model.tokenize(text.encode("utf-8"), add_bos=True, special=False)}
                        for text in TEXTS]
                    record["llama_cpp_adds_bos"] = bool(model._model.add_bos_token())
                    record["llama_cpp_special_token_ids"] = {"bos": model._model.token_bos(), "eos": model._model.token_eos()}
                    del model
                table.append((name, type_name, ", ".join(f"{k}×{v}" for k, v in sorted(counts.items())),
                              difference, difference / scale, agreement))
            record["cases"] = cases
            records[name] = record
    versions = {"llama_cpp_python": llama_cpp.__version__, "llama_cpp_commit": "0c1e57098bba43ac29e6e3b677cdceebdd22334f",
                "gguf": metadata.version("gguf"),
                "transformers": transformers.__version__, "tokenizers": tokenizers.__version__, "torch": torch.__version__}
    with open(OUT, "w") as f:
        json.dump({"versions": versions, "llama_cpp_settings": LLAMA_SETTINGS, "text": TEXT, "input_tokens": INPUT_TOKENS,
                   "models": records}, f, separators=(",", ":"), ensure_ascii=False)
        f.write("\n")
    print(f"{'model':16s} {'type':5s} {'tensors in the file':28s} {'max|Δ| vs transformers':>22s} {'relative':>9s} {'argmax':>7s}")
    for name, type_name, counts, difference, relative, agreement in table:
        print(f"{name:16s} {type_name:5s} {counts:28s} {difference:22.3e} {relative:9.2e} {agreement:7.1%}")
    for name, record in records.items():
        for entry in record["tokenization"]:
            same = entry["huggingface"] == entry["llama_cpp"]
            print(f"{name:16s} tokenization {'same' if same else 'DIFFERS'}: {entry['text'][:30]!r}")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
