import CLinearAlgebra
import Inference

/// Σ x xᵀ over calibration tokens of the inputs of chosen weight matrices (GPTQ's Hessian, up to
/// a factor 2), over only the tokens routed to an expert for its matrices. Matrices that share an
/// input (q, k and v; an expert's gate and up) share one accumulator. Float32 accumulation by
/// ssyrk (one rank-k update per batch), widened to Float64 when read.
public final class InputHessians: ForwardObserver {
    private let wanted: Set<String>
    private var sums: [String: UnsafeMutablePointer<Float>] = [:]
    private var widths: [String: Int] = [:]
    private var counts: [String: Int] = [:]
    /// Tensor name → the name its accumulator is kept under.
    private var owner: [String: String] = [:]

    public init(for tensors: Set<String>) { wanted = tensors }

    deinit { sums.values.forEach { $0.deallocate() } }

    public var wantsLinearInputs: Bool { true }
    public func observe(routing: RoutingTrace) {}

    public func observe(linearInput: LinearInput) {
        guard let key = linearInput.weights.first(where: wanted.contains), linearInput.tokens > 0 else { return }
        let width = linearInput.width
        let sum: UnsafeMutablePointer<Float>
        if let existing = sums[key] {
            sum = existing
        } else {
            sum = .allocate(capacity: width * width)
            sum.initialize(repeating: 0, count: width * width)
            sums[key] = sum
            widths[key] = width
            for name in linearInput.weights { owner[name] = key }
        }
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(width), Int32(linearInput.tokens), 1,
                    linearInput.rows.baseAddress, Int32(width), 1, sum, Int32(width))
        counts[key, default: 0] += linearInput.tokens
    }

    /// The symmetric Hessian of `tensor`'s input and the tokens it was summed over (nil: none reached it).
    public func hessian(of tensor: String) -> (matrix: [Double], tokens: Int)? {
        guard let key = owner[tensor], let sum = sums[key], let width = widths[key], let tokens = counts[key] else { return nil }
        var matrix = [Double](repeating: 0, count: width * width)
        for i in 0..<width {
            for j in i..<width {
                let value = Double(sum[i * width + j])
                matrix[i * width + j] = value
                matrix[j * width + i] = value
            }
        }
        return (matrix, tokens)
    }
}
