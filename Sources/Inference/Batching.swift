/// Consecutive items grouped so that each group's total size stays within `limit` (a group holds
/// at least one item, however large): windows into forward-pass batches, so each pass over the
/// weights serves up to `limit` ids.
public func consecutiveGroups<Item>(_ items: [Item], limit: Int, size: (Item) -> Int) -> [[Item]] {
    var groups: [[Item]] = []
    var current: [Item] = []
    var total = 0
    for item in items {
        if !current.isEmpty && total + size(item) > limit {
            groups.append(current)
            current = []
            total = 0
        }
        current.append(item)
        total += size(item)
    }
    if !current.isEmpty { groups.append(current) }
    return groups
}
