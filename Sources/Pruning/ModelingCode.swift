/// modeling_moe_compress.py, written beside checkpoints with per-layer expert counts (see
/// PerLayerExperts). Kept here, in the binary, so an installed moe-compress needs no resource
/// files; Fixtures/scripts/record_per_layer_prune.py reads it from this file to prove that
/// transformers loads such a checkpoint.
enum ModelingCode {
    static let python = #"""
# placeholder until the modeling code lands
"""#
}
