import GGUF
import Models
import Quantization

/// The two ways a plan is made without a file: one type for every weight matrix, or the exact
/// knapsack over measured errors for a bits-per-weight budget over the whole file.
public enum QuantPlanner {
    /// Every weight matrix in `type` (after TypeRules' fallbacks; norms and routers F32).
    public static func uniform(_ type: GGMLType, tensors: [GGUFTensorPlan], model: String, targetBitsPerWeight: Double? = nil) -> QuantPlan {
        QuantPlan(model: model, targetBitsPerWeight: targetBitsPerWeight,
                  tensors: tensors.map { QuantPlan.entry($0, type: TypeRules.legal(type, for: $0), error: nil) })
    }

    public struct Infeasible: Error, CustomStringConvertible {
        public let bits: Double
        public let failure: BitAllocation.Failure
        public let candidates: [GGMLType]
        /// The bits per weight the candidates can reach on this model.
        public let reachable: ClosedRange<Double>

        public var description: String {
            String(format: "--bits %@: %@; the candidates %@ reach %.4f to %.4f bits per weight on this model",
                   "\(bits)", "\(failure)", candidates.map(\.name).joined(separator: ","), reachable.lowerBound, reachable.upperBound)
        }
    }

    /// Measures every tensor × candidate's error (ErrorTable) and solves for `bits` bits per
    /// weight over all tensors, as llama.cpp counts them.
    public static func allocate(_ working: Model, tensors: [GGUFTensorPlan], candidates: [GGMLType], importance: InputImportance,
                                measure: ErrorTable.Measure = .outputError, bits: Double, model: String, progress: ((Int, Int) -> Void)? = nil) throws -> QuantPlan {
        let budget = try feasibleBudget(tensors: tensors, candidates: candidates, bits: bits)
        let table = try ErrorTable.measure(working, tensors: tensors, types: candidates, importance: importance, by: measure, progress: progress)
        let allocation = try BitAllocation.solve(table.candidates.map { $0.map { (bytes: $0.bytes, error: $0.error) } }, budget: budget)
        return QuantPlan(model: model, targetBitsPerWeight: bits, tensors: tensors.indices.map { index in
            let chosen = table.candidates[index][allocation.choice[index]]
            return QuantPlan.entry(tensors[index], type: chosen.type, error: chosen.error)
        })
    }

    /// The byte budget of `bits` bits per weight, or Infeasible when no mix of the candidates
    /// fits it: sizes alone decide, so this is checked before anything is measured.
    public static func feasibleBudget(tensors: [GGUFTensorPlan], candidates: [GGMLType], bits: Double) throws -> Int {
        let weights = Double(tensors.reduce(0) { $0 + $1.elementCount })
        let budget = Int((bits * weights / 8).rounded(.down))
        let sizes = tensors.map { tensor in
            ErrorTable.legalTypes(candidates, for: tensor).map { $0.rowBytes(tensor.rowLength) * (tensor.elementCount / tensor.rowLength) }
        }
        let smallest = sizes.reduce(0) { $0 + ($1.min() ?? 0) }, largest = sizes.reduce(0) { $0 + ($1.max() ?? 0) }
        let reachable = Double(smallest * 8) / weights...Double(largest * 8) / weights
        if budget < smallest {
            throw Infeasible(bits: bits, failure: .belowSmallest(smallest: smallest), candidates: candidates, reachable: reachable)
        }
        if budget > largest {
            throw Infeasible(bits: bits, failure: .aboveLargest(largest: largest), candidates: candidates, reachable: reachable)
        }
        return budget
    }
}
