import Foundation

/// The cores this process may use, read once. Foundation's `activeProcessorCount` reads the
/// cgroup's cpuset and CPU quota from /sys on every call (two opens and reads, ~60 µs); asked per
/// conversion chunk it cost bf16 compute, which rounds every activation through those chunks,
/// ~100,000 file opens in a short eval.
public enum Cores {
    public static let available = max(1, ProcessInfo.processInfo.activeProcessorCount)
}
