import Synchronization

/// tokenizer.json's BPE `model`: splits a word into characters, then applies merges lowest rank
/// first (leftmost among equals), exactly as HF's `Word::merge_all` orders them.
final class BPEModel: Sendable {
    /// The vocabulary, by id. A dictionary, not an array: ids may have gaps, and an array as long
    /// as a file's largest id (up to 2^31) would be an allocation the file alone decides.
    let tokens: [Int: String]
    /// Largest id + 1 (0 for an empty vocabulary).
    let idLimit: Int
    let vocabulary: [ExactString: Int]
    /// Ids of single-character entries, so that splitting a word needs no string lookups.
    private let characterIDs: [Unicode.Scalar: Int32]
    /// (left id << 32 | right id) -> (rank << 32 | merged id).
    private let merges: [UInt64: UInt64]
    /// `<0xXX>` ids by byte value, when byte_fallback is on.
    private let byteFallbackIDs: [Int32?]?
    private let unknownID: Int32?
    private let fuseUnknown: Bool
    private let ignoreMerges: Bool
    private let continuingSubwordPrefix: String?
    private let endOfWordSuffix: String?
    /// Words already merged; HF keeps the same kind of cache, for words under 256 bytes.
    private let cache = Mutex<[ExactString: [Int32]]>([:])
    private static let cacheCapacity = 100_000
    private static let cacheableWordBytes = 256

    init(json: JSONObject) throws {
        // Files without a type are read as the first model that fits, as serde's untagged enum does.
        guard try json.optionalString("type") ?? "BPE" == "BPE" else { throw json.unsupported("model") }
        if let dropout = try json.optionalDouble("dropout"), dropout != 0 {
            throw json.error("unsupported BPE dropout \(dropout) (encoding would be random)")
        }
        guard case .object(let vocab) = json.value("vocab") else {
            throw json.error("\(json.location("vocab")) is missing or not an object")
        }
        var vocabulary: [ExactString: Int] = [:]
        vocabulary.reserveCapacity(vocab.count)
        var characterIDs: [Unicode.Scalar: Int32] = [:]
        var maxID = -1
        for member in vocab {
            let token = member.key
            guard let id = member.value.intValue, id >= 0, id < Int32.max else {
                throw json.error("\(json.location("vocab"))['\(token)'] is not a valid id")
            }
            vocabulary[ExactString(token)] = id
            maxID = max(maxID, id)
            let scalars = token.unicodeScalars
            if scalars.count == 1, let scalar = scalars.first { characterIDs[scalar] = Int32(id) }
        }
        var tokens: [Int: String] = [:]
        tokens.reserveCapacity(vocabulary.count)
        for (token, id) in vocabulary { tokens[id] = token.string }
        self.tokens = tokens
        idLimit = maxID + 1
        self.vocabulary = vocabulary
        self.characterIDs = characterIDs

        // Empty prefix or suffix strings behave like none.
        let prefix = try json.optionalString("continuing_subword_prefix").flatMap { $0.isEmpty ? nil : $0 }
        continuingSubwordPrefix = prefix
        endOfWordSuffix = try json.optionalString("end_of_word_suffix").flatMap { $0.isEmpty ? nil : $0 }
        fuseUnknown = try json.bool("fuse_unk", default: false)
        ignoreMerges = try json.bool("ignore_merges", default: false)

        if let unknown = try json.optionalString("unk_token") {
            guard let id = vocabulary[ExactString(unknown)] else {
                throw json.error("\(json.location("unk_token")) '\(unknown)' is not in the vocabulary")
            }
            unknownID = Int32(id)
        } else {
            unknownID = nil
        }
        if try json.bool("byte_fallback", default: false) {
            byteFallbackIDs = (0..<256).map { byte in
                vocabulary[ExactString("<0x" + hex(UInt8(byte)) + ">")].map { Int32($0) }
            }
        } else {
            byteFallbackIDs = nil
        }

        var merges: [UInt64: UInt64] = [:]
        let entries = try json.array("merges")
        merges.reserveCapacity(entries.count)
        let prefixLength = prefix?.utf8.count ?? 0
        var rank: UInt64 = 0
        for entry in entries {
            // Older files write "a b", newer ones ["a", "b"].
            let pair: [String]
            switch entry {
            case .string(let line):
                if line.hasPrefix("#version") { continue }
                pair = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            case .array(let elements):
                pair = elements.compactMap(\.stringValue)
            default:
                pair = []
            }
            guard pair.count == 2 else { throw json.error("\(json.location("merges"))[\(rank)] is not a pair of tokens") }
            let merged = pair[0] + String(decoding: pair[1].utf8.dropFirst(prefixLength), as: UTF8.self)
            guard let left = vocabulary[ExactString(pair[0])], let right = vocabulary[ExactString(pair[1])],
                  let result = vocabulary[ExactString(merged)] else {
                throw json.error("\(json.location("merges"))[\(rank)] '\(pair[0]) \(pair[1])' uses a token missing from the vocabulary")
            }
            // A repeated pair keeps its last rank, as HF's map does.
            merges[UInt64(left) << 32 | UInt64(right)] = rank << 32 | UInt64(result)
            rank += 1
        }
        self.merges = merges
    }

