import Checkpoint
import Foundation
import Tensors

/// Computes tensors a stage makes anew (merged or recombined experts), as Float32, on demand:
/// a producer may work a layer at a time and keep only that layer.
public protocol TensorProducer: AnyObject, Sendable {
    func produce(_ name: String, into destination: UnsafeMutablePointer<Float>) throws
}

/// How one tensor of a derived source is made from a tensor of its base.
public enum TensorRecipe: Sendable, Equatable {
    /// The base tensor as it is, possibly under another name (a kept expert, renumbered).
    case copy(of: String)
    /// Chosen slices along the first dimension, in the given order (router rows of kept experts,
    /// entries of a 1-D bias).
    case rows(of: String, [Int])
    /// New values from a producer, stored as `dtype` with `shape`.
    case produced(by: TensorProducer, dtype: DType, shape: [Int])

    public static func == (lhs: TensorRecipe, rhs: TensorRecipe) -> Bool {
        switch (lhs, rhs) {
        case (.copy(let a), .copy(let b)): return a == b
        case (.rows(let a, let x), .rows(let b, let y)): return a == b && x == y
        case (.produced(let p, let d, let s), .produced(let q, let e, let t)): return p === q && d == e && s == t
        default: return false
        }
    }
}

/// A tensor source computed from another one by renaming tensors, selecting rows and producing
/// new tensors: what pruning and merging stages output. Every path reads only what it needs from the base: a copied tensor is
/// the base's (in place under bf16 compute, byte for byte when written), and selected rows are
/// gathered row by row.
public final class DerivedTensorSource: TensorSource, @unchecked Sendable {
    public let base: TensorSource
    public let tensorNames: [String]
    private let recipes: [String: TensorRecipe]
    private let descriptors: [String: TensorDescriptor]

    /// `recipes` in the order the tensors should be listed (and written).
    public init(base: TensorSource, recipes: [(name: String, recipe: TensorRecipe)]) throws {
        self.base = base
        var table: [String: TensorRecipe] = [:]
        var descriptors: [String: TensorDescriptor] = [:]
        for (name, recipe) in recipes {
            guard table[name] == nil else { throw CheckpointError(file: name, "derived tensor defined twice") }
            let baseName: String
            switch recipe {
            case .copy(let of): baseName = of
            case .rows(let of, _): baseName = of
            case .produced(_, let dtype, let shape):
                guard [.f32, .f16, .bf16].contains(dtype) else { throw CheckpointError(file: name, "cannot store computed values as \(dtype.rawValue)") }
                descriptors[name] = TensorDescriptor(name: name, dtype: dtype, shape: shape)
                table[name] = recipe
                continue
            }
            guard let stored = base.descriptor(baseName) else {
                throw CheckpointError(file: baseName, "tensor not found (needed for '\(name)')")
            }
            switch recipe {
            case .copy:
                descriptors[name] = TensorDescriptor(name: name, dtype: stored.dtype, shape: stored.shape)
            case .produced:
                break
            case .rows(_, let rows):
                guard let first = stored.shape.first, rows.allSatisfy({ (0..<first).contains($0) }) else {
                    throw CheckpointError(file: baseName, "rows \(rows) are outside its shape \(stored.shape)")
                }
                descriptors[name] = TensorDescriptor(name: name, dtype: stored.dtype, shape: [rows.count] + stored.shape.dropFirst())
            }
            table[name] = recipe
        }
        tensorNames = recipes.map(\.name)
        self.recipes = table
        self.descriptors = descriptors
    }

    public func descriptor(_ name: String) -> TensorDescriptor? { descriptors[name] }

    public func recipe(_ name: String) -> TensorRecipe? { recipes[name] }

    private func recipe(of name: String) throws -> TensorRecipe {
        guard let recipe = recipes[name] else { throw CheckpointError(file: name, "tensor not found in the derived model") }
        return recipe
    }

    public func readFloat32(_ name: String, into destination: UnsafeMutablePointer<Float>) throws {
        switch try recipe(of: name) {
        case .copy(let of):
            try base.readFloat32(of, into: destination)
        case .rows(let of, let rows):
            try gatherFloat32(of, rows: rows, into: destination)
        case .produced(let producer, let dtype, let shape):
            try producer.produce(name, into: destination)
            Self.roundToStored(destination, count: shape.reduce(1, *), dtype: dtype)
        }
    }

    /// Produced values read as the stored dtype would give them back, so that computing with the
    /// view and computing with the written checkpoint agree exactly.
    private static func roundToStored(_ values: UnsafeMutablePointer<Float>, count: Int, dtype: DType) {
        switch dtype {
        case .bf16:
            roundToBFloat16(values, count: count)
        case .f16:
            let halves = UnsafeMutablePointer<UInt16>.allocate(capacity: max(count, 1))
            defer { halves.deallocate() }
            convertFromFloat32(values, count: count, to: .f16, into: UnsafeMutableRawPointer(halves))
            convertToFloat32(UnsafeRawPointer(halves), dtype: .f16, count: count, into: values)
        default:
            break
        }
    }

