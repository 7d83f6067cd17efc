#!/usr/bin/env python3
"""Writes the fuzzers' seed inputs, taken from Fixtures/ and ../shared/tokenizers, into
SEEDS_DIR/{safetensors,index,config,tokenizer}/ (scripts/fuzz.sh calls this; standard library only).

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
    # The target reads a text to encode after a NUL; show it the form once on a small tokenizer.
    small = min(tokenizers, key=lambda p: p.stat().st_size)
    write(seeds / "tokenizer", small.read_bytes() + b"\0Hello  world 123 \xf0\x9f\xa4\x97")


if __name__ == "__main__":
    main()