    /// Appends the ids of one pre-tokenized word.
    func tokenize(_ word: String, into ids: inout [Int]) {
        guard !word.isEmpty else { return }
        let key = ExactString(word)
        if ignoreMerges, let id = vocabulary[key] {
            ids.append(id)
            return
        }
        let cacheable = word.utf8.count < Self.cacheableWordBytes
        if cacheable, let hit = cache.withLock({ $0[key] }) {
            ids.append(contentsOf: hit.lazy.map(Int.init))
            return
        }
        let symbols = merge(characters(of: word))
        ids.append(contentsOf: symbols.lazy.map(Int.init))
        if cacheable {
            cache.withLock { if $0.count < Self.cacheCapacity { $0[key] = symbols } }
        }
    }

    /// The word's initial symbols: one per character, `<0xXX>` bytes for characters outside the
    /// vocabulary when byte_fallback is on, else the unknown token (runs fused when fuse_unk is on).
    private func characters(of word: String) -> [Int32] {
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.utf8.count)
        var pendingUnknown: Int32?
        let scalars = Array(word.unicodeScalars)
        for (index, scalar) in scalars.enumerated() {
            var piece: String?
            let id: Int32?
            if continuingSubwordPrefix == nil && endOfWordSuffix == nil {
                id = characterIDs[scalar]
            } else {
                var text = String(scalar)
                if index > 0, let prefix = continuingSubwordPrefix { text = prefix + text }
                if index == scalars.count - 1, let suffix = endOfWordSuffix { text += suffix }
                piece = text
                id = vocabulary[ExactString(text)].map { Int32($0) }
            }
            if let id {
                if let unknown = pendingUnknown { symbols.append(unknown) }
                pendingUnknown = nil
                symbols.append(id)
                continue
            }
            if let byteFallbackIDs {
                let bytes = Array((piece ?? String(scalar)).utf8)
                let fallback = bytes.compactMap { byteFallbackIDs[Int($0)] }
                if fallback.count == bytes.count {
                    symbols.append(contentsOf: fallback)
                    continue
                }
            }
            if let unknownID {
                if let unknown = pendingUnknown, !fuseUnknown { symbols.append(unknown) }
                pendingUnknown = unknownID
            }
        }
        if let unknown = pendingUnknown { symbols.append(unknown) }
        return symbols
    }

    /// Applies merges to a doubly linked list of symbols, driven by a min-heap of (rank, position).
    private func merge(_ symbols: [Int32]) -> [Int32] {
        guard symbols.count > 1 else { return symbols }
        var ids = symbols
        var previous = (0..<ids.count).map { Int32($0) - 1 }
        var next = (0..<ids.count).map { Int32($0) + 1 }
        next[ids.count - 1] = -1
        var alive = [Bool](repeating: true, count: ids.count)
        var queue = MinHeap()
        func mergeStarting(at position: Int) -> UInt64? {
            let right = next[position]
            guard right >= 0 else { return nil }
            return merges[UInt64(UInt32(ids[position])) << 32 | UInt64(UInt32(ids[Int(right)]))]
        }
        func enqueue(_ position: Int) {
            if let found = mergeStarting(at: position) { queue.push(found & 0xFFFF_FFFF_0000_0000 | UInt64(position)) }
        }
        for position in 0..<(ids.count - 1) { enqueue(position) }

        while let top = queue.pop() {
            let rank = top >> 32
            let position = Int(top & 0xFFFF_FFFF)
            // Entries go stale when a neighbour merged first; the pair then differs, and so does its rank.
            guard alive[position], let found = mergeStarting(at: position), found >> 32 == rank else { continue }
            let right = Int(next[position])
            ids[position] = Int32(truncatingIfNeeded: found & 0xFFFF_FFFF)
            alive[right] = false
            next[position] = next[right]
            if next[right] >= 0 { previous[Int(next[right])] = Int32(position) }
            if previous[position] >= 0 { enqueue(Int(previous[position])) }
            enqueue(position)
        }
        return zip(ids, alive).compactMap { $1 ? $0 : nil }
    }
}

/// A binary min-heap of packed (rank << 32 | position) keys.
private struct MinHeap {
    private var items: [UInt64] = []

    mutating func push(_ item: UInt64) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child] < items[parent] else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> UInt64? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        guard !items.isEmpty else { return top }
        items[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < items.count else { break }
            let smaller = left + 1 < items.count && items[left + 1] < items[left] ? left + 1 : left
            guard items[smaller] < items[parent] else { break }
            items.swapAt(smaller, parent)
            parent = smaller
        }
        return top
    }
}

/// Two upper-case hex digits, as Rust's `{:02X}`.
private func hex(_ byte: UInt8) -> String {
    let digits = Array("0123456789ABCDEF".unicodeScalars)
    return String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0xF)])
}
