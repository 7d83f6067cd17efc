import CKernels
import Foundation

/// SiLU (swish): `x * sigmoid(x)`.
@inlinable
public func silu(_ x: Float) -> Float { x / (1 + expf(-x)) }

/// Logistic sigmoid.
@inlinable
public func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }

/// The SwiGLU combination every expert in the Mixtral family uses, `silu(gate) * up`, for `rows`
/// rows that each hold `width` gate values followed by `width` up values (one GEMM over the
/// stacked gate and up projections produces this layout). Writes `rows x width` values.
public func swiGLU(stacked: UnsafePointer<Float>, rows: Int, width: Int, into output: UnsafeMutablePointer<Float>) {
    ck_swiglu_stacked(stacked, rows, width, output)
}
