import ArgumentParser

@main
struct MoECompress: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moe-compress",
        abstract: "Inspect, evaluate and compress Mixture-of-Experts checkpoints.",
        discussion: """
        Reads Hugging Face checkpoints (config.json, tokenizer.json, *.safetensors) by memory map, \
        one layer at a time, so models larger than RAM work.

        Example:
          moe-compress inspect Fixtures/default-model
          moe-compress eval Fixtures/default-model --text Fixtures/text/heldout.txt
        """,
        version: "0.1.0",
        subcommands: [Inspect.self, Eval.self, Forward.self])
}
