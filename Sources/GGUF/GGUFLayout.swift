import Architectures
import Checkpoint

/// What one GGUF tensor is made of: the Hugging Face tensors it comes from (one, or one per expert
/// for a stacked `_exps` tensor, expert e at slice e) and how their rows are arranged.
public struct GGUFTensorPlan: Sendable, Equatable {
    /// How llama.cpp's quantizer classifies a tensor (by name in llama-quant.cpp); the bit
    /// allocator's units and llama-quantize's rules both work on these.
    public enum Role: String, Sendable, Codable, CaseIterable {
        case embedding, output, norm, router, bias
        case attentionQuery = "attn_q", attentionKey = "attn_k", attentionValue = "attn_v", attentionOutput = "attn_output"
        case expertGate = "ffn_gate_exps", expertUp = "ffn_up_exps", expertDown = "ffn_down_exps"
        case sharedGate = "ffn_gate_shexp", sharedUp = "ffn_up_shexp", sharedDown = "ffn_down_shexp", sharedRouter = "ffn_gate_inp_shexp"
        case denseGate = "ffn_gate", denseUp = "ffn_up", denseDown = "ffn_down"

        /// Tensors llama.cpp never quantizes: norms, biases, the router (a tiny matrix whose
        /// rounding moves every routing decision).
        public var staysFloat: Bool { [.norm, .router, .bias, .sharedRouter].contains(self) }
    }

    public let name: String
    /// ggml order: `[in, out]` for a matrix, `[in, out, experts]` for stacked experts.
    public let dimensions: [Int]
    public let sources: [String]
    public let role: Role
    public let layer: Int?
    /// llama's q/k rows are regrouped per head from halves to adjacent pairs (this many heads).
    public let permutedHeads: Int?

    public var rowLength: Int { dimensions[0] }
    /// Rows per source tensor (one expert's rows for a stacked tensor).
    public var rowsPerSource: Int { dimensions.count >= 2 ? dimensions[1] : 1 }
    public var elementCount: Int { dimensions.reduce(1, *) }
}

/// The GGUF tensors a model becomes, in llama.cpp's order (globals, then layer by layer), built
/// from the family's name table and checked against llama.cpp's constraints.
public enum GGUFLayout {
    public static func plan(_ description: ModelDescription, source: TensorSource, family: GGUFFamily,
                            file: String) throws -> [GGUFTensorPlan] {
        let table = GGUFTensorName.table(for: description.spec.tensors)
        let templates = description.spec.tensors
        var plans: [GGUFTensorPlan] = []

        func role(for gguf: String) -> GGUFTensorPlan.Role {
            let base = gguf.replacingOccurrences(of: "blk.{L}.", with: "")
            if base.hasSuffix(".bias") { return .bias }
            if base.hasSuffix("norm.weight") { return .norm }
            switch base {
            case "token_embd.weight": return .embedding
            case "output.weight": return .output
            case "ffn_gate_inp.weight": return .router
            default: return GGUFTensorPlan.Role(rawValue: String(base.dropLast(".weight".count))) ?? .norm
            }
        }

        func add(_ entry: GGUFTensorName, layer: Int?, experts: Int, sourceNames: [String]? = nil) throws {
            let ggufName = layer.map { entry.gguf.replacingOccurrences(of: "{L}", with: String($0)) } ?? entry.gguf
            let name = { (expert: Int) in
                var text = entry.huggingFace
                if let layer { text = text.replacingOccurrences(of: "{L}", with: String(layer)) }
                return text.replacingOccurrences(of: "{E}", with: String(expert))
            }
            let names = sourceNames ?? (entry.stacksExperts ? (0..<experts).map(name) : [name(0)])
            guard names.allSatisfy(source.contains) else { return }
            guard let first = source.descriptor(names[0]) else { return }
            var dimensions = Array(first.shape.reversed())
            // A [1, n] matrix (Qwen2-MoE's shared-expert gate) is the vector llama.cpp loads.
            if dimensions.count == 2 && dimensions[1] == 1 { dimensions = [dimensions[0]] }
            for other in names.dropFirst() where source.descriptor(other)?.shape != first.shape {
                throw GGUFError(file: file, "tensor '\(other)' has another shape than '\(names[0])'; one GGUF tensor holds all experts of a layer")
            }
            if entry.stacksExperts { dimensions.append(names.count) }
            let tensorRole = role(for: entry.gguf)
            let permuted: Int? = family.permutesQueryKey
                ? (tensorRole == .attentionQuery && entry.gguf.hasSuffix(".weight") ? description.attentionHeads
                   : tensorRole == .attentionKey && entry.gguf.hasSuffix(".weight") ? description.keyValueHeads : nil)
                : nil
            plans.append(GGUFTensorPlan(name: ggufName, dimensions: dimensions, sources: names, role: tensorRole,
                                        layer: layer, permutedHeads: permuted))
        }

        for entry in table where !entry.gguf.contains("{L}") && entry.gguf != "output.weight" {
            try add(entry, layer: nil, experts: 0)
        }
        if let head = table.first(where: { $0.gguf == "output.weight" }) {
            if source.contains(templates.outputHead) {
                try add(head, layer: nil, experts: 0)
            } else if !family.outputHeadOptional {
                // Tied embeddings: llama.cpp's loader for this family wants output.weight itself.
                try add(head, layer: nil, experts: 0, sourceNames: [templates.embedding])
            }
        }
        for layer in 0..<description.layerCount {
            let experts: Int
            switch description.feedForward[layer] {
            case .sparse(let shape): experts = shape.expertCount
            case .dense:
                if family.allLayersSparse {
                    throw GGUFError(file: file, "layer \(layer) is dense, but llama.cpp's \(family.architecture) graph runs every layer as a sparse block")
                }
                experts = 0
            }
            for entry in table where entry.gguf.contains("{L}") {
                try add(entry, layer: layer, experts: experts)
            }
        }
        try checkCovered(plans, source: source, file: file)
        return plans
    }

    /// Every source tensor must go somewhere: a tensor the table does not know would be dropped
    /// silently and llama.cpp would compute another model.
    private static func checkCovered(_ plans: [GGUFTensorPlan], source: TensorSource, file: String) throws {
        let used = Set(plans.flatMap(\.sources))
        if let unused = source.tensorNames.first(where: { !used.contains($0) }) {
            throw GGUFError(file: file, "tensor '\(unused)' has no GGUF name for llama.cpp")
        }
    }
}
