"""Reference values for the pure math of expert merging (Sources/Merging), from scipy and numpy.

Run from the repository root:
    /work/venv/bin/python Fixtures/scripts/record_merge_math.py   (~1 s; numpy and scipy only)
(any environment with Fixtures/requirements.txt works; fixed seeds, so reruns give identical bytes)

Writes Fixtures/records/merge-math.json with eight lists of cases. Inputs are written at full
float64 precision (Python's repr), so Swift reads exactly the matrices numpy used.

clustering: n items, a symmetric n x n distance matrix D (row-major), K, and per linkage method
  (single, average, complete) the labels of scipy.cluster.hierarchy.fcluster(linkage(
  squareform(D), method), K, 'maxclust'), renumbered so clusters are numbered by their smallest
  member (item 0 is in cluster 0, the next item not in it starts cluster 1, ...). Cases: random
  points' Euclidean distances, and integer distance matrices with many repeated values (ties).
  `labels`: this script's plain agglomerative loop, the rule Swift implements (clusters indexed
  by their smallest member; merge the pair with the smallest distance, on equal distances the
  lexicographically smallest (min index, max index) pair; Lance-Williams updates: min,
  size-weighted mean, max; stop after n - K merges, so exactly K clusters).
  `scipy_first_merges`: the clusters after the first n - K rows of scipy's linkage matrix Z
  (exactly K clusters). `scipy_maxclust`: fcluster(Z, K, 'maxclust'), which has FEWER than K
  clusters where the K-th cut falls between tied merge heights (so the tie cases are compared
  through Z, not through fcluster). Checked: where scipy's cut has K clusters it equals
  scipy_first_merges; on every case without repeated distances `labels` == scipy_first_merges.
  Under ties the dendrogram is not unique and scipy's nearest-neighbour-chain algorithm (average,
  complete) may merge tied pairs in another order than the smallest-pair rule: the methods where
  that changes the K clusters are listed in `scipy_tie_order_differs` (complete linkage on
  ties-10 here); on all others labels == scipy_first_merges.
assignment: an n x m cost matrix (n <= m, row-major), scipy.optimize.linear_sum_assignment's
  column per row and total cost, for minimising and for maximize=True. Cases: square and
  non-square random costs (a unique optimum with probability 1, so columns are compared), and an
  integer cost matrix with tied optima (`unique_optimum` false: only the total is compared).
kmeans: rows X (n x d), k, the uniforms fed to k-means++ and what this script's numpy k-means
  made of them (the algorithm Sources/Merging/KMeans.swift implements, rule for rule):
  k-means++ seeding, uniforms u_0, u_1, ... in [0, 1):
    first centre = row min(floor(u_0 * n), n - 1);
    each next centre: D2[i] = min over chosen centres of ||x_i - c||^2 (summed over d in order),
    C = cumulative sum of D2 (in index order), t = u * C[n-1]; the centre is the smallest i with
    C[i] > t (searchsorted side='right'), clamped to n - 1; if C[n-1] == 0 (every row already a
    centre) the smallest row index not yet chosen.
  Lloyd: labels = nearest centre of each row (squared Euclidean, ties to the lowest centre
    index); repeat: centres = mean of their rows (an empty cluster keeps its centre), relabel;
    stop when labels do not change or after max_iterations updates.
  Recorded: uniforms, initial centre indices, final labels, final centres, iterations run.
svd: a matrix A (tall, wide, rank-deficient; row-major), numpy.linalg.svd(A)'s singular values,
  for several ranks r the Frobenius error ||A - U_r S_r Vt_r||, and for several retained-energy
  fractions e the smallest r with C[r-1] / C[-1] >= e, C = cumsum(s^2) (0 for e = 0).
geometry: rows X (count x dim, row-major) and their distances, count x count row-major:
  `euclidean` = squareform(pdist(X, 'euclidean')); `cosine` = (1 - cos) / 2 with cos computed
  explicitly in numpy, cos_ij = <x_i, x_j> / (|x_i| |x_j|) clipped to [-1, 1], where a zero row
  has cos 0 with every other row and 1 with itself (so distance 1/2 to every other row, 0 to
  itself; scipy's 'cosine' gives NaN there), zero diagonal. Checked: on rows without a zero one,
  cosine == pdist(X, 'cosine') / 2. Cases: random rows (count > dim and count < dim) and rows
  with one zero row.
subspace: a cluster of n members, each a rows x columns float64 matrix (row-major), and their
  usage (all zero meaning equal weights). With M = np.hstack(members), U, S, Vt =
  np.linalg.svd(M, full_matrices=False), w = usage / sum(usage) (1 / n each if the sum is 0):
  merged(r) = U[:, :r] @ diag(S[:r]) @ sum_i w_i Vt[:r, i*columns:(i+1)*columns] and retained
  energy sum(S[:r]^2) / sum(S^2). `full_rank` = min(rows, n * columns). `by_rank`: for several
  ranks r, {rank, merged, energy}. `by_energy`: for several fractions e, the rank r = smallest
  r with C[r-1] / C[-1] >= e, C = cumsum(S^2), at least 1 (so e = 0 gives 1), and merged and energy
  at it; every e other than 0 and 1 is checked to lie at least 1e-6 from each cumulative fraction,
  so LAPACK's slightly different singular values cannot pick another rank.
router_fit: calibration inputs X (tokens x hidden), router rows W (experts x hidden), an optional
  bias b (experts), all drawn in float32 and converted to float64 (Swift reads them as Float
  without loss), a partition `clusters` (singletons included), `usage` (experts), `initial`
  (clusters x hidden) = the usage-weighted average of each cluster's rows and `initial_bias`
  the same of its biases, and `ridge`. In float64: Xa = [X | 1] and Wa = [W | b] with a bias
  (X and W without); logits = Xa @ Wa.T; Y[:, c] = scipy.special.logsumexp(logits[:, members],
  axis=1); A = Xa.T @ Xa; lam = ridge * trace(A) / dim (dim = hidden, + 1 with a bias);
  W0 = [initial | initial_bias]; delta = solve(A + lam I, Xa.T @ (Y - Xa @ W0.T)); fitted =
  W0 + delta.T, recorded as `rows` (clusters x hidden) and `bias` (clusters; null without one).
  `rms_error_initial` / `rms_error_fitted` = sqrt(mean((Y - Xa @ F.T)^2)) over all tokens and
  clusters with F = W0 / fitted (RouterFit.Summary).
alignment: a reference expert, gate and up (width x hidden) and down (hidden x width), drawn in
  float32; `perm`, a random permutation; the member = the reference with new neuron a = old
  neuron perm[a] (rows of gate and up, columns of down) plus float32 noise of scale `noise`.
  `columns` = the column assignment of scipy.optimize.linear_sum_assignment(C, maximize=True),
  C = G_r G_m^T + U_r U_m^T + D_r^T D_m (reference r, member m) in float64: member neuron
  columns[a] matches reference neuron a. Checked: columns == argsort(perm), the inverse
  permutation (the noise is small enough to leave the match unambiguous).
"""
import json
import os

