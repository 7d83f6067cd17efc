import Architectures
import Foundation
import Inference

/// Accumulates every sparse layer's `LayerStatistics` from the forward pass's own routing and
/// expert outputs: only routed tokens are observed, the ones the pass computes anyway, so
/// calibration costs one forward pass whatever the expert count.
public final class StatisticsCollector: ForwardObserver {
    public private(set) var layers: [Int: LayerStatistics] = [:]
    public var wantsExpertActivations: Bool { true }
    private let hiddenSize: Int
    /// Weight × ‖output‖ of each (expert, token) of the current layer, waiting for the block's
    /// combined output to give each token's contribution (EASY-EP).
    private var pending: [(expert: Int, token: Int, weightedNorm: Double)] = []

    public init(model: ModelDescription) {
        hiddenSize = model.hiddenSize
        for (layer, kind) in model.feedForward.enumerated() {
            if case .sparse(let shape) = kind {
                layers[layer] = LayerStatistics(layer: layer, expertCount: shape.expertCount, hiddenSize: model.hiddenSize)
            }
        }
    }

    public func observe(routing trace: RoutingTrace) {
        guard var statistics = layers[trace.layer] else { return }
        let experts = trace.expertCount, k = trace.expertsPerToken
        var probabilitySum = statistics[.probabilitySum], counts = statistics[.counts]
        var routedProbability = statistics[.routedProbabilitySum], routedWeight = statistics[.routedWeightSum]
        var topLogit = statistics[.top1LogitSum]
        for token in 0..<trace.tokenCount {
            let row = token * experts
            // The first largest logit, as torch.topk(logits, 1) picks it.
            var best = 0
            for expert in 1..<max(experts, 1) where trace.routerLogits[row + expert] > trace.routerLogits[row + best] { best = expert }
            topLogit[best] += Double(trace.routerLogits[row + best])
            for expert in 0..<experts { probabilitySum[expert] += Double(trace.probabilities[row + expert]) }
            for slot in 0..<k {
                let expert = trace.selectedExperts[token * k + slot]
                counts[expert] += 1
                routedProbability[expert] += Double(trace.probabilities[row + expert])
                routedWeight[expert] += Double(trace.selectedWeights[token * k + slot])
                for other in 0..<k {
                    statistics.coactivation[expert * experts + trace.selectedExperts[token * k + other]] += 1
                }
            }
        }
        statistics.tokenCount += Double(trace.tokenCount)
        statistics[.probabilitySum] = probabilitySum
        statistics[.counts] = counts
        statistics[.routedProbabilitySum] = routedProbability
        statistics[.routedWeightSum] = routedWeight
        statistics[.top1LogitSum] = topLogit
        layers[trace.layer] = statistics
    }

    public func observe(expert activations: ExpertActivations) {
        guard var statistics = layers[activations.layer] else { return }
        let expert = activations.expert, hidden = hiddenSize
        var weighted = statistics[.weightedOutputNormSum][expert], plain = statistics[.outputNormSum][expert]
        var maxNorm = statistics[.maxOutputNorm][expert], maxAbs = statistics[.maxAbsActivation][expert]
        statistics.inputSquareSum.withUnsafeMutableBufferPointer { squares in
            let base = expert * hidden
            for (row, token) in activations.tokens.enumerated() {
                var sum: Double = 0
                for index in 0..<hidden {
                    let value = Double(activations.outputs[row * hidden + index])
                    sum += value * value
                    maxAbs = max(maxAbs, abs(value))
                    let input = Double(activations.inputs[row * hidden + index])
                    squares[base + index] += input * input
                }
                let norm = sum.squareRoot()
                let weight = Double(activations.routingWeights[row])
                weighted += weight * norm
                plain += norm
                maxNorm = max(maxNorm, norm)
                pending.append((expert, token, weight * norm))
            }
        }
        statistics.measures[.weightedOutputNormSum]?[expert] = weighted
        statistics.measures[.outputNormSum]?[expert] = plain
        statistics.measures[.maxOutputNorm]?[expert] = maxNorm
        statistics.measures[.maxAbsActivation]?[expert] = maxAbs
        layers[activations.layer] = statistics
    }

    public func observe(block: MoEBlockActivations) {
        defer { pending = [] }
        guard var statistics = layers[block.layer] else { return }
        var contribution: [Int: Double] = [:]
        var easyEP = statistics[.easyEP]
        for (expert, token, weightedNorm) in pending {
            let share = contribution[token] ?? tokenContribution(block, token: token)
            contribution[token] = share
            easyEP[expert] += weightedNorm * share
        }
        statistics[.easyEP] = easyEP
        layers[block.layer] = statistics
    }

    /// max(1 − cos(h, h + r), 0) for one token; the cosine's denominator is clamped at 1e-8, as
    /// torch's cosine_similarity does, so a zero residual counts as fully changed.
    private func tokenContribution(_ block: MoEBlockActivations, token: Int) -> Double {
        var dot: Double = 0, residualSquares: Double = 0, updatedSquares: Double = 0
        for index in (token * hiddenSize)..<((token + 1) * hiddenSize) {
            let h = Double(block.residual[index]), updated = h + Double(block.routedOutput[index])
            dot += h * updated
            residualSquares += h * h
            updatedSquares += updated * updated
        }
        let cosine = dot / max((residualSquares * updatedSquares).squareRoot(), 1e-8)
        return max(1 - cosine, 0)
    }
}
