"""Minimum-cost assignment without SciPy.

``scipy.optimize`` takes ~0.8 s to import on the 2-core machine, more than the
whole start-up budget of ``fawn run``; the tracker only needs the assignment of
a few dozen tracks to detections, which the Hungarian algorithm with potentials
(O(n^2 m)) does in well under a millisecond. Same contract as
``scipy.optimize.linear_sum_assignment`` for a finite cost matrix.
"""

from __future__ import annotations

import numpy as np


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a minimum-cost matching of a [N, M] matrix (min(N, M) pairs, rows sorted)."""
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("cost matrix contains invalid numeric entries")
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape
    if n == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    match = np.zeros(m + 1, np.int64)  # match[j]: 1-based row assigned to column j (0: none)
    way = np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        match[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = match[j0]
            free = ~used[1:]
            reduced = c[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[match[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = int(way[j0])
            match[j0] = match[j1]
            j0 = j1
    cols = np.nonzero(match[1:])[0]
    rows = match[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows)
    return rows[order].astype(np.int64), cols[order].astype(np.int64)
