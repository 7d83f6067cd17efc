"""Ground truth for the tokenizer's unit tests, recorded from Hugging Face `tokenizers` (and GPT-2's
byte-to-unicode table from transformers).

Run from the repository root, after make_fixtures.py:  python3 Fixtures/scripts/record_tokenizer_units.py
Writes Fixtures/records/tokenizer-units.json:
  byte_to_unicode   GPT-2's byte -> character table
  variants          the two small fixture tokenizers with components swapped for ones the real files do
                    not use (other split behaviours, Digits, Metaspace schemes, legacy Llama normalizers,
                    added-token flags, post-processors), plus hand-made toy BPE models; each with the
                    ids, tokens and decoded text `tokenizers` gives for a set of texts
  unsupported       components moe-compress refuses, with the component kind and type the error names
  vocabularies      vocabulary size, sample token strings and decodes for the fixture and real tokenizers
A variant is its base tokenizer.json with top-level keys replaced by `replace` and model fields by
`model`; the tests rebuild it the same way.
"""
import json
import os

import tokenizers
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

OUT = "Fixtures/records/tokenizer-units.json"
BYTELEVEL = "Fixtures/tokenizers/bytelevel-bpe/tokenizer.json"
SENTENCEPIECE = "Fixtures/tokenizers/sentencepiece-bpe/tokenizer.json"
REAL = {name: f"../shared/tokenizers/{name}/tokenizer.json" for name in ["qwen3", "mistral", "olmoe", "deepseek_v3"]}

TEXTS = [
    "Hello world", "  two  spaces  ", "digits 12345 and 3.14, ok; fine", "MiXeD CaSe Ünïcödé",
    "A\u030a and \u00c5", "tab\there\nnew line\r\n", "<mask> hello <mask>world hello, sayhello hello_",
    "wor world swor", "unknown ꙮ 中文 \x7f", "", " ", "a", "the the the", "[DAY] monday [DAY]",
    "aeiou queue", "a123 3a12 1a 123a", "<|endoftext|>x<|endoftext|>", "<s> a </s>", "</s>hello<s>world", "wait,, what;; ok  ,;", "abc abcd bcd cab ba c xyz axxb",
]


def component(base, key, value):
    """The JSON `tokenizers` writes for a component, by setting it on a loaded tokenizer."""
    tok = Tokenizer.from_file(base)
    setattr(tok, key, value)
    return json.loads(tok.to_str())[key]


