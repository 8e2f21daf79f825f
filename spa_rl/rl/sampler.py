"""The order in which PPO takes rollouts (offline) or tasks (online)."""

from __future__ import annotations

import random


class PassSampler:
    """Indices 0..n-1 in passes, each pass a fresh seeded permutation. The k-th draw is a function of
    (seed, k) alone, so a run resumed at iteration i draws exactly what the uninterrupted run drew there,
    without sampler state in the checkpoint."""

    def __init__(self, n: int, seed: int):
        if n < 1:
            raise ValueError("nothing to sample from (0 items)")
        self.n, self.seed = n, seed
        self._passes: dict[int, list[int]] = {}

    def permutation(self, p: int) -> list[int]:
        if p not in self._passes:
            order = list(range(self.n))
            random.Random(self.seed * 1_000_003 + p).shuffle(order)
            self._passes = {p: order}  # one pass at a time is enough: draws move forward
        return self._passes[p]

    def take(self, start: int, count: int) -> list[int]:
        """Draws ``start`` .. ``start + count - 1``."""
        return [self.permutation(k // self.n)[k % self.n] for k in range(start, start + count)]