import numpy as np
import scipy
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from scipy.spatial.distance import pdist, squareform

OUT = "Fixtures/records/merge-math.json"
METHODS = ["single", "average", "complete"]


def renumber(labels):
    """Labels numbered by first occurrence: clusters numbered by their smallest member."""
    seen = {}
    return [seen.setdefault(int(x), len(seen)) for x in labels]


def first_merges(Z, n, k):
    """Labels after scipy's first n - k merges (rows of Z, sorted by height): exactly k clusters,
    even where tied heights make fcluster's maxclust cut give fewer."""
    parent = list(range(2 * n - 1))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for row, (a, b, _, _) in enumerate(Z[: n - k]):
        parent[root(int(a))] = n + row
        parent[root(int(b))] = n + row
    return renumber([root(i) for i in range(n)])


def naive_agglomerative(D, k, method):
    """The rule Swift implements, written plainly; used only to check it agrees with scipy."""
    n = len(D)
    d = [list(map(float, row)) for row in D]
    active = list(range(n))            # cluster index = its smallest member
    members = {i: [i] for i in range(n)}
    while len(active) > k:
        best = None
        for a_pos, a in enumerate(active):
            for b in active[a_pos + 1:]:
                if best is None or d[a][b] < best[0]:   # strict: earlier (a, b) wins ties
                    best = (d[a][b], a, b)
        _, a, b = best
        na, nb = len(members[a]), len(members[b])
        for c in active:
            if c in (a, b):
                continue
            if method == "single":
                v = min(d[a][c], d[b][c])
            elif method == "complete":
                v = max(d[a][c], d[b][c])
            else:
                v = (na * d[a][c] + nb * d[b][c]) / (na + nb)
            d[a][c] = d[c][a] = v
        members[a] += members.pop(b)
        active.remove(b)
    labels = [0] * n
    for label, c in enumerate(sorted(active)):
        for i in members[c]:
            labels[i] = label
    return renumber(labels)


