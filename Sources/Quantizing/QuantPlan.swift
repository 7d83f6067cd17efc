import Foundation
import GGUF
import Quantization

/// The bit allocation as data: each GGUF tensor's type, with the size and predicted error that
/// chose it. `--dry-run` writes it, `--plan` reads it back (checked against the model's tensors),
/// so a plan can be inspected, edited and reused without measuring again.
public struct QuantPlan: Codable, Sendable, Equatable {
    public static let format = "moe-compress-quant-plan/1"

    public struct Entry: Codable, Sendable, Equatable {
        public let tensor: String
        public let role: String
        public let layer: Int?
        public let shape: [Int]
        public let type: String
        public let bytes: Int
        /// Summed squared output error on the calibration tokens (ErrorTable); nil for plans
        /// made without measuring (a uniform --types).
        public let predictedError: Double?
    }

    public var format = QuantPlan.format
    public let model: String
    public let targetBitsPerWeight: Double?
    public let bitsPerWeight: Double
    public let bytes: Int
    public let weights: Int
    public let predictedError: Double?
    public let tensors: [Entry]

    public init(model: String, targetBitsPerWeight: Double?, tensors: [Entry]) {
        self.model = model
        self.targetBitsPerWeight = targetBitsPerWeight
        self.tensors = tensors
        bytes = tensors.reduce(0) { $0 + $1.bytes }
        weights = tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }
        bitsPerWeight = Double(bytes * 8) / Double(max(weights, 1))
        let errors = tensors.compactMap(\.predictedError)
        predictedError = errors.count == tensors.count ? errors.reduce(0, +) : nil
    }

    public static func entry(_ tensor: GGUFTensorPlan, type: GGMLType, error: Double?) -> Entry {
        Entry(tensor: tensor.name, role: tensor.role.rawValue, layer: tensor.layer, shape: tensor.dimensions, type: type.name,
              bytes: type.rowBytes(tensor.rowLength) * tensor.elementCount / tensor.rowLength, predictedError: error)
    }

    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    public static func read(_ url: URL) throws -> QuantPlan {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw GGUFError(file: url.path, "cannot read: \(error.localizedDescription)")
        }
        let plan: QuantPlan
        do { plan = try JSONDecoder().decode(QuantPlan.self, from: data) } catch {
            throw GGUFError(file: url.path, "not a quantization plan (\(error))")
        }
        guard plan.format == format else { throw GGUFError(file: url.path, "format '\(plan.format)', expected '\(format)'") }
        return plan
    }

    /// Each tensor's type, checked against the tensors the model becomes: a plan for another
    /// model (other names or shapes) is refused, as is a type whose blocks do not tile a row.
    public func types(for tensors: [GGUFTensorPlan], file: String) throws -> [String: GGMLType] {
        let entries = Dictionary(self.tensors.map { ($0.tensor, $0) }, uniquingKeysWith: { first, _ in first })
        guard entries.count == self.tensors.count, self.tensors.count == tensors.count else {
            throw GGUFError(file: file, "plan has \(self.tensors.count) tensors, the model \(tensors.count): a plan for another model")
        }
        var result: [String: GGMLType] = [:]
        for tensor in tensors {
            guard let entry = entries[tensor.name] else { throw GGUFError(file: file, "plan has no tensor '\(tensor.name)': a plan for another model") }
            guard entry.shape == tensor.dimensions else {
                throw GGUFError(file: file, "tensor '\(tensor.name)': plan shape \(entry.shape), model \(tensor.dimensions): a plan for another model")
            }
            guard let type = GGMLType(name: entry.type) else { throw GGUFError(file: file, "tensor '\(tensor.name)': unknown type '\(entry.type)'") }
            guard tensor.rowLength % type.blockSize == 0 else {
                throw GGUFError(file: file, "tensor '\(tensor.name)': \(type.name) needs rows of a multiple of \(type.blockSize), rows have \(tensor.rowLength)")
            }
            if TypeRules.staysFloat(tensor) && type.isQuantized {
                throw GGUFError(file: file, "tensor '\(tensor.name)' (\(tensor.role.rawValue)) must stay float, plan says \(type.name)")
            }
            result[tensor.name] = type
        }
        return result
    }
}
