import Checkpoint

extension ModelDescription {
    /// Every tensor the config implies must exist with the implied shape; a mismatch names the
    /// config key and the tensor so the user sees which of the two is wrong.
    public func validate(against source: TensorSource, configPath: String) throws {
        let t = spec.tensors
        func check(_ name: String, _ shape: [Int], _ reason: String) throws {
            guard let descriptor = source.descriptor(name) else {
                throw CheckpointError(file: configPath, "\(reason) implies tensor '\(name)', which the checkpoint does not have")
            }
            guard descriptor.shape == shape else {
                throw CheckpointError(file: configPath, "\(reason) implies \(name) has shape \(shape), but the checkpoint stores \(descriptor.shape)")
            }
            guard descriptor.dtype.convertsToFloat else {
                throw CheckpointError(file: configPath, "tensor '\(name)' is stored as \(descriptor.dtype.rawValue), which cannot be computed with")
            }
        }
        func checkBias(_ weight: String, _ features: Int, _ reason: String) throws {
            if source.contains(weight.biasName) { try check(weight.biasName, [features], reason) }
        }

        try check(t.embedding, [vocabularySize, hiddenSize], "vocab_size \(vocabularySize) × hidden_size \(hiddenSize)")
        try check(outputHeadName(in: source), [vocabularySize, hiddenSize], "vocab_size \(vocabularySize) × hidden_size \(hiddenSize)")
        try check(t.finalNorm, [hiddenSize], "hidden_size \(hiddenSize)")
        let queryWidth = attentionHeads * headDim, keyValueWidth = keyValueHeads * headDim
        let heads = "num_attention_heads \(attentionHeads) × head_dim \(headDim)"
        let kvHeads = "num_key_value_heads \(keyValueHeads) × head_dim \(headDim)"
        for layer in 0..<layerCount {
            try check(t.inputNorm.filled(layer: layer), [hiddenSize], "hidden_size \(hiddenSize)")
            try check(t.postAttentionNorm.filled(layer: layer), [hiddenSize], "hidden_size \(hiddenSize)")
            for (template, rows, reason) in [(t.query, queryWidth, heads), (t.key, keyValueWidth, kvHeads), (t.value, keyValueWidth, kvHeads)] {
                try check(template.filled(layer: layer), [rows, hiddenSize], reason)
                try checkBias(template.filled(layer: layer), rows, reason)
            }
            try check(t.output.filled(layer: layer), [hiddenSize, queryWidth], heads)
            switch spec.attention.queryKeyNorm {
            case .none: break
            case .perHead:
                try check(t.queryNorm!.filled(layer: layer), [headDim], "head_dim \(headDim)")
                try check(t.keyNorm!.filled(layer: layer), [headDim], "head_dim \(headDim)")
            case .wholeProjection:
                try check(t.queryNorm!.filled(layer: layer), [queryWidth], heads)
                try check(t.keyNorm!.filled(layer: layer), [keyValueWidth], kvHeads)
            }
            switch feedForward[layer] {
            case .dense(let width):
                try checkMLP(gate: t.denseGate, up: t.denseUp, down: t.denseDown, layer: layer, expert: nil, width: width, reason: "intermediate_size \(width) (layer \(layer) is dense)", check)
            case .sparse(let shape):
                let experts = "\(spec.keys.expertCount[0]) \(shape.expertCount)"
                try check(t.router.filled(layer: layer), [shape.expertCount, hiddenSize], experts)
                for expert in 0..<shape.expertCount {
                    try checkMLP(gate: t.expertGate, up: t.expertUp, down: t.expertDown, layer: layer, expert: expert,
                                 width: shape.expertWidth, reason: "\(spec.keys.expertWidth[0]) \(shape.expertWidth) with \(experts)", check)
                }
                if let width = shape.sharedExpertWidth, let gate = t.sharedExpertGate, let up = t.sharedExpertUp, let down = t.sharedExpertDown {
                    try checkMLP(gate: gate, up: up, down: down, layer: layer, expert: nil, width: width, reason: "\(spec.keys.sharedExpertWidth[0]) \(width)", check)
                    if let router = t.sharedExpertRouter { try check(router.filled(layer: layer), [1, hiddenSize], "hidden_size \(hiddenSize)") }
                }
            }
        }
        if source.contains(t.inputNorm.filled(layer: layerCount)) {
            throw CheckpointError(file: configPath, "\(spec.keys.layerCount[0]) is \(layerCount) but the checkpoint stores more layers (\(t.inputNorm.filled(layer: layerCount)) exists)")
        }
        let extraExpert = spec.tensors.expertGate
        for layer in sparseLayers {
            if case .sparse(let shape) = feedForward[layer], source.contains(extraExpert.filled(layer: layer, expert: shape.expertCount)) {
                throw CheckpointError(file: configPath, "\(spec.keys.expertCount[0]) is \(shape.expertCount) but the checkpoint stores more experts in layer \(layer)")
            }
        }
    }

    private func checkMLP(gate: String, up: String, down: String, layer: Int, expert: Int?, width: Int, reason: String,
                          _ check: (String, [Int], String) throws -> Void) throws {
        try check(gate.filled(layer: layer, expert: expert), [width, hiddenSize], reason)
        try check(up.filled(layer: layer, expert: expert), [width, hiddenSize], reason)
        try check(down.filled(layer: layer, expert: expert), [hiddenSize, width], reason)
    }
}
