"""Agglomerative clustering by nearest-neighbour chain: O(n^2) time and memory for any
reducible linkage (Ward, average), which is what both speaker clusterings use."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Update = Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]


def nn_chain(d: np.ndarray, size: np.ndarray, update: Update) -> list[tuple[int, int, float, float]]:
    """Merges (a, b, height, merged size) sorted by height, ``a`` and ``b`` members of the two
    clusters. ``d``: the square distance matrix (changed in place), ``size``: each item's weight
    (changed in place); ``update(d, size, a, b)``: the merged cluster's row of distances to every
    other cluster (the Lance-Williams formula of the linkage), from the sizes before the merge."""
    n = len(d)
    np.fill_diagonal(d, np.inf)
    merges: list[tuple[int, int, float, float]] = []
    chain: list[int] = []
    alive = np.ones(n, bool)
    while len(merges) < n - 1:
        if not chain:
            chain.append(int(np.flatnonzero(alive)[0]))
        a = chain[-1]
        b = int(np.argmin(d[a]))
        if len(chain) > 1 and d[a, chain[-2]] <= d[a, b]:
            b = chain[-2]
        if len(chain) < 2 or b != chain[-2]:
            chain.append(b)
            continue
        chain.pop(), chain.pop()
        total = size[a] + size[b]
        merges.append((a, b, float(d[a, b]), float(total)))
        row = update(d, size, a, b)
        d[b], d[:, b] = row, row
        d[a], d[:, a], d[b, b] = np.inf, np.inf, np.inf
        size[b] = total
        alive[a] = False
    return sorted(merges, key=lambda m: m[2])


def ward_update(d: np.ndarray, size: np.ndarray, a: int, b: int) -> np.ndarray:
    """Ward: the rise in weighted within-cluster sum of squares."""
    return ((size[a] + size) * d[a] + (size[b] + size) * d[b] - size * d[a, b]) / (size[a] + size[b] + size)


def average_update(d: np.ndarray, size: np.ndarray, a: int, b: int) -> np.ndarray:
    """Average linkage (UPGMA): the size-weighted mean distance."""
    return (size[a] * d[a] + size[b] * d[b]) / (size[a] + size[b])


class DisjointSets:
    """Union-find with path halving: which tree each item's merges have put it in."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def root(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(self, a: int, b: int) -> None:
        """Put ``a``'s tree under ``b``'s root."""
        self.parent[self.root(a)] = self.root(b)