def clustering_cases(rng):
    cases = []
    specs = [("points-12", 12, [2, 3, 5]), ("points-9", 9, [1, 4, 9])]
    for name, n, ks in specs:
        D = squareform(pdist(rng.normal(size=(n, 3))))
        cases.append((name, D, ks))
    # Ties: integer distances from a small set, so many pairs share a value.
    for name, n, ks, high in [("ties-8", 8, [2, 3, 4], 4), ("ties-10", 10, [3, 5], 3)]:
        upper = rng.integers(1, high + 1, size=(n, n)).astype(np.float64)
        D = np.triu(upper, 1)
        D = D + D.T
        cases.append((name, D, ks))
    # Every off-diagonal distance equal: the order of merges is the tie rule alone.
    D = np.ones((6, 6)) - np.eye(6)
    cases.append(("all-equal-6", D, [2, 4]))
    out = []
    for name, D, ks in cases:
        n = len(D)
        for k in ks:
            labels, scipy_labels, maxclust, differs = {}, {}, {}, []
            distinct = len(set(squareform(D, checks=False).tolist())) == n * (n - 1) // 2
            for method in METHODS:
                Z = linkage(squareform(D, checks=False), method)
                merged = first_merges(Z, n, k)
                cut = renumber(fcluster(Z, k, "maxclust"))
                naive = naive_agglomerative(D, k, method)
                # Without tied distances the dendrogram is unique: the rule must be scipy's.
                assert distinct is False or naive == merged, (name, k, method, naive, merged)
                # Where the cut has K clusters it is the same partition as the first n - k merges.
                assert len(set(cut)) != k or cut == merged, (name, k, method, cut, merged)
                if naive != merged:
                    differs.append(method)
                labels[method], scipy_labels[method], maxclust[method] = naive, merged, cut
            out.append({"name": name, "n": n, "k": k, "distances": D.reshape(-1).tolist(), "labels": labels,
                        "scipy_first_merges": scipy_labels, "scipy_maxclust": maxclust,
                        "scipy_tie_order_differs": differs})
    return out


def assignment_cases(rng):
    out = []
    for name, n, m in [("square-6", 6, 6), ("wide-5x9", 5, 9), ("wide-1x4", 1, 4), ("square-1", 1, 1)]:
        cost = rng.normal(size=(n, m))
        out.append((name, cost, True))
    out.append(("ties-4x6", rng.integers(0, 3, size=(4, 6)).astype(np.float64), False))
    records = []
    for name, cost, unique in out:
        n, m = cost.shape
        case = {"name": name, "rows": n, "columns": m, "cost": cost.reshape(-1).tolist(), "unique_optimum": unique}
        for key, maximize in [("minimize", False), ("maximize", True)]:
            rows, cols = linear_sum_assignment(cost, maximize=maximize)
            assert rows.tolist() == list(range(n))
            case[key] = {"columns": cols.tolist(), "total": float(cost[rows, cols].sum())}
        records.append(case)
    return records


def squared_distances(X, c):
    diff = X - c
    return np.array([sum(float(v) * float(v) for v in row) for row in diff])  # in order, like Swift


