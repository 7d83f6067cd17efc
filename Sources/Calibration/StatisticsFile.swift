import Checkpoint
import Foundation

/// The statistics file: one safetensors file (docs/statistics.md) holding, per sparse layer L,
/// `layers.L.<measure>` [experts] for every ExpertMeasure, `layers.L.coactivation` [experts,
/// experts], `layers.L.input_square_sum` [experts, hidden] and `layers.L.token_count` [1], all
/// F64, with the provenance as JSON under `__metadata__` → `moe_compress_statistics`.
public enum StatisticsFile {
    public static let format = "moe-compress-statistics/1"

    public static func write(_ statistics: RouterStatistics, to url: URL) throws {
        var arrays: [(name: String, shape: [Int], values: [Double])] = []
        for layer in statistics.layers {
            let prefix = "layers.\(layer.layer)."
            for measure in ExpertMeasure.allCases {
                arrays.append((prefix + measure.rawValue, [layer.expertCount], layer[measure]))
            }
            arrays.append((prefix + "coactivation", [layer.expertCount, layer.expertCount], layer.coactivation))
            arrays.append((prefix + "input_square_sum", [layer.expertCount, layer.hiddenSize], layer.inputSquareSum))
            arrays.append((prefix + "token_count", [1], [layer.tokenCount]))
        }
        let provenance = String(decoding: try JSONEncoder().encode(statistics.provenance), as: UTF8.self)
        var header: [String: Any] = ["__metadata__": ["format": format, "moe_compress_statistics": provenance]]
        var offset = 0
        for array in arrays {
            header[array.name] = ["dtype": "F64", "shape": array.shape, "data_offsets": [offset, offset + array.values.count * 8]]
            offset += array.values.count * 8
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var file = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        for array in arrays {
            array.values.withUnsafeBytes { file.append(contentsOf: $0) }  // x86-64 and arm64 are little-endian, as the format is
        }
        do { try file.write(to: url, options: .atomic) } catch {
            throw CheckpointError(file: url.path, "cannot write: \(error.localizedDescription)")
        }
    }

    public static func read(_ url: URL) throws -> RouterStatistics {
        let file = try SafetensorsFile(path: url.path)
        func fail(_ problem: String) -> CheckpointError { CheckpointError(file: url.path, problem) }
        guard file.header.metadata["format"] == format, let text = file.header.metadata["moe_compress_statistics"] else {
            throw fail("not a moe-compress statistics file (made by `moe-compress calibrate`)")
        }
        let provenance: RouterStatistics.Provenance
        do { provenance = try JSONDecoder().decode(RouterStatistics.Provenance.self, from: Data(text.utf8)) } catch {
            throw fail("its provenance metadata is damaged")
        }
        func array(_ name: String, shape: [Int]) throws -> [Double] {
            guard let info = file.tensorsByName[name] else { throw fail("missing array '\(name)'") }
            guard info.dtype == .f64, info.shape == shape else {
                throw fail("array '\(name)' is \(info.dtype.rawValue) \(info.shape), expected F64 \(shape)")
            }
            let bytes = file.rawBytes(of: info)
            let values = (0..<info.elementCount).map { bytes.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) }
            guard values.allSatisfy(\.isFinite) else { throw fail("array '\(name)' holds a NaN or infinity") }
            return values
        }
        var layers: [LayerStatistics] = []
        let layerIndices = Set(file.header.tensors.compactMap { info -> Int? in
            let parts = info.name.split(separator: ".")
            return parts.count == 3 && parts[0] == "layers" ? Int(parts[1]) : nil
        }).sorted()
        for index in layerIndices {
            let prefix = "layers.\(index)."
            guard let counts = file.tensorsByName[prefix + "counts"], counts.shape.count == 1,
                  let squares = file.tensorsByName[prefix + "input_square_sum"], squares.shape.count == 2 else {
                throw fail("layer \(index) lacks 'counts' or 'input_square_sum'")
            }
            let experts = counts.shape[0], hidden = squares.shape[1]
            var layer = LayerStatistics(layer: index, expertCount: experts, hiddenSize: hidden)
            for measure in ExpertMeasure.allCases { layer[measure] = try array(prefix + measure.rawValue, shape: [experts]) }
            layer.coactivation = try array(prefix + "coactivation", shape: [experts, experts])
            layer.inputSquareSum = try array(prefix + "input_square_sum", shape: [experts, hidden])
            layer.tokenCount = try array(prefix + "token_count", shape: [1])[0]
            layers.append(layer)
        }
        return RouterStatistics(provenance: provenance, layers: layers)
    }
}
