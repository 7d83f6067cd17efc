/// The element types a safetensors file can declare, named as in its header.
public enum DType: String, Sendable, CaseIterable, Codable {
    case bool = "BOOL"
    case u8 = "U8", i8 = "I8"
    case u16 = "U16", i16 = "I16"
    case u32 = "U32", i32 = "I32"
    case u64 = "U64", i64 = "I64"
    case f16 = "F16", bf16 = "BF16", f32 = "F32", f64 = "F64"
    case f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8e4m3, .f8e5m2: return 1
        case .u16, .i16, .f16, .bf16: return 2
        case .u32, .i32, .f32: return 4
        case .u64, .i64, .f64: return 8
        }
    }

    /// Whether `Float32` conversion is defined (the float types and the integer types that later
    /// quantized outputs store; packed fp8 needs a scale to mean anything, so it is read raw only).
    public var convertsToFloat: Bool {
        switch self {
        case .f8e4m3, .f8e5m2, .bool: return false
        default: return true
        }
    }
}
