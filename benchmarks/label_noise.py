"""Planted label errors for ``evaluate_audit.py``: two noise models and the scoring of a ranking.

- ``uniform``: labels flipped to another label drawn at random;
- ``confusable``: labels flipped the way people get them wrong. A separate model (never a
  scorer under test: a 10-nearest-neighbour vote on 14 x 14 block-averaged raw pixels,
  each image judged without itself) finds the images it considers most ambiguous, those
  whose second-choice class gets the most votes; the planted flips are drawn at random
  among the most ambiguous three times as many as are flipped, each to that second choice.
  Pairs such as 4/9, 7/1, 3/5, 5/6, 2/7 and 8/3 arise from the images themselves.

No published list of MNIST label errors is used anywhere here.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Labels = npt.NDArray[np.int64]
NOISE_MODELS = ("confusable", "uniform")
POOL = 3  # confusable flips are drawn among the POOL x as many most ambiguous images
_NEIGHBOURS = 10
_BLOCK = 1024


def separate_votes(pixels: npt.NDArray[np.uint8], labels: Labels) -> npt.NDArray[np.float64]:
    """``(N, 10)`` leave-one-out vote shares of a 10-NN on 14 x 14 block-averaged pixels."""
    n = len(pixels)
    small = pixels.reshape(n, 14, 2, 14, 2).astype(np.float32).mean(axis=(2, 4)).reshape(n, -1)
    small /= 255
    sq = np.einsum("ij,ij->i", small, small)
    votes = np.zeros((n, int(labels.max()) + 1), np.float64)
    for start in range(0, n, _BLOCK):
        q = small[start : start + _BLOCK]
        dist = sq[None, :] - 2 * (q @ small.T)
        dist[np.arange(len(q)), np.arange(start, start + len(q))] = np.inf  # not itself
        near = np.argpartition(dist, _NEIGHBOURS, axis=1)[:, :_NEIGHBOURS]
        np.add.at(votes, (np.arange(start, start + len(q))[:, None], labels[near]), 1.0)
    return votes / _NEIGHBOURS


def plant(
    kind: str,
    labels: Labels,
    is_test: npt.NDArray[np.bool_],
    counts: tuple[int, int],
    votes: npt.NDArray[np.float64] | None,
    seed: int = 7,
) -> tuple[Labels, npt.NDArray[np.int64]]:
    """Noisy labels and the sorted positions flipped: ``counts`` = (in train, in test)."""
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    flipped: list[npt.NDArray[np.int64]] = []
    for part, count in ((~is_test, counts[0]), (is_test, counts[1])):
        where = np.flatnonzero(part)
        if kind == "uniform":
            chosen = rng.choice(where, count, replace=False)
            noisy[chosen] = (labels[chosen] + rng.integers(1, 10, count)) % 10
        else:
            assert votes is not None
            other = votes[where].copy()
            other[np.arange(len(where)), labels[where]] = -1.0  # the second choice: not given
            second = other.argmax(axis=1)
            strength = other.max(axis=1)
            ambiguous = where[np.argsort(-strength, kind="stable")[: POOL * count]]
            chosen = rng.choice(ambiguous, count, replace=False)
            noisy[chosen] = second[np.searchsorted(where, chosen)]
        flipped.append(np.sort(chosen).astype(np.int64))
    return noisy, np.sort(np.concatenate(flipped))


def hits(
    score: npt.NDArray[np.float64], part: npt.NDArray[np.bool_], flips: npt.NDArray[np.int64],
    ks: tuple[int, ...] = (30, 100, 200),
) -> list[int]:  # fmt: skip
    """Planted flips among the top ``k`` of ``part`` by decreasing score (ties by position)."""
    where = np.flatnonzero(part)
    order = where[np.lexsort((where, -score[where]))]
    return [int(np.isin(order[:k], flips).sum()) for k in ks]


def top_overlap(first: npt.NDArray[np.float64], second: npt.NDArray[np.float64],
                part: npt.NDArray[np.bool_], k: int = 100) -> int:  # fmt: skip
    """Images the two rankings share in their top ``k`` of ``part``."""
    where = np.flatnonzero(part)
    a = where[np.lexsort((where, -first[where]))][:k]
    b = where[np.lexsort((where, -second[where]))][:k]
    return len(np.intersect1d(a, b))


def pairs_table(labels: Labels, noisy: Labels, flips: npt.NDArray[np.int64]) -> str:
    """The most common (true -> planted) pairs of the flips."""
    pairs, counts = np.unique(np.stack([labels[flips], noisy[flips]]), axis=1, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:8]
    return ", ".join(f"{pairs[0, i]}->{pairs[1, i]} ({counts[i]})" for i in order.tolist())
