import Inference
import Testing

struct PerplexityWindowTests {
    /// Every id after the first is predicted exactly once, with at most seq-len ids of context.
    @Test(arguments: [(2, 1), (10, 3), (70, 16), (65, 16), (64, 16), (5, 100)])
    func windowsPredictEveryTokenOnce(tokens: Int, sequenceLength: Int) {
        let windows = perplexityWindows(tokenCount: tokens, sequenceLength: sequenceLength)
        var predicted: [Int] = []
        for window in windows {
            #expect(window.count >= 2 && window.count <= sequenceLength + 1)
            predicted += Array(window.dropFirst())
        }
        #expect(predicted == Array(1..<tokens))
    }
}
