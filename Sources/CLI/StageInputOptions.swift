import ArgumentParser

/// What every stage command that measures on calibration text takes: the statistics file or the
/// data to calibrate on, held-out text for --eval, --force and the compute options.
struct StageInputOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Statistics file from `moe-compress calibrate`.", valueName: "file"))
    var stats: String?

    @OptionGroup var calibration: CalibrationOptions

    @OptionGroup var evaluation: EvalOptions

    @Flag(help: "Replace an existing output directory.")
    var force = false

    @OptionGroup var computeOptions: ComputeOptions

    func validate() throws {
        guard (stats == nil) != calibration.sources.isEmpty else {
            throw ValidationError("pass exactly one of --stats FILE and --data FILE[:N]")
        }
    }
}
