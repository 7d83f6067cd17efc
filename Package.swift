// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "moe-compress",
    products: [
        .executable(name: "moe-compress", targets: ["CLI"]),
        // Micro-benchmarks of library code that no command isolates (benchmarks/quantize_benchmark.py).
        .executable(name: "moe-compress-bench", targets: ["Bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // OpenBLAS + LAPACKE (apt: libopenblas-dev liblapacke-dev); Tensors and Merging (SVD) import it.
        .systemLibrary(
            name: "CLinearAlgebra",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        // fp16/bf16 <-> f32 conversion with F16C runtime dispatch (see shared/reference/swift-stack.md §3).
        .target(name: "CKernels"),
        // Float32 and bfloat16 matrix products through oneDNN (apt: libdnnl-dev), whose kernels
        // follow the CPU's own features rather than OPENBLAS_CORETYPE (docs/design.md).
        .target(name: "CMatmul", dependencies: ["CKernels"], linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]),
        // Dense Float32 tensors, dtypes, matrix-product wrappers and the small pure math functions.
        .target(name: "Tensors", dependencies: ["CLinearAlgebra", "CKernels", "CMatmul"]),
        // safetensors over mmap, sharded checkpoints, config.json, the streaming writer.
        .target(name: "Checkpoint", dependencies: ["Tensors"]),
        // Architectures described as data, resolved against a checkpoint.
        .target(name: "Architectures", dependencies: ["Checkpoint", "Tensors"]),
        // tokenizer.json: byte-level BPE and SentencePiece-style BPE.
        .target(name: "Tokenizer"),
        // An opened model (config, description, tensor source, companion files), the stage
        // protocol and the streaming writer every stage's output goes through.
        .target(name: "Models", dependencies: ["Inference", "Architectures", "Checkpoint", "GGUF", "Tensors", "Tokenizer"]),
        // GGUF files: the container, llama.cpp's names and metadata per family, the tokenizer
        // metadata, and a tensor source that reads a GGUF file back through Hugging Face names.
        .target(name: "GGUF", dependencies: ["Quantization", "Architectures", "Checkpoint", "Tensors"]),
        // The layer-by-layer forward pass, observers and perplexity.
        .target(name: "Inference", dependencies: ["Architectures", "Checkpoint", "Tensors"]),
        // Calibration windows, router statistics from the forward pass, the statistics file.
        .target(name: "Calibration", dependencies: ["Inference", "Models", "Architectures", "Checkpoint", "Tokenizer"]),
        // Expert pruning: methods, plans, the prune stage.
        .target(name: "Pruning", dependencies: ["Calibration", "Models", "Inference", "Architectures", "Checkpoint"],
                // Compiled into the binary (PackageResources), so an installed moe-compress needs no resource files.
                resources: [.embedInCode("Resources/modeling_moe_compress.py")]),
        // The pure math expert merging needs: hierarchical clustering, linear assignment, k-means,
        // truncated SVD (LAPACK's gesdd).
        .target(name: "Merging", dependencies: ["Calibration", "Models", "Inference", "Architectures", "Checkpoint", "Tensors", "CLinearAlgebra"], path: "Sources/Merging"),
        // ggml's block formats (GGUF tensor types): encoders and decoders byte-exact to ggml.
        .target(name: "Quantization", dependencies: ["Tensors", "CLinearAlgebra"],
                // Tests quantize whole models (GPTQ, the error table): optimised even in debug
                // builds, which otherwise run these loops tens of times slower.
                swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        // GGUF export: type rules, the writer of a model as llama.cpp's GGUF, bit allocation.
        .target(name: "Quantizing", dependencies: ["GGUF", "Quantization", "Calibration", "Models", "Inference", "Architectures", "Checkpoint", "Tensors", "CLinearAlgebra"]),
        .executableTarget(
            name: "CLI",
            dependencies: [
                "Pruning", "Merging", "Quantizing", "GGUF", "Quantization", "Calibration", "Models", "Inference", "Architectures", "Checkpoint", "Tensors", "Tokenizer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // `moe-compress-bench allocation`: BitAllocation.solve on a synthetic DeepSeek-V3-sized table.
        .executableTarget(name: "Bench", dependencies: ["Quantizing", "Quantization", "Tensors", "CLinearAlgebra"], path: "Sources/Bench"),
        // Locates Fixtures/ and reads the records the fixture scripts made; used only by tests.
        .target(name: "FixtureSupport", path: "Tests/FixtureSupport"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "FixtureSupport"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "Tensors", "FixtureSupport"]),
        .testTarget(name: "ArchitecturesTests", dependencies: ["Architectures", "Checkpoint", "FixtureSupport"]),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer", "FixtureSupport"]),
        .testTarget(name: "InferenceTests", dependencies: ["Inference", "Architectures", "Checkpoint", "Tensors", "FixtureSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Checkpoint", "Tensors", "FixtureSupport"]),
        .testTarget(name: "CalibrationTests", dependencies: ["Calibration", "Models", "Inference", "Tokenizer", "FixtureSupport"]),
        .testTarget(name: "PruningTests", dependencies: ["Pruning", "Calibration", "Models", "Inference", "Architectures", "Checkpoint", "FixtureSupport"]),
        .testTarget(name: "QuantizationTests", dependencies: ["Quantization", "FixtureSupport"]),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "Quantization", "FixtureSupport"]),
        // Includes GGUF export against llama.cpp's own results on the same files (GGUFLlamaCppTests).
        .testTarget(name: "QuantizingTests", dependencies: ["Quantizing", "GGUF", "Quantization", "Models", "Inference", "Checkpoint", "FixtureSupport"]),
        .testTarget(name: "MergingTests", dependencies: ["Merging", "Calibration", "Models", "Inference", "Architectures", "Checkpoint", "FixtureSupport"], path: "Tests/MergingTests"),
        // End-to-end: runs the built moe-compress binary as a user would.
        .testTarget(name: "CLITests", dependencies: ["CLI", "Models", "Inference", "FixtureSupport"]),
    ]
)

// The libFuzzer harness over the readers of outside bytes (scripts/fuzz.sh). libFuzzer supplies
// its `main`, so it links only with `--sanitize fuzzer`; other builds do not see it.
if Context.environment["MOE_COMPRESS_FUZZ"] == "1" {
    package.products.append(.executable(name: "moe-compress-fuzz", targets: ["Fuzz"]))
    package.targets.append(.executableTarget(name: "Fuzz", dependencies: ["Architectures", "Checkpoint", "GGUF", "Tokenizer"], path: "Fuzz",
                                             exclude: ["dictionaries", "lsan.supp"]))
}
