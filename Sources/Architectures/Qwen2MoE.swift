extension ArchitectureSpec {
    /// Qwen2-MoE / Qwen1.5-MoE: q/k/v biases, an always-on shared expert scaled by
    /// sigmoid(shared_expert_gate(x)), dense layers chosen by mlp_only_layers and decoder_sparse_step.
    public static let qwen2MoE: ArchitectureSpec = {
        var keys = ConfigKeys(expertCount: ["num_experts", "num_local_experts"], expertWidth: ["moe_intermediate_size"],
                              defaultNormEpsilon: 1e-6, defaultRopeTheta: 10_000)
        keys.sharedExpertWidth = ["shared_expert_intermediate_size"]
        var tensors = TensorNameTemplates.mlpExperts()
        tensors.sharedExpertGate = "model.layers.{L}.mlp.shared_expert.gate_proj.weight"
        tensors.sharedExpertUp = "model.layers.{L}.mlp.shared_expert.up_proj.weight"
        tensors.sharedExpertDown = "model.layers.{L}.mlp.shared_expert.down_proj.weight"
        tensors.sharedExpertRouter = "model.layers.{L}.mlp.shared_expert_gate.weight"
        return ArchitectureSpec(
            name: "Qwen2-MoE",
            modelTypes: ["qwen2_moe"],
            keys: keys,
            tensors: tensors,
            attention: AttentionStyle(slidingWindowKey: "sliding_window", slidingWindowEnabledKey: "use_sliding_window"),
            routing: RoutingRule(normalization: .configKey("norm_topk_prob", default: false)),
            sparseLayers: .sparseStep(mlpOnlyLayersKey: "mlp_only_layers", stepKey: "decoder_sparse_step"))
    }()
}