    public func readFloat32Rows(_ name: String, rows: [Int], into destination: UnsafeMutablePointer<Float>) throws {
        switch try recipe(of: name) {
        case .copy(let of):
            try base.readFloat32Rows(of, rows: rows, into: destination)
        case .rows(let of, let selected):
            guard rows.allSatisfy({ selected.indices.contains($0) }) else {
                throw CheckpointError(file: name, "rows \(rows) are outside its \(selected.count) rows")
            }
            try gatherFloat32(of, rows: rows.map { selected[$0] }, into: destination)
        case .produced(let producer, let dtype, let shape):
            let whole = FloatBuffer(uninitializedCount: shape.reduce(1, *))
            try producer.produce(name, into: whole.pointer)
            Self.roundToStored(whole.pointer, count: whole.count, dtype: dtype)
            let width = shape.dropFirst().reduce(1, *)
            guard rows.allSatisfy({ (0..<(shape.first ?? 0)).contains($0) }) else {
                throw CheckpointError(file: name, "rows \(rows) are outside its shape \(shape)")
            }
            gather(UnsafeRawPointer(whole.pointer), rowBytes: width * 4, rows: rows, into: UnsafeMutableRawPointer(destination))
        }
    }

    public func readBFloat16(_ name: String, into destination: UnsafeMutablePointer<UInt16>) throws {
        switch try recipe(of: name) {
        case .copy(let of):
            try base.readBFloat16(of, into: destination)
        case .rows(let of, let rows):
            let stored = try baseDescriptor(of)
            let whole = BFloat16Buffer(uninitializedCount: stored.elementCount)
            try base.readBFloat16(of, into: whole.pointer)
            gather(UnsafeRawPointer(whole.pointer), rowBytes: rowElements(stored) * 2, rows: rows, into: UnsafeMutableRawPointer(destination))
        case .produced(let producer, _, let shape):
            let values = FloatBuffer(uninitializedCount: shape.reduce(1, *))
            try producer.produce(name, into: values.pointer)
            convertFromFloat32(values.pointer, count: values.count, to: .bf16, into: UnsafeMutableRawPointer(destination))
        }
    }

    public func readStored(_ name: String, into destination: UnsafeMutableRawPointer) throws {
        switch try recipe(of: name) {
        case .copy(let of):
            try base.readStored(of, into: destination)
        case .rows(let of, let rows):
            let stored = try baseDescriptor(of)
            let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(stored.elementCount * stored.dtype.byteSize, 1), alignment: 16)
            defer { bytes.deallocate() }
            try base.readStored(of, into: bytes.baseAddress!)
            gather(UnsafeRawPointer(bytes.baseAddress!), rowBytes: rowElements(stored) * stored.dtype.byteSize, rows: rows, into: destination)
        case .produced(let producer, let dtype, let shape):
            let values = FloatBuffer(uninitializedCount: shape.reduce(1, *))
            try producer.produce(name, into: values.pointer)
            convertFromFloat32(values.pointer, count: values.count, to: dtype, into: destination)
        }
    }

    public func storedBFloat16(_ name: String) -> UnsafePointer<UInt16>? {
        guard case .copy(let of)? = recipes[name] else { return nil }
        return base.storedBFloat16(of)
    }

    public func prefetch(_ names: [String]) { base.prefetch(names.compactMap(baseName)) }
    public func release(_ names: [String]) { base.release(names.compactMap(baseName)) }

    private func baseName(_ name: String) -> String? {
        switch recipes[name] {
        case .copy(let of)?: return of
        case .rows(let of, _)?: return of
        case .produced?, nil: return nil
        }
    }

    private func baseDescriptor(_ name: String) throws -> TensorDescriptor {
        guard let descriptor = base.descriptor(name) else { throw CheckpointError(file: name, "tensor not found") }
        return descriptor
    }

    private func rowElements(_ descriptor: TensorDescriptor) -> Int { descriptor.shape.dropFirst().reduce(1, *) }

    /// Rows of a 2-D tensor through the base's own row reads; other ranks (1-D biases) are small
    /// enough to read whole.
    private func gatherFloat32(_ name: String, rows: [Int], into destination: UnsafeMutablePointer<Float>) throws {
        let stored = try baseDescriptor(name)
        if stored.shape.count == 2 {
            try base.readFloat32Rows(name, rows: rows, into: destination)
            return
        }
        let whole = FloatBuffer(uninitializedCount: stored.elementCount)
        try base.readFloat32(name, into: whole.pointer)
        gather(UnsafeRawPointer(whole.pointer), rowBytes: rowElements(stored) * 4, rows: rows, into: UnsafeMutableRawPointer(destination))
    }

    private func gather(_ source: UnsafeRawPointer, rowBytes: Int, rows: [Int], into destination: UnsafeMutableRawPointer) {
        for (index, row) in rows.enumerated() {
            (destination + index * rowBytes).copyMemory(from: source + row * rowBytes, byteCount: rowBytes)
        }
    }
}
