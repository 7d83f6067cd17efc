extension ArchitectureSpec {
    /// Mixtral (transformers MixtralForCausalLM): softmax router with renormalised top-k,
    /// experts named w1 (gate), w3 (up), w2 (down). transformers 5's fused layout also renames
    /// `block_sparse_moe` to `mlp`.
    public static let mixtral: ArchitectureSpec = {
        var tensors = TensorNameTemplates(
            router: "model.layers.{L}.block_sparse_moe.gate.weight",
            expertGate: "model.layers.{L}.block_sparse_moe.experts.{E}.w1.weight",
            expertUp: "model.layers.{L}.block_sparse_moe.experts.{E}.w3.weight",
            expertDown: "model.layers.{L}.block_sparse_moe.experts.{E}.w2.weight")
        tensors.fusedLayoutRouter = "model.layers.{L}.mlp.gate.weight"
        return ArchitectureSpec(
            name: "Mixtral",
            modelTypes: ["mixtral"],
            keys: ConfigKeys(expertCount: ["num_local_experts", "num_experts"], expertWidth: ["intermediate_size"],
                             defaultNormEpsilon: 1e-5, defaultRopeTheta: 1e6),
            tensors: tensors,
            attention: AttentionStyle(slidingWindowKey: "sliding_window"),
            routing: RoutingRule(normalization: .always),
            sparseLayers: .everyLayer)
    }()
}
