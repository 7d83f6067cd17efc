extension ArchitectureSpec {
    /// Qwen3-MoE: RMSNorm on each query and key head, explicit head_dim, no shared expert.
    public static let qwen3MoE: ArchitectureSpec = {
        var tensors = TensorNameTemplates.mlpExperts()
        tensors.queryNorm = "model.layers.{L}.self_attn.q_norm.weight"
        tensors.keyNorm = "model.layers.{L}.self_attn.k_norm.weight"
        return ArchitectureSpec(
            name: "Qwen3-MoE",
            modelTypes: ["qwen3_moe"],
            keys: ConfigKeys(expertCount: ["num_experts", "num_local_experts"], expertWidth: ["moe_intermediate_size"],
                             defaultNormEpsilon: 1e-6, defaultRopeTheta: 10_000),
            tensors: tensors,
            attention: AttentionStyle(queryKeyNorm: .perHead, slidingWindowKey: "sliding_window",
                                      slidingWindowEnabledKey: "use_sliding_window"),
            routing: RoutingRule(normalization: .configKey("norm_topk_prob", default: false)),
            sparseLayers: .sparseStep(mlpOnlyLayersKey: "mlp_only_layers", stepKey: "decoder_sparse_step"))
    }()
}
