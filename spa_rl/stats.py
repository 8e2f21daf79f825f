"""Statistics for comparing agents on the same games: Wilson intervals for a success rate, McNemar's exact
test and a paired bootstrap interval for the difference of two agents' success on identical games, and a
bootstrap interval of a mean over games (a score, or a success averaged over seeds)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default); (0, 1) when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in 0..n, got {successes} of {n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs: games only A won, games only B won."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], n_boot: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of a - b over paired games and its percentile bootstrap interval (games resampled together)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"need two non-empty paired lists, got {len(a)} and {len(b)} items")
    return bootstrap_mean([x - y for x, y in zip(a, b, strict=True)], n_boot, seed, level)


def bootstrap_mean(
    x: Sequence[float], n_boot: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``x`` (one value per game) and its percentile bootstrap interval, games resampled."""
    if not x:
        raise ValueError("need at least one value")
    n = len(x)
    rng = random.Random(seed)
    means = sorted(sum(x[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    lo = means[int((1 - level) / 2 * n_boot)]
    hi = means[min(n_boot - 1, int((1 + level) / 2 * n_boot))]
    return sum(x) / n, lo, hi
