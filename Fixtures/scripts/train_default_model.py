"""Train moe-compress's embedded default model: a small Mixtral-style MoE trained on real English text.

Corpus: the reStructuredText sources of the Python 3.11 documentation as shipped by the Debian
package python3.11-doc (/usr/share/doc/python3.11/html/_sources/**/*.rst.txt, about 12 MB). Lines
that are pure rst markup (section underlines, link targets, index/toctree-style directives) are
dropped; prose and code examples are kept. Files are split deterministically by a hash of their
path: ~90% train, the rest feeds the held-out and calibration texts.

Run from the repository root:
    python3 Fixtures/scripts/train_default_model.py                 # train, save, record
    python3 Fixtures/scripts/train_default_model.py --record-only   # re-record from the saved model

Writes:
    Fixtures/default-model/     config.json, model.safetensors (bf16), generation_config.json,
                                tokenizer.json, tokenizer_config.json
    Fixtures/text/heldout.txt, Fixtures/text/calibration.txt
    Fixtures/records/default-model.json   held-out perplexity, unigram baseline, expert load

Deterministic for a given --threads (the thread count changes float reduction order).
"""
import argparse
import hashlib
import json
import math
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import safetensors
import tokenizers
import torch
import torch.nn.functional as F
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, MixtralConfig, MixtralForCausalLM
from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

SOURCES = Path("/usr/share/doc/python3.11/html/_sources")
MODEL_DIR = Path("Fixtures/default-model")
TEXT_DIR = Path("Fixtures/text")
RECORD = Path("Fixtures/records/default-model.json")
CORPUS = "python3.11-doc reStructuredText sources (Debian package python3.11-doc), split by file"

VOCAB_SIZE = 2048
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
ALPHABET_SIZE = 100  # printable ASCII, newline, "▁" and the commonest accented letters
EVAL_TEXT_BYTES = 200_000
TRAIN_SEQ_LEN = 256
EVAL_SEQ_LEN = 128
EVAL_MAX_TOKENS = 4096


# ---------------------------------------------------------------- corpus

ADORNMENT = re.compile(r"^\s*([=\-~*^#\"'`+.:_])\1{2,}\s*$")   # section over/underlines
LINK_TARGET = re.compile(r"^\s*\.\. _[^:]*:.*$")                # ".. _tut-if:" labels
# Directives that carry no prose; their indented body (index entries, toctree paths) goes too.
MARKUP_DIRECTIVE = re.compile(
    r"^(\s*)\.\. (index|toctree|highlight|sectionauthor|moduleauthor|currentmodule|tabularcolumns|include)::")


def clean_rst(text):
    """Drop markup-only lines, keep prose and code, collapse blank-line runs."""
    kept, skip_indent = [], None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not line.strip() or indent > skip_indent:
                continue
            skip_indent = None
        directive = MARKUP_DIRECTIVE.match(line)
        if directive:
            skip_indent = len(directive.group(1))
            continue
        if ADORNMENT.match(line) or LINK_TARGET.match(line):
            continue
        kept.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip() + "\n"


def split_of(relative_path):
    """Stable split by file: a hash of the path, not of list order, so adding files moves nothing."""
    bucket = int(hashlib.sha256(relative_path.encode()).hexdigest(), 16) % 100
    return "train" if bucket < 90 else "heldout" if bucket < 95 else "calibration"


def load_corpus():
    """{split: [cleaned document, ...]} in sorted path order."""
    splits = {"train": [], "heldout": [], "calibration": []}
    for path in sorted(SOURCES.rglob("*.rst.txt")):
        relative = path.relative_to(SOURCES).as_posix()
        document = clean_rst(path.read_text(encoding="utf-8"))
        if document.strip():
            splits[split_of(relative)].append(document)
    return splits


def evaluation_text(documents, max_bytes=EVAL_TEXT_BYTES):
    """The split's documents joined, cut at the last paragraph break within max_bytes."""
    text = "\n".join(documents)
    if len(text.encode()) > max_bytes:
        head = text.encode()[:max_bytes].decode(errors="ignore")
        text = head[: head.rindex("\n\n")] + "\n"
    assert len(text.encode()) >= 150_000, "evaluation split too small"
    return text


def write_evaluation_texts(splits):
    TEXT_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("heldout", "calibration"):
        (TEXT_DIR / f"{name}.txt").write_text(evaluation_text(splits[name]), encoding="utf-8")


# ---------------------------------------------------------------- tokenizer

def llama_pre_tokenizer():
    # split=False like transformers' Llama/Mistral conversion: SentencePiece sees the whole text.
    return pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)


def frequent_characters(documents, count):
    """The most frequent characters, ties broken by code point. Rarer ones go through byte
    fallback, as in Llama; choosing them here keeps the trainer's own tie-breaking (hash order)
    out of the vocabulary."""
    counts = Counter()
    for document in documents:
        counts.update(document.replace(" ", "▁"))
    return [char for char, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:count]]


