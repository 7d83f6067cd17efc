import CKernels

/// The index of the first NaN or infinity among `count` values, or nil when all are finite.
public func firstNonFinite(_ values: UnsafePointer<Float>, count: Int) -> Int? {
    let index = ck_first_non_finite(values, count)
    return index < count ? index : nil
}
