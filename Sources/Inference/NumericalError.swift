import Architectures

/// A NaN or infinity in the forward pass, named by where it first appeared: the usual causes are
/// config values (rms_norm_eps, rope_theta) or weights that no trained model has.
public struct NumericalError: Error, CustomStringConvertible {
    public let description: String

    init(model: ModelDescription, _ problem: String) {
        description = "\(model.configPath): \(problem); check the config's numbers (rms_norm_eps, rope_theta) and that layer's weights"
    }
}