def train_tokenizer(documents):
    """SentencePiece-style BPE (Llama layout: specials 0-2, byte tokens 3-258, then merges)."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    # Training-only word split: a run of spaces, then one word; newlines apart. No merge can then
    # join across these boundaries, so encoding whole texts with split=False gives the same ids.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        llama_pre_tokenizer(),
        pre_tokenizers.Split(Regex(r"▁*[^▁\n]+|▁+|\n+"), behavior="isolated"),
    ])
    alphabet = frequent_characters(documents, ALPHABET_SIZE)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(BYTE_TOKENS), special_tokens=SPECIAL_TOKENS,
        initial_alphabet=alphabet, limit_alphabet=len(alphabet), show_progress=False)
    tokenizer.train_from_iterator(documents, trainer=trainer)

    learned = json.loads(tokenizer.to_str())["model"]
    pieces = [piece for piece, _ in sorted(learned["vocab"].items(), key=lambda item: item[1])
              if piece not in SPECIAL_TOKENS]
    vocab = {piece: i for i, piece in enumerate(SPECIAL_TOKENS + BYTE_TOKENS + pieces)}
    assert len(vocab) == VOCAB_SIZE
    merges = [tuple(merge) for merge in learned["merges"]]

    final = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    final.add_special_tokens(SPECIAL_TOKENS)
    final.pre_tokenizer = llama_pre_tokenizer()
    final.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                       decoders.Strip(content=" ", left=1, right=0)])
    # What LlamaTokenizerFast builds for add_bos_token=True, add_eos_token=False.
    final.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0", pair="<s>:0 $A:0 <s>:1 $B:1", special_tokens=[("<s>", 1)])
    return final


def save_tokenizer(tokenizer, directory):
    tokenizer.save(str(directory / "tokenizer.json"))
    added = {str(i): {"content": token, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False, "special": True} for i, token in enumerate(SPECIAL_TOKENS)}
    config = {
        "tokenizer_class": "LlamaTokenizerFast", "add_bos_token": True, "add_eos_token": False,
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None,
        "added_tokens_decoder": added, "legacy": False, "model_max_length": 512,
        "clean_up_tokenization_spaces": False, "spaces_between_special_tokens": False,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def token_stream(tokenizer, documents):
    """Every document as <s> text </s>, concatenated; training windows may span documents."""
    eos = tokenizer.token_to_id("</s>")
    ids = []
    for encoding in tokenizer.encode_batch(documents, add_special_tokens=True):
        ids.extend(encoding.ids)
        ids.append(eos)
    return np.asarray(ids, dtype=np.int64)


# ---------------------------------------------------------------- model and training

def model_config():
    # Every matrix's rows (hidden, expert width, heads x head_dim) are multiples of 256, so GGUF's
    # k-quants (256-weight super-blocks) apply to every tensor, as they do on real MoE models.
    return MixtralConfig(
        vocab_size=VOCAB_SIZE, hidden_size=256, intermediate_size=256, num_hidden_layers=4,
        num_attention_heads=8, num_key_value_heads=4, head_dim=32, max_position_embeddings=512,
        rope_theta=10000.0, rms_norm_eps=1e-5, num_local_experts=8, num_experts_per_tok=2,
        router_aux_loss_coef=0.01, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        pad_token_id=None, sliding_window=None)


def learning_rate(step, args):
    """Linear warmup, then cosine decay to 10% of the peak."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def optimizer_for(model, args):
    # No weight decay on norm gains (the only 1-d parameters).
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=args.lr, betas=(0.9, 0.95), eps=1e-8)


def per_layer_balance_loss(router_logits, config):
    """Mixtral's load-balancing loss averaged over layers (2.0 when balanced, for top-2).

    transformers' built-in aux_loss pools all layers' router logits, which only balances each
    expert index summed over layers: in a trial run single layers still left experts dead.
    """
    return sum(load_balancing_loss_func((logits,), config.num_local_experts, config.num_experts_per_tok)
               for logits in router_logits) / len(router_logits)


def train(model, stream, args):
    """Random windows of TRAIN_SEQ_LEN+1 ids from the stream; loss = LM + coef * per-layer balance loss."""
    generator = torch.Generator().manual_seed(args.seed)
    data = torch.from_numpy(stream)
    optimizer = optimizer_for(model, args)
    coef = model.config.router_aux_loss_coef
    model.train()
    started, recent = time.time(), []
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        starts = torch.randint(0, len(data) - TRAIN_SEQ_LEN - 1, (args.batch_size,), generator=generator)
        batch = torch.stack([data[s: s + TRAIN_SEQ_LEN + 1] for s in starts.tolist()])
        out = model(input_ids=batch[:, :-1], output_router_logits=True, use_cache=False)
        lm_loss = F.cross_entropy(out.logits.reshape(-1, VOCAB_SIZE), batch[:, 1:].reshape(-1))
        aux_loss = per_layer_balance_loss(out.router_logits, model.config)
        loss = lm_loss + coef * aux_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

        recent = (recent + [lm_loss.item()])[-50:]
        if step % args.log_every == 0 or step == args.steps - 1:
            elapsed = time.time() - started
            tokens = (step + 1) * args.batch_size * TRAIN_SEQ_LEN
            print(f"step {step:5d}  loss {lm_loss.item():.4f}  aux {aux_loss.item():.4f}  "
                  f"lr {learning_rate(step, args):.2e}  {tokens / elapsed:7.0f} tok/s  {elapsed:6.0f} s", flush=True)
    return {"steps": args.steps, "tokens_seen": args.steps * args.batch_size * TRAIN_SEQ_LEN,
            "seconds": round(time.time() - started, 1), "threads": args.threads,
            "final_train_loss": round(sum(recent) / len(recent), 4),  # mean LM loss of the last 50 steps
            "parameters": sum(p.numel() for p in model.parameters())}


