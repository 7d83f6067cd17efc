"""Per-layer expert counts for checkpoints pruned by moe-compress (`prune --budget global`).

transformers builds every MoE layer of a Mixtral, Qwen2-MoE, Qwen3-MoE or OLMoE model from one
scalar expert count, so a checkpoint that keeps different numbers of experts in different layers
loads only through this file, which moe-compress copies beside it:

    AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=True)

The checkpoint's config.json is the family's own (`model_type` and `architectures` unchanged, so
AutoConfig returns the stock config class) with:
  - the expert-count key S (`num_local_experts` for mixtral; `num_experts` for qwen2_moe,
    qwen3_moe and olmoe) set to the largest count over the layers;
  - S + "_per_layer" (e.g. "num_local_experts_per_layer"): one entry per decoder layer, that
    layer's number of routed experts, 0 for a dense layer (Qwen2-MoE's mlp_only_layers and
    decoder_sparse_step), each sparse layer's at least num_experts_per_tok;
  - "auto_map": {"AutoModelForCausalLM": "modeling_moe_compress.MoECompressForCausalLM"}.
Tensor names are the stock ones; a layer's experts are numbered 0..count-1 and its router
(`gate.weight`) has count rows.

MoECompressForCausalLM is not a model class: constructing it, or calling from_pretrained or
from_config on it, returns an instance of a subclass of the family's stock class (chosen by
config.model_type; named like it, so save_pretrained writes the family's `architectures`). That
subclass runs the stock __init__, then replaces each sparse layer's MoE block whose count differs
from S by the stock block built from a shallow copy of the config whose S is that layer's count,
all before from_pretrained loads the weights, so every tensor in the checkpoint has a parameter of
its shape. Its save_pretrained also copies this file, so a saved model loads the same way.
Because the stock config class is registered for AutoModelForCausalLM, transformers does not
register the remote class (which would require its `config_class` to be the config's class); it
calls MoECompressForCausalLM.from_pretrained(directory, config=config, ...) directly. Without
trust_remote_code=True it uses the stock class, which refuses the checkpoint (size mismatch).

Not supported: output_router_logits=True (the load-balancing loss concatenates the layers'
router logits, which here have different widths).

Checked with transformers 4.57.6 and torch 2.13 (float32 and bfloat16 checkpoints); not with
transformers 5, whose MoE blocks hold fused expert tensors.
"""
import copy
import os
import shutil

import transformers
from transformers import AutoConfig, PretrainedConfig

# model_type -> (stock class, expert-count key S, the MoE block's attribute in a decoder layer)
FAMILIES = {
    "mixtral": ("MixtralForCausalLM", "num_local_experts", "block_sparse_moe"),
    "qwen2_moe": ("Qwen2MoeForCausalLM", "num_experts", "mlp"),
    "qwen3_moe": ("Qwen3MoeForCausalLM", "num_experts", "mlp"),
    "olmoe": ("OlmoeForCausalLM", "num_experts", "mlp"),
}


class PerLayerExperts:
    """Mixed in before the stock class: rebuilds the MoE blocks whose count differs from S."""

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        _, key, attribute = FAMILIES[config.model_type]
        counts = getattr(config, key + "_per_layer", None)
        if not isinstance(counts, list) or len(counts) != config.num_hidden_layers:
            raise ValueError(f"config.{key}_per_layer must list one expert count per decoder layer "
                             f"({config.num_hidden_layers}), got {counts!r}")
        if max(counts) != getattr(config, key):
            raise ValueError(f"config.{key} ({getattr(config, key)}) must be the largest of "
                             f"{key}_per_layer ({max(counts)})")
        if getattr(config, "output_router_logits", False):
            raise ValueError("output_router_logits is not supported with per-layer expert counts")
        for index, (layer, count) in enumerate(zip(self.model.layers, counts)):
            block = getattr(layer, attribute)
            if not hasattr(block, "experts"):  # a dense layer
                if count != 0:
                    raise ValueError(f"layer {index} is dense but {key}_per_layer[{index}] is {count}")
                continue
            if count < config.num_experts_per_tok:
                raise ValueError(f"{key}_per_layer[{index}] is {count}, fewer than num_experts_per_tok")
            if count != len(block.experts):
                layer_config = copy.copy(config)
                setattr(layer_config, key, count)
                setattr(layer, attribute, type(block)(layer_config))
        self.post_init()  # initialises the new blocks only (the others are marked initialised), and
        # nothing inside from_pretrained, which loads every weight

    def save_pretrained(self, save_directory, *args, **kwargs):
        super().save_pretrained(save_directory, *args, **kwargs)  # config.json keeps auto_map
        shutil.copy(__file__, os.path.join(save_directory, os.path.basename(__file__)))


_classes = {}


def family_class(config):
    """The per-layer subclass of config.model_type's stock causal-LM class (made once)."""
    if config.model_type not in FAMILIES:
        raise ValueError(f"model_type {config.model_type!r} is not one of {sorted(FAMILIES)}")
    if config.model_type not in _classes:
        stock = getattr(transformers, FAMILIES[config.model_type][0])
        _classes[config.model_type] = type(stock.__name__, (PerLayerExperts, stock), {})
    return _classes[config.model_type]


class MoECompressForCausalLM:
    """config.json's auto_map entry: dispatches to family_class(config)."""

    def __new__(cls, config, *args, **kwargs):
        return family_class(config)(config, *args, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, config=None, **kwargs):
        if not isinstance(config, PretrainedConfig):  # called directly rather than by AutoModel
            config = AutoConfig.from_pretrained(config or pretrained_model_name_or_path)
        return family_class(config).from_pretrained(pretrained_model_name_or_path, *args,
                                                    config=config, **kwargs)

    @classmethod
    def from_config(cls, config, **kwargs):
        return family_class(config)._from_config(config, **kwargs)

    _from_config = from_config  # what AutoModelForCausalLM.from_config calls