def kmeans_plus_plus(X, k, uniforms):
    n = len(X)
    u = iter(uniforms)
    chosen = [min(int(np.floor(next(u) * n)), n - 1)]
    while len(chosen) < k:
        d2 = np.min([squared_distances(X, X[c]) for c in chosen], axis=0)
        cumulative = np.cumsum(d2)
        total = cumulative[-1]
        if total == 0:
            chosen.append(min(set(range(n)) - set(chosen)))
            continue
        target = next(u) * total
        chosen.append(min(int(np.searchsorted(cumulative, target, side="right")), n - 1))
    return chosen


def nearest(X, centres):
    d = np.stack([squared_distances(X, c) for c in centres], axis=1)
    return [int(np.argmin(row)) for row in d]  # argmin: first (lowest index) on ties


def lloyd(X, centres, max_iterations):
    centres = np.array(centres, dtype=np.float64)
    labels = nearest(X, centres)
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        for j in range(len(centres)):
            rows = [i for i, label in enumerate(labels) if label == j]
            if rows:
                centres[j] = X[rows].mean(axis=0)
        new = nearest(X, centres)
        if new == labels:
            break
        labels = new
    return labels, centres, iterations


def kmeans_cases(rng):
    out = []
    for name, n, d, k, blobs in [("blobs-30x2", 30, 2, 3, 3), ("blobs-40x4", 40, 4, 4, 4), ("noise-25x3", 25, 3, 5, 0)]:
        if blobs:
            means = rng.normal(scale=5, size=(blobs, d))
            X = means[rng.integers(0, blobs, size=n)] + rng.normal(size=(n, d))
        else:
            X = rng.normal(size=(n, d))
        uniforms = rng.random(k).tolist()
        initial = kmeans_plus_plus(X, k, uniforms)
        labels, centres, iterations = lloyd(X, X[initial], max_iterations=100)
        out.append({"name": name, "rows": n, "columns": d, "k": k, "x": X.reshape(-1).tolist(),
                    "uniforms": uniforms, "max_iterations": 100, "initial_centres": initial,
                    "labels": labels, "centres": centres.reshape(-1).tolist(), "iterations": iterations})
    return out


def svd_cases(rng):
    tall = rng.normal(size=(12, 5))
    wide = rng.normal(size=(4, 9))
    deficient = rng.normal(size=(10, 3)) @ rng.normal(size=(3, 7))  # rank 3 of 7
    out = []
    for name, A, ranks in [("tall-12x5", tall, [0, 1, 2, 4, 5]), ("wide-4x9", wide, [1, 2, 3, 4]),
                           ("rank3-10x7", deficient, [1, 2, 3, 5, 7])]:
        U, s, Vt = np.linalg.svd(A, full_matrices=False)
        errors = [float(np.linalg.norm(A - (U[:, :r] * s[:r]) @ Vt[:r], "fro")) for r in ranks]
        # Divided by the cumulative sum's own last entry (as Swift does), so the fraction reaches
        # exactly 1.0 and every e in [0, 1] has a rank.
        cumulative = np.cumsum(s ** 2)
        energy = cumulative / cumulative[-1]
        fractions = [0.0, 0.5, 0.8, 0.95, 0.999, 1.0]
        energy_ranks = [0 if e == 0 else int(np.searchsorted(energy, e, side="left")) + 1 for e in fractions]
        out.append({"name": name, "rows": A.shape[0], "columns": A.shape[1], "a": A.reshape(-1).tolist(),
                    "singular_values": s.tolist(), "ranks": ranks, "errors": errors,
                    "energy_fractions": fractions, "energy_ranks": energy_ranks,
                    "energy_cumulative": energy.tolist()})
    return out


def cosine_distances(X):
    """(1 - cos) / 2, with a zero row's cosine 0 to every other row and 1 to itself."""
    norms = np.linalg.norm(X, axis=1)
    cos = np.zeros((len(X), len(X)))
    nonzero = norms > 0
    cos[np.ix_(nonzero, nonzero)] = (X[nonzero] @ X[nonzero].T) / np.outer(norms[nonzero], norms[nonzero])
    cos = np.clip(cos, -1, 1)
    np.fill_diagonal(cos, 1)
    distances = (1 - cos) / 2
    np.fill_diagonal(distances, 0)
    return distances