def save_model(model, tokenizer):
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(MODEL_DIR, safe_serialization=True)
    save_tokenizer(tokenizer, MODEL_DIR)


# ---------------------------------------------------------------- record

def evaluation_windows(count, seq_len):
    """Consecutive non-overlapping windows of seq_len+1 ids stepping by seq_len (last may be shorter)."""
    return [(start, min(start + seq_len + 1, count)) for start in range(0, count - 1, seq_len)]


@torch.no_grad()
def evaluate(model, ids, seq_len, unigram_log_probs):
    """Model and unigram NLL over every id after the first, plus top-k expert load per layer."""
    experts, top_k = model.config.num_local_experts, model.config.num_experts_per_tok
    windows = evaluation_windows(len(ids), seq_len)
    full = [w for w in windows if w[1] - w[0] == seq_len + 1]
    # Full windows share one batch; a shorter last window runs alone, so nothing is padded.
    groups = ([full] if full else []) + [[w] for w in windows if w not in full]
    nll = unigram_nll = 0.0
    predicted = routed = 0
    counts = torch.zeros(model.config.num_hidden_layers, experts, dtype=torch.float64)
    for group in groups:
        batch = torch.tensor([ids[a:b] for a, b in group])
        out = model(input_ids=batch, output_router_logits=True, use_cache=False)
        log_probs = torch.log_softmax(out.logits[:, :-1].double(), dim=-1)
        targets = batch[:, 1:]
        nll -= log_probs.gather(-1, targets[..., None]).sum().item()
        unigram_nll -= unigram_log_probs[targets].sum().item()
        predicted += targets.numel()
        routed += batch.numel()
        for layer, logits in enumerate(out.router_logits):
            selected = torch.topk(torch.softmax(logits.float(), dim=-1), top_k, dim=-1).indices
            counts[layer] += torch.bincount(selected.reshape(-1), minlength=experts).double()
    return {"predicted_tokens": predicted, "perplexity": math.exp(nll / predicted),
            "unigram_perplexity": math.exp(unigram_nll / predicted),
            "expert_load": [[round(x, 6) for x in row] for row in (counts / (routed * top_k)).tolist()],
            "expert_load_tokens": routed}


def unigram_log_probs(train_stream):
    """Add-one smoothed unigram distribution over the training tokens."""
    counts = np.bincount(train_stream, minlength=VOCAB_SIZE).astype(np.float64) + 1.0
    return torch.from_numpy(np.log(counts / counts.sum()))


def record(train_stream, training):
    tokenizer = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    heldout = TEXT_DIR / "heldout.txt"
    ids = tokenizer.encode(heldout.read_text(encoding="utf-8"), add_special_tokens=True).ids[:EVAL_MAX_TOKENS]
    result = evaluate(model, ids, EVAL_SEQ_LEN, unigram_log_probs(train_stream))
    entry = {
        "model": MODEL_DIR.as_posix(), "text": heldout.as_posix(), "seq_len": EVAL_SEQ_LEN,
        "max_tokens": EVAL_MAX_TOKENS, "tokens": len(ids), **result,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__, "safetensors": safetensors.__version__,
                     "numpy": np.__version__},
        "training": training, "corpus": CORPUS,
    }
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps(entry, indent=2) + "\n")
    print(f"held-out perplexity {entry['perplexity']:.3f}, unigram {entry['unigram_perplexity']:.3f} "
          f"over {entry['predicted_tokens']} predicted tokens")
    for layer, row in enumerate(entry["expert_load"]):
        print(f"layer {layer} load " + " ".join(f"{x:.3f}" for x in row))


# ---------------------------------------------------------------- main

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--record-only", action="store_true", help="skip training; re-record from the saved model")
    return parser.parse_args()


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    splits = load_corpus()
    print({name: (len(docs), sum(len(d) for d in docs)) for name, docs in splits.items()}, "(documents, chars)")
    if args.record_only:
        tokenizer = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
        training = json.loads(RECORD.read_text())["training"]  # the training run is not repeated
    else:
        write_evaluation_texts(splits)
        tokenizer = train_tokenizer(splits["train"])
    train_stream = token_stream(tokenizer, splits["train"])
    print(f"train stream: {len(train_stream)} tokens", flush=True)
    if not args.record_only:
        model = MixtralForCausalLM(model_config())
        training = train(model, train_stream, args)
        save_model(model, tokenizer)
    record(train_stream, training)


if __name__ == "__main__":
    main()
