/// tokenizer.json's `post_processor`, reduced to what it does to the ids of a single sequence: the
/// special tokens placed around it when special tokens are asked for.
indirect enum PostProcessor: Sendable {
    enum Piece: Sendable {
        case sequence
        case special([Int])
    }

    case template([Piece])
    case sequence([PostProcessor])

    init(json: JSONObject) throws {
        switch try json.type() {
        case "TemplateProcessing":
            self = .template(try Self.singleTemplate(json))
        case "ByteLevel":
            // Only trims offsets.
            self = .template([.sequence])
        case "RobertaProcessing", "BertProcessing":
            self = .template([.special([try Self.tokenID(json, "cls")]), .sequence, .special([try Self.tokenID(json, "sep")])])
        case "Sequence":
            self = .sequence(try json.objects("processors").map(PostProcessor.init(json:)))
        default:
            throw json.unsupported("post_processor")
        }
    }

    func apply(_ ids: [Int]) -> [Int] {
        switch self {
        case .template(let pieces):
            return pieces.flatMap { piece -> [Int] in
                switch piece {
                case .sequence: ids
                case .special(let special): special
                }
            }
        case .sequence(let processors):
            return processors.reduce(ids) { $1.apply($0) }
        }
    }

    /// TemplateProcessing's `single` list, with each special token's ids from `special_tokens`.
    private static func singleTemplate(_ json: JSONObject) throws -> [Piece] {
        let special = try json.object("special_tokens")
        return try json.objects("single").map { piece in
            if let sequence = try piece.optionalObject("Sequence") {
                guard try sequence.string("id") == "A" else {
                    throw json.error("\(sequence.path) refers to a second sequence in the single-sequence template")
                }
                return .sequence
            }
            let name = try piece.object("SpecialToken").string("id")
            guard let entry = try special.optionalObject(name) else {
                throw json.error("\(special.path) has no entry for template token '\(name)'")
            }
            let ids = try entry.array("ids").map { value -> Int in
                guard let id = value.intValue else { throw json.error("\(entry.path).ids holds a non-integer") }
                return id
            }
            return .special(ids)
        }
    }

    /// A `["<s>", 0]` pair's id.
    private static func tokenID(_ json: JSONObject, _ key: String) throws -> Int {
        let pair = try json.array(key)
        guard pair.count == 2, let id = pair[1].intValue else { throw json.error("\(json.path).\(key) is not a [token, id] pair") }
        return id
    }
}
