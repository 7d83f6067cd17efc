import FixtureSupport
import Foundation

enum TokenizerFixtures {
    /// A tokenizer path as the records store it (relative to the repository root); paths into
    /// ../shared follow MOE_COMPRESS_SHARED when it is set.
    static func tokenizerURL(_ relative: String) -> URL {
        let sharedPrefix = "../shared/"
        if relative.hasPrefix(sharedPrefix) {
            return Fixtures.shared.appendingPathComponent(String(relative.dropFirst(sharedPrefix.count))).standardizedFileURL
        }
        return Fixtures.url(relative)
    }

    /// A real tokenizer.json from ../shared/tokenizers.
    static func shared(_ name: String) -> URL {
        Fixtures.shared.appendingPathComponent("tokenizers/\(name)/tokenizer.json")
    }
}
