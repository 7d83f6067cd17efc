import Checkpoint
import Foundation
import Tensors

/// What `inspect` reports: parameters by kind, bytes by dtype and the files, counted from the
/// stored tensor headers (no tensor data is read).
public struct ModelInventory: Sendable {
    public let parametersByKind: [ParameterKind: Int]
    public let bytesByDType: [DType: Int]
    public let tensorCount: Int
    /// Tensors no template of the architecture describes (reported, and counted as `other`).
    public let unrecognizedTensors: [String]

    public var totalParameters: Int { parametersByKind.values.reduce(0, +) }

    public init(description: ModelDescription, source: TensorSource) {
        let patterns = description.spec.tensors.all.map { entry in
            (Self.regex(for: entry.template), entry.kind)
        }
        var parameters: [ParameterKind: Int] = [:]
        var bytes: [DType: Int] = [:]
        var unrecognized: [String] = []
        for name in source.tensorNames {
            guard let descriptor = source.descriptor(name) else { continue }
            bytes[descriptor.dtype, default: 0] += descriptor.elementCount * descriptor.dtype.byteSize
            let kind = Self.kind(of: name, patterns: patterns)
            if kind == .other { unrecognized.append(name) }
            parameters[kind, default: 0] += descriptor.elementCount
        }
        parametersByKind = parameters
        bytesByDType = bytes
        tensorCount = source.tensorNames.count
        unrecognizedTensors = unrecognized
    }

    private static func kind(of name: String, patterns: [(NSRegularExpression, ParameterKind)]) -> ParameterKind {
        let range = NSRange(name.startIndex..., in: name)
        for (pattern, kind) in patterns where pattern.firstMatch(in: name, range: range) != nil {
            return kind
        }
        // Biases sit beside the weight they belong to.
        if name.hasSuffix(".bias") {
            return kind(of: String(name.dropLast(".bias".count)) + ".weight", patterns: patterns)
        }
        return .other
    }

    private static func regex(for template: String) -> NSRegularExpression {
        let escaped = NSRegularExpression.escapedPattern(for: template)
            .replacingOccurrences(of: "\\{L\\}", with: "[0-9]+")
            .replacingOccurrences(of: "\\{E\\}", with: "[0-9]+")
        // Templates are fixed strings written in this module; a bad one is a programming error.
        return try! NSRegularExpression(pattern: "^\(escaped)$")
    }
}
