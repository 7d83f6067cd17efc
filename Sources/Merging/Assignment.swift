/// The linear assignment problem: for a `rows x columns` cost matrix (row-major, rows ≤ columns),
/// a distinct column for every row minimising (or, with `maximize`, maximising) the total cost.
///
/// Solved exactly by shortest augmenting paths with dual potentials (Jonker-Volgenant, in the
/// form of Crouse 2016 that scipy.optimize.linear_sum_assignment uses): one Dijkstra-like search
/// per row, O(rows² · columns). Scanning in scipy's order (remaining columns from the last, a
/// free column preferred on equal reduced cost) makes tied optima come out as scipy's too,
/// though only the total is guaranteed when the optimum is not unique.
///
/// Returns `assignment[row] = column`. Throws for rows > columns (transpose the matrix first),
/// a wrong element count, or a NaN or -infinity cost (+infinity marks a forbidden pair; throws
/// if no assignment avoids them).
public func linearAssignment(
    cost: [Double], rows: Int, columns: Int, maximize: Bool = false
) throws -> [Int] {
    guard rows >= 0, columns >= 0, cost.count == rows * columns else {
        throw MergingError("assignment: \(cost.count) costs for \(rows) x \(columns)")
    }
    guard rows <= columns else {
        throw MergingError("assignment: \(rows) rows but only \(columns) columns (needs rows <= columns)")
    }
    // Maximising is minimising the negated costs.
    let c = maximize ? cost.map { -$0 } : cost
    guard !c.contains(where: { $0.isNaN || $0 == -.infinity }) else {
        throw MergingError("assignment: costs must not be NaN or \(maximize ? "+" : "-")infinity")
    }

    var u = [Double](repeating: 0, count: rows)      // row potentials
    var v = [Double](repeating: 0, count: columns)   // column potentials
    var columnOfRow = [Int](repeating: -1, count: rows)
    var rowOfColumn = [Int](repeating: -1, count: columns)
    var path = [Int](repeating: -1, count: columns)

    for currentRow in 0..<rows {
        // Shortest path (in reduced costs) from currentRow to a free column.
        var shortest = [Double](repeating: .infinity, count: columns)
        var rowVisited = [Bool](repeating: false, count: rows)
        var columnVisited = [Bool](repeating: false, count: columns)
        var remaining = Array((0..<columns).reversed())
        var minimum = 0.0
        var i = currentRow
        var sink = -1
        while sink == -1 {
            rowVisited[i] = true
            var lowest = Double.infinity
            var index = -1
            for position in remaining.indices {
                let j = remaining[position]
                let reduced = minimum + c[i * columns + j] - u[i] - v[j]
                if reduced < shortest[j] {
                    path[j] = i
                    shortest[j] = reduced
                }
                // A free column wins ties: the path can end there.
                if shortest[j] < lowest || (shortest[j] == lowest && rowOfColumn[j] == -1) {
                    lowest = shortest[j]
                    index = position
                }
            }
            minimum = lowest
            guard minimum < .infinity, index >= 0 else {
                throw MergingError("assignment: no assignment with finite cost")
            }
            let j = remaining[index]
            if rowOfColumn[j] == -1 { sink = j } else { i = rowOfColumn[j] }
            columnVisited[j] = true
            remaining.swapAt(index, remaining.count - 1)
            remaining.removeLast()
        }
        // Update the potentials so reduced costs stay non-negative and zero on the matching.
        u[currentRow] += minimum
        for r in 0..<rows where rowVisited[r] && r != currentRow {
            u[r] += minimum - shortest[columnOfRow[r]]
        }
        for j in 0..<columns where columnVisited[j] {
            v[j] -= minimum - shortest[j]
        }
        // Augment: flip the matching along the path back to currentRow.
        var j = sink
        while true {
            let r = path[j]
            rowOfColumn[j] = r
            let previous = columnOfRow[r]
            columnOfRow[r] = j
            j = previous
            if r == currentRow { break }
        }
    }
    return columnOfRow
}
