extension ArchitectureSpec {
    /// OLMoE: RMSNorm over the whole q and k projections, optional clip_qkv, head_dim always
    /// hidden_size / heads, top-k weights not renormalised unless norm_topk_prob.
    public static let olmoe: ArchitectureSpec = {
        var keys = ConfigKeys(expertCount: ["num_experts", "num_local_experts"], expertWidth: ["intermediate_size"],
                              defaultNormEpsilon: 1e-5, defaultRopeTheta: 10_000)
        keys.headDim = []
        var tensors = TensorNameTemplates.mlpExperts()
        tensors.queryNorm = "model.layers.{L}.self_attn.q_norm.weight"
        tensors.keyNorm = "model.layers.{L}.self_attn.k_norm.weight"
        return ArchitectureSpec(
            name: "OLMoE",
            modelTypes: ["olmoe"],
            keys: keys,
            tensors: tensors,
            attention: AttentionStyle(queryKeyNorm: .wholeProjection, clipKey: "clip_qkv"),
            routing: RoutingRule(normalization: .configKey("norm_topk_prob", default: false)),
            sparseLayers: .everyLayer)
    }()
}