def added(content, id, special=False, single_word=False, lstrip=False, rstrip=False, normalized=None):
    return {"id": id, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": (not special) if normalized is None else normalized, "special": special}


def base_added_tokens(base):
    with open(base, encoding="utf-8") as f:
        return json.load(f)["added_tokens"]


def build(base, replace, model):
    with open(base, encoding="utf-8") as f:
        spec = json.load(f)
    spec.update(replace)
    spec["model"].update(model)
    return Tokenizer.from_str(json.dumps(spec))


def cases(tok, texts):
    result = []
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        with_special = tok.encode(text, add_special_tokens=True).ids
        result.append({"text": text, "ids": ids, "ids_with_special_tokens": with_special,
                       "tokens": [tok.id_to_token(i) for i in with_special], "decoded": tok.decode(with_special)})
    return result


def toy(pre_tokenizer, model):
    """Replacements making a bare tokenizer: just `pre_tokenizer` and a hand-made BPE `model`."""
    return {"normalizer": None, "pre_tokenizer": pre_tokenizer, "post_processor": None, "decoder": None,
            "added_tokens": [], "model": model}


def toy_model(vocab, merges, **options):
    return json.loads(Tokenizer(models.BPE(vocab=vocab, merges=merges, **options)).to_str())["model"]


def variants():
    bl_vocab = Tokenizer.from_file(BYTELEVEL).get_vocab_size()
    sp_vocab = Tokenizer.from_file(SENTENCEPIECE).get_vocab_size()
    eos = added("<|endoftext|>", bl_vocab - 1, special=True)
    ids = iter(range(bl_vocab, bl_vocab + 100))
    toy_letters = {"<unk>": 0, "a": 1, "b": 2, "c": 3, "d": 4, "ab": 5, "bc": 6, "abc": 7, "cd": 8, "abcd": 9, "bcd": 10}
    toy_merges = [("a", "b"), ("b", "c"), ("ab", "c"), ("c", "d"), ("abc", "d")]
    prefixed = ["<unk>", "a", "b", "c", "##a", "##b", "##c"]
    prefixed += [t + "</w>" for t in prefixed[1:]] + ["ab", "abc</w>", "##bc</w>"]
    toy_digits = {"<unk>": 0, "a": 1, "1": 2, "2": 3, "3": 4, "12": 5, "123": 6, "a1": 7, "3a": 8}
    digit_merges = [("1", "2"), ("12", "3"), ("a", "1"), ("3", "a")]
    space_split_json = component(BYTELEVEL, "pre_tokenizer", pre_tokenizers.Split(" ", behavior="removed"))
    table = {
        "split-behaviours": (BYTELEVEL, {"pre_tokenizer": component(BYTELEVEL, "pre_tokenizer", pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"\d+"), behavior="removed"),
            pre_tokenizers.Split(Regex(r"[,;]"), behavior="merged_with_previous"),
            pre_tokenizers.Split(" ", behavior="merged_with_next"),
            pre_tokenizers.Split(Regex(r"[aeiou]"), behavior="contiguous"),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)]))}, {}),
        "split-inverted": (BYTELEVEL, {"pre_tokenizer": component(BYTELEVEL, "pre_tokenizer", pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"\w+"), behavior="removed", invert=True),
            pre_tokenizers.Split(Regex(r"[A-Z]"), behavior="merged_with_previous", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]))}, {}),
        "digits-individual": (BYTELEVEL, toy(component(BYTELEVEL, "pre_tokenizer", pre_tokenizers.Digits(individual_digits=True)),
                                              toy_model(toy_digits, digit_merges, unk_token="<unk>")), {}),
        "digits-grouped": (BYTELEVEL, toy(component(BYTELEVEL, "pre_tokenizer", pre_tokenizers.Digits(individual_digits=False)),
                                           toy_model(toy_digits, digit_merges, unk_token="<unk>")), {}),
        "gpt2-prefix-space": (BYTELEVEL, {
            "normalizer": None,
            "pre_tokenizer": component(BYTELEVEL, "pre_tokenizer", pre_tokenizers.ByteLevel(add_prefix_space=True))}, {}),
        "added-token-flags": (BYTELEVEL, {"added_tokens": [
            eos, added("<mask>", next(ids), special=True, lstrip=True, rstrip=True),
            added("hello", next(ids), single_word=True, normalized=False),
            added("wor", next(ids)),
            added("A\u030a", next(ids)),
            added("the", 0, special=True)]}, {}),
        "normalizers": (BYTELEVEL, {"normalizer": component(BYTELEVEL, "normalizer", normalizers.Sequence([
            normalizers.NFC(), normalizers.Lowercase(), normalizers.Replace(Regex(r"\s+"), " "),
            normalizers.Replace("wor", "W"), normalizers.Prepend("#")]))}, {}),
        "roberta": (BYTELEVEL, {"post_processor": component(BYTELEVEL, "post_processor", processors.RobertaProcessing(
            sep=("<|endoftext|>", bl_vocab - 1), cls=("<|endoftext|>", bl_vocab - 1)))}, {}),
        "bert": (BYTELEVEL, {"post_processor": component(BYTELEVEL, "post_processor", processors.BertProcessing(
            sep=("<|endoftext|>", bl_vocab - 1), cls=("<|endoftext|>", bl_vocab - 1)))}, {}),
        "template-sequence": (BYTELEVEL, {"post_processor": component(BYTELEVEL, "post_processor", processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="[PAIR] $A <|endoftext|>", special_tokens=[
                {"id": "[PAIR]", "ids": [7, 8], "tokens": ["(", ")"]}, ("<|endoftext|>", bl_vocab - 1)])]))}, {}),
        "no-decoder": (BYTELEVEL, {"decoder": None, "normalizer": None}, {}),
        "metaspace-always-split": (SENTENCEPIECE, {
            "pre_tokenizer": component(SENTENCEPIECE, "pre_tokenizer", pre_tokenizers.Metaspace(prepend_scheme="always", split=True)),
            "decoder": component(SENTENCEPIECE, "decoder", decoders.Metaspace(prepend_scheme="always"))}, {}),
        "metaspace-never": (SENTENCEPIECE, {
            "pre_tokenizer": component(SENTENCEPIECE, "pre_tokenizer", pre_tokenizers.Metaspace(prepend_scheme="never", split=True)),
            "decoder": component(SENTENCEPIECE, "decoder", decoders.Metaspace(prepend_scheme="never"))}, {}),
        "llama-legacy-normalizer": (SENTENCEPIECE, {
            "normalizer": component(SENTENCEPIECE, "normalizer", normalizers.Sequence([
                normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])),
            "pre_tokenizer": None,
            "added_tokens": base_added_tokens(SENTENCEPIECE)
                + [added("[DAY]", sp_vocab), added("day", sp_vocab + 1, normalized=False)]}, {}),
        "strip-decoder": (SENTENCEPIECE, {"decoder": component(SENTENCEPIECE, "decoder", decoders.Sequence([
            decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Strip(" ", 0, 1), decoders.Fuse()]))}, {}),
        "sentencepiece-unknown-unfused": (SENTENCEPIECE, {}, {"byte_fallback": False, "fuse_unk": False}),
        "sentencepiece-unknown-fused": (SENTENCEPIECE, {}, {"byte_fallback": False, "fuse_unk": True}),
        "toy-merges": (BYTELEVEL, toy(space_split_json, toy_model(toy_letters, toy_merges, unk_token="<unk>")), {}),
        "toy-ignore-merges": (BYTELEVEL, toy(space_split_json, toy_model(toy_letters, toy_merges, unk_token="<unk>",
                                                                         ignore_merges=True, fuse_unk=True)), {}),
        "toy-prefix-suffix": (BYTELEVEL, toy(space_split_json, toy_model(
            {t: i for i, t in enumerate(prefixed)}, [("a", "##b"), ("ab", "##c</w>"), ("##b", "##c</w>")],
            unk_token="<unk>", continuing_subword_prefix="##", end_of_word_suffix="</w>")), {}),
        "toy-partial-byte-fallback": (BYTELEVEL, toy(space_split_json, toy_model(
            {**toy_letters, "<0xC3>": 11, "<0xA9>": 12, "<0xE4>": 13}, toy_merges, unk_token="<unk>", byte_fallback=True)), {}),
    }
    result = []
    for name, (base, replace, model) in table.items():
        tok = build(base, replace, model)
        result.append({"name": name, "base": base, "replace": replace, "model": model, "cases": cases(tok, TEXTS)})
    return result


