"""Disjoint sets over document indices, for transitive clustering of duplicate pairs."""

from __future__ import annotations

import numpy as np


class UnionFind:
    """Union by size with path halving; ``find`` is amortised near-constant."""

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int64)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    def union(self, a: int, b: int) -> bool:
        """Merge the sets of a and b; False when they were already one set."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return True

    def first_of_each_set(self) -> np.ndarray:
        """Boolean mask keeping the lowest index of every set (a deterministic survivor per cluster)."""
        n = len(self.parent)
        roots = np.fromiter((self.find(i) for i in range(n)), dtype=np.int64, count=n)
        keep = np.zeros(n, dtype=bool)
        _, first = np.unique(roots, return_index=True)
        keep[first] = True
        return keep