def geometry_cases(rng):
    zero = rng.normal(size=(5, 3))
    zero[2] = 0
    out = []
    for name, X in [("rows-6x4", rng.normal(size=(6, 4))), ("rows-4x10", rng.normal(size=(4, 10))),
                    ("rows-8x2", rng.normal(size=(8, 2))), ("zero-row-5x3", zero)]:
        cosine = cosine_distances(X)
        if np.all(np.linalg.norm(X, axis=1) > 0):
            assert np.allclose(cosine, squareform(pdist(X, "cosine")) / 2, rtol=0, atol=1e-14), name
        out.append({"name": name, "count": X.shape[0], "dimension": X.shape[1], "x": X.reshape(-1).tolist(),
                    "euclidean": squareform(pdist(X, "euclidean")).reshape(-1).tolist(),
                    "cosine": cosine.reshape(-1).tolist()})
    return out


def subspace_merge(members, usage, r):
    columns = members[0].shape[1]
    U, S, Vt = np.linalg.svd(np.hstack(members), full_matrices=False)
    total = sum(usage)
    w = [u / total for u in usage] if total > 0 else [1 / len(members)] * len(members)
    factor = sum(w_i * Vt[:r, i * columns:(i + 1) * columns] for i, w_i in enumerate(w))
    merged = (U[:, :r] * S[:r]) @ factor
    return merged, float(np.sum(S[:r] ** 2) / np.sum(S ** 2)), S


def subspace_cases(rng):
    specs = [("three-6x4", 3, 6, 4, [5.0, 2.0, 3.0], [1, 2, 4, 6]),
             ("unused-3x5", 2, 3, 5, [0.0, 0.0], [1, 2, 3]),
             ("four-8x2", 4, 8, 2, [1.0, 0.0, 4.0, 2.0], [1, 3, 5, 8]),
             ("single-5x3", 1, 5, 3, [7.0], [1, 2, 3])]
    fractions = [0.0, 0.5, 0.9, 0.99, 1.0]
    out = []
    for name, n, rows, columns, usage, ranks in specs:
        members = [rng.normal(size=(rows, columns)) for _ in range(n)]
        by_rank = []
        for r in ranks:
            merged, energy, S = subspace_merge(members, usage, r)
            by_rank.append({"rank": r, "merged": merged.reshape(-1).tolist(), "energy": energy})
        cumulative = np.cumsum(S ** 2)
        cumulative = cumulative / cumulative[-1]  # its own last entry, so e = 1 has a rank (as in svd)
        by_energy = []
        for e in fractions:
            assert e in (0.0, 1.0) or np.min(np.abs(cumulative - e)) > 1e-6, (name, e)
            r = max(1, int(np.searchsorted(cumulative, e, side="left")) + 1)
            merged, energy, _ = subspace_merge(members, usage, r)
            by_energy.append({"fraction": e, "rank": r, "merged": merged.reshape(-1).tolist(), "energy": energy})
        out.append({"name": name, "rows": rows, "columns": columns, "usage": usage,
                    "members": [m.reshape(-1).tolist() for m in members], "full_rank": min(rows, n * columns),
                    "by_rank": by_rank, "by_energy": by_energy})
    return out


def float32_normal(rng, shape, scale=1.0):
    return (rng.normal(scale=scale, size=shape)).astype(np.float32).astype(np.float64)


