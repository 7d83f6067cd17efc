import Foundation

/// SiLU (swish): `x * sigmoid(x)`.
@inlinable
public func silu(_ x: Float) -> Float { x / (1 + expf(-x)) }

/// Logistic sigmoid.
@inlinable
public func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }

/// The SwiGLU combination every expert in the Mixtral family uses: `gate <- silu(gate) * up`.
public func swiGLU(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) {
    for index in 0..<count { gate[index] = silu(gate[index]) * up[index] }
}
