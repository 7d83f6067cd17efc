import Foundation

/// Called by libFuzzer once before any input, so a missing target name stops the run at once.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> Int32 {
    _ = FuzzTarget.selected
    return 0
}

/// libFuzzer's entry point (libFuzzer provides `main`): one input for the reader named by
/// MOE_COMPRESS_FUZZ_TARGET. A crash, a sanitizer report or a malformed error stops the run.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzTarget.selected.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

/// The readers that take bytes from outside: one fuzz target each.
enum FuzzTarget: String, CaseIterable {
    case safetensors
    case index
    case config
    case tokenizer
    case gguf

    static let selected: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["MOE_COMPRESS_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            let names = allCases.map(\.rawValue).joined(separator: ", ")
            FileHandle.standardError.write(Data("set MOE_COMPRESS_FUZZ_TARGET to one of: \(names)\n".utf8))
            exit(2)
        }
        return target
    }()

    func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .safetensors: SafetensorsTarget.run(bytes)
        case .index: ShardIndexTarget.run(bytes)
        case .config: ConfigTarget.run(bytes)
        case .tokenizer: TokenizerTarget.run(bytes)
        case .gguf: GGUFTarget.run(bytes)
        }
    }
}