def router_fit_cases(rng):
    specs = [("bias-8-experts", 40, 6, 8, True, [[0, 3], [1], [2, 5, 6], [4, 7]], 1e-2),
             ("no-bias-6-experts", 30, 5, 6, False, [[0, 1, 2], [3], [4, 5]], 1e-3),
             ("one-cluster-bias", 25, 4, 5, True, [[0, 1, 2, 3, 4]], 1e-1),
             ("singletons-no-bias", 20, 3, 4, False, [[0], [1], [2], [3]], 1e-2)]
    out = []
    for name, tokens, hidden, experts, has_bias, clusters, ridge in specs:
        X = float32_normal(rng, (tokens, hidden))
        W = float32_normal(rng, (experts, hidden), scale=0.5)
        b = float32_normal(rng, experts, scale=0.5) if has_bias else None
        usage = rng.integers(1, 20, size=experts).astype(np.float64)
        initial = np.array([usage[m] @ W[m] / usage[m].sum() for m in clusters])
        initial_bias = np.array([usage[m] @ b[m] / usage[m].sum() for m in clusters]) if has_bias else None
        Xa = np.hstack([X, np.ones((tokens, 1))]) if has_bias else X
        Wa = np.hstack([W, b[:, None]]) if has_bias else W
        W0 = np.hstack([initial, initial_bias[:, None]]) if has_bias else initial
        logits = Xa @ Wa.T
        Y = np.stack([logsumexp(logits[:, m], axis=1) for m in clusters], axis=1)
        A = Xa.T @ Xa
        lam = ridge * np.trace(A) / Xa.shape[1]
        delta = np.linalg.solve(A + lam * np.eye(Xa.shape[1]), Xa.T @ (Y - Xa @ W0.T))
        fitted = W0 + delta.T
        out.append({"name": name, "tokens": tokens, "hidden": hidden, "experts": experts,
                    "x": X.reshape(-1).tolist(), "weights": W.reshape(-1).tolist(),
                    "router_bias": None if b is None else b.tolist(), "clusters": clusters,
                    "usage": usage.tolist(), "initial": initial.reshape(-1).tolist(),
                    "initial_bias": None if initial_bias is None else initial_bias.tolist(), "ridge": ridge,
                    "rows": fitted[:, :hidden].reshape(-1).tolist(),
                    "bias": fitted[:, hidden].tolist() if has_bias else None,
                    "rms_error_initial": float(np.sqrt(np.mean((Y - Xa @ W0.T) ** 2))),
                    "rms_error_fitted": float(np.sqrt(np.mean((Y - Xa @ fitted.T) ** 2)))})
    return out


def alignment_cases(rng):
    out = []
    for name, width, hidden, noise in [("width-8-hidden-5", 8, 5, 0.01), ("width-16-hidden-12", 16, 12, 0.05),
                                       ("width-3-hidden-2", 3, 2, 0.01)]:
        gate, up = float32_normal(rng, (width, hidden)), float32_normal(rng, (width, hidden))
        down = float32_normal(rng, (hidden, width))
        perm = rng.permutation(width)
        member_gate = (gate[perm] + rng.normal(scale=noise, size=(width, hidden))).astype(np.float32).astype(np.float64)
        member_up = (up[perm] + rng.normal(scale=noise, size=(width, hidden))).astype(np.float32).astype(np.float64)
        member_down = (down[:, perm] + rng.normal(scale=noise, size=(hidden, width))).astype(np.float32).astype(np.float64)
        C = gate @ member_gate.T + up @ member_up.T + down.T @ member_down
        rows, columns = linear_sum_assignment(C, maximize=True)
        assert rows.tolist() == list(range(width))
        assert columns.tolist() == np.argsort(perm).tolist(), name
        out.append({"name": name, "width": width, "hidden": hidden, "noise": noise, "perm": perm.tolist(),
                    "reference": {"gate": gate.reshape(-1).tolist(), "up": up.reshape(-1).tolist(),
                                  "down": down.reshape(-1).tolist()},
                    "member": {"gate": member_gate.reshape(-1).tolist(), "up": member_up.reshape(-1).tolist(),
                               "down": member_down.reshape(-1).tolist()},
                    "columns": columns.tolist()})
    return out


def main():
    rng = np.random.default_rng(16)  # issue 16
    record = {
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__},
        "clustering": clustering_cases(rng),
        "assignment": assignment_cases(rng),
        "kmeans": kmeans_cases(rng),
        "svd": svd_cases(rng),
        "geometry": geometry_cases(rng),
        "subspace": subspace_cases(rng),
        "router_fit": router_fit_cases(rng),
        "alignment": alignment_cases(rng),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(record, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