def unsupported():
    wordpiece = json.loads(Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]")).to_str())["model"]
    unigram = json.loads(Tokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0)], 0)).to_str())["model"]
    kinds = [
        ("pre_tokenizer", "Whitespace", {"pre_tokenizer": component(BYTELEVEL, "pre_tokenizer", pre_tokenizers.Whitespace())}, {}),
        ("pre_tokenizer", "Punctuation", {"pre_tokenizer": component(BYTELEVEL, "pre_tokenizer", pre_tokenizers.Punctuation())}, {}),
        ("normalizer", "NFKC", {"normalizer": component(BYTELEVEL, "normalizer", normalizers.NFKC())}, {}),
        ("normalizer", "BertNormalizer", {"normalizer": component(BYTELEVEL, "normalizer", normalizers.BertNormalizer())}, {}),
        ("decoder", "WordPiece", {"decoder": component(BYTELEVEL, "decoder", decoders.WordPiece())}, {}),
        ("model", "WordPiece", {"model": wordpiece, "added_tokens": []}, {}),
        ("model", "Unigram", {"model": unigram, "added_tokens": []}, {}),
    ]
    result = []
    for kind, type_name, replace, model in kinds:
        build(BYTELEVEL, replace, model)  # `tokenizers` itself loads it
        result.append({"base": BYTELEVEL, "replace": replace, "model": model,
                       "error": f"unsupported {kind} '{type_name}'"})
    truncating = Tokenizer.from_file(BYTELEVEL)
    truncating.enable_truncation(16)
    result.append({"base": BYTELEVEL, "replace": {"truncation": json.loads(truncating.to_str())["truncation"]},
                   "model": {}, "error": "unsupported truncation"})
    result.append({"base": BYTELEVEL, "replace": {}, "model": {"dropout": 0.1}, "error": "unsupported BPE dropout"})
    return result


def vocabularies():
    result = {}
    for name, path in [("bytelevel-bpe", BYTELEVEL), ("sentencepiece-bpe", SENTENCEPIECE)] + list(REAL.items()):
        tok = Tokenizer.from_file(path)
        vocab = tok.get_vocab(with_added_tokens=True)
        size = max(vocab.values()) + 1
        sample = sorted(set(list(range(0, 10)) + list(range(size // 2, size // 2 + 10)) + list(range(size - 10, size))))
        result[name] = {
            "tokenizer": path, "vocabulary_size": size,
            "tokens": [{"id": i, "token": tok.id_to_token(i)} for i in sample],
            "decodes": [{"ids": ids, "text": tok.decode(ids)} for ids in
                        (tok.encode(text).ids for text in TEXTS + ["Hello, world! How are you today?"])],
        }
    return result


def main():
    record = {"tokenizers_version": tokenizers.__version__, "transformers_version": transformers.__version__,
              "byte_to_unicode": [bytes_to_unicode()[b] for b in range(256)],
              "variants": variants(), "unsupported": unsupported(), "vocabularies": vocabularies()}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(record, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
