import Checkpoint

extension Checkpoint {
    /// The checkpoint with its routed experts under the family's per-expert names. transformers 5
    /// can save a layer's experts fused (`save_pretrained(..., save_original_format=False)`): gate
    /// and up as one `[experts, 2 × width, hidden]` tensor, down as `[experts, hidden, width]`.
    /// Each expert's matrices are contiguous blocks of those, so they are presented as views
    /// (`Checkpoint.presenting`), read, used in place and released like stored tensors. A
    /// checkpoint in the per-expert layout comes back unchanged.
    public func withPerExpertTensors() throws -> Checkpoint {
        let names = try ArchitectureRegistry.spec(for: config).tensors
        var views: [TensorView] = []
        var layer = 0
        while contains(names.inputNorm.filled(layer: layer)) {
            defer { layer += 1 }
            let gateUpName = names.fusedExpertGateUp.filled(layer: layer), downName = names.fusedExpertDown.filled(layer: layer)
            guard let gateUp = descriptor(gateUpName) else { continue }
            guard let down = descriptor(downName) else {
                throw CheckpointError(file: location(of: gateUpName)?.file.path ?? directory.path, "has fused '\(gateUpName)' but no '\(downName)'")
            }
            guard gateUp.shape.count == 3, down.shape.count == 3, gateUp.shape[1] % 2 == 0,
                  down.shape[0] == gateUp.shape[0], down.shape[1] == gateUp.shape[2], down.shape[2] * 2 == gateUp.shape[1] else {
                throw CheckpointError(file: location(of: gateUpName)?.file.path ?? directory.path, "fused experts of layer \(layer) disagree: '\(gateUpName)' \(gateUp.shape), '\(downName)' \(down.shape) (expected [E, 2I, H] and [E, H, I])")
            }
            let (experts, width, hidden) = (gateUp.shape[0], down.shape[2], down.shape[1])
            // Empty expert matrices would let a zero-byte tensor declare any number of experts
            // (and so any number of views); with bytes behind them, the count is bounded by the file.
            guard width > 0, hidden > 0 else {
                throw CheckpointError(file: location(of: gateUpName)?.file.path ?? directory.path, "fused experts of layer \(layer) are empty: '\(gateUpName)' \(gateUp.shape)")
            }
            for expert in 0..<experts {
                let first = expert * 2 * width * hidden
                views.append(TensorView(name: names.expertGate.filled(layer: layer, expert: expert), stored: gateUpName,
                                        shape: [width, hidden], elementOffset: first))
                views.append(TensorView(name: names.expertUp.filled(layer: layer, expert: expert), stored: gateUpName,
                                        shape: [width, hidden], elementOffset: first + width * hidden))
                views.append(TensorView(name: names.expertDown.filled(layer: layer, expert: expert), stored: downName,
                                        shape: [hidden, width], elementOffset: expert * hidden * width))
            }
            let router = names.router.filled(layer: layer)
            if let renamed = names.fusedLayoutRouter?.filled(layer: layer), !contains(router), let stored = descriptor(renamed) {
                views.append(TensorView(name: router, stored: renamed, shape: stored.shape))
            }
        }
        return views.isEmpty ? self : try presenting(views)
    }
}
