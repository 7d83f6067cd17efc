/// Little-endian GGUF serialisation of strings and metadata values (gguf.cpp's gguf_write /
/// gguf_read), kept apart from the file layout so the reader and writer share one definition.
struct GGUFByteWriter {
    var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ text: String) {
        let utf8 = Array(text.utf8)
        append(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    mutating func append(_ value: GGUFValue) {
        switch value {
        case .uint8(let v): append(v)
        case .int8(let v): append(v)
        case .uint16(let v): append(v)
        case .int16(let v): append(v)
        case .uint32(let v): append(v)
        case .int32(let v): append(v)
        case .uint64(let v): append(v)
        case .int64(let v): append(v)
        case .float32(let v): append(v.bitPattern)
        case .float64(let v): append(v.bitPattern)
        case .bool(let v): append(UInt8(v ? 1 : 0))
        case .string(let v): append(v)
        case .array(let elementType, let elements):
            append(elementType.rawValue)
            append(UInt64(elements.count))
            for element in elements { append(element) }
        }
    }

    mutating func pad(to alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }
}

/// A bounds-checked cursor over a file's bytes: every length and count is checked against what
/// is left before anything is allocated, so a lying header is an error, never a crash or a huge
/// allocation.
struct GGUFByteReader {
    let bytes: UnsafeRawBufferPointer
    let file: String
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer, file: String) {
        self.bytes = bytes
        self.file = file
    }

    var remaining: Int { bytes.count - offset }

    func error(_ problem: String) -> GGUFError { GGUFError(file: file, "\(problem) (at byte \(offset))") }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw error("truncated while reading \(what())") }
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: value)
    }

    mutating func readString(_ what: @autoclosure () -> String) throws -> String {
        let length = try read(UInt64.self, what())
        guard length <= UInt64(remaining) else { throw error("\(what()): string of \(length) bytes runs past the end of the file") }
        let start = offset
        offset += Int(length)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
        guard let text = String(validating: slice.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw error("\(what()): string is not valid UTF-8")
        }
        return text
    }

    mutating func readValue(of type: GGUFValueType, _ what: @autoclosure () -> String, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try read(UInt8.self, what()))
        case .int8: return .int8(try read(Int8.self, what()))
        case .uint16: return .uint16(try read(UInt16.self, what()))
        case .int16: return .int16(try read(Int16.self, what()))
        case .uint32: return .uint32(try read(UInt32.self, what()))
        case .int32: return .int32(try read(Int32.self, what()))
        case .uint64: return .uint64(try read(UInt64.self, what()))
        case .int64: return .int64(try read(Int64.self, what()))
        case .float32: return .float32(Float(bitPattern: try read(UInt32.self, what())))
        case .float64: return .float64(Double(bitPattern: try read(UInt64.self, what())))
        case .bool:
            let raw = try read(UInt8.self, what())
            guard raw <= 1 else { throw error("\(what()): boolean byte is \(raw), not 0 or 1") }
            return .bool(raw == 1)
        case .string: return .string(try readString(what()))
        case .array:
            // gguf.cpp rejects nested arrays too; the depth bound keeps hostile input from recursing.
            guard depth == 0 else { throw error("\(what()): nested arrays are not allowed") }
            let rawType = try read(UInt32.self, what())
            guard let elementType = GGUFValueType(rawValue: rawType) else {
                throw error("\(what()): unknown array element type \(rawType)")
            }
            let count = try read(UInt64.self, what())
            // Every element takes at least one byte (a string at least eight).
            let minimum = UInt64(elementType.fixedSize ?? 8)
            guard count <= UInt64(remaining) / minimum else {
                throw error("\(what()): array of \(count) elements runs past the end of the file")
            }
            var elements: [GGUFValue] = []
            elements.reserveCapacity(Int(count))
            for _ in 0..<Int(count) { elements.append(try readValue(of: elementType, what(), depth: depth + 1)) }
            return .array(elementType, elements)
        }
    }
}
