"""Decide from a sample whether a dataset is derived from the reference at all.

Exact copies are found by digest for every image, at the cost of a set lookup. Lossy
copies need a signature search per image, and an image that is no copy costs the
most: it is searched unshifted and under every shift before it is called *none*.
So, for a dataset with many images no digest matched, :func:`sample_of` picks
:data:`SAMPLE` of them at random (a fixed seed: the same dataset gives the same
sample), they are searched, and the rest are searched only when at least
:data:`DERIVED_SHARE` of the sample are lossy copies (:func:`derived`).

A dataset where 1 % of those images are lossy copies is searched in full with
probability above 99.7 % (:data:`SAMPLE` x 1 % = 10 expected, 3 needed); one with
none, or with the odd chance look-alike (a re-drawn digit that lands within the
tolerance of its original: 11 of 60,000 warped MNIST digits), is not, and the result
says that it sampled, how many it searched and what it found.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from catalog.identity.result import Sampled

#: Images searched to decide whether the rest are worth searching.
SAMPLE = 1_000
#: Share of the sample that must be lossy copies for the rest to be searched.
DERIVED_SHARE = 0.003
#: The sample's seed.
SEED = 0


def sample_of(pending: npt.NDArray[np.int64], size: int = SAMPLE) -> npt.NDArray[np.int64]:
    """``size`` of ``pending`` at random, in their order.

    >>> sample_of(np.arange(10), 3).tolist()
    [5, 6, 9]
    """
    if len(pending) <= size:
        return pending
    rng = np.random.default_rng(SEED)
    picked = np.sort(rng.choice(len(pending), size=size, replace=False))
    chosen: npt.NDArray[np.int64] = pending[picked]
    return chosen


def derived(matched: int, searched: int) -> bool:
    """Whether ``matched`` lossy copies among ``searched`` sampled images call for the rest.

    >>> derived(0, 1000), derived(2, 1000), derived(3, 1000)
    (False, False, True)
    """
    return searched > 0 and matched >= max(1, round(DERIVED_SHARE * searched))


def sampled_note(sampled: Sampled, reference: str) -> str:
    """What a sampled result says about the images it did not search."""
    found = (
        f"{sampled.matched:,} of them lossy copies (too few to search the rest)"
        if sampled.matched
        else "none of them a lossy copy"
    )
    return (
        f"not derived from {reference}: of the {sampled.pending:,} images no digest "
        f"matched, a random sample of {sampled.searched:,} was searched, {found}; "
        f"the other {sampled.unsearched:,} were not searched (`mnist-catalog identify` "
        "searches every image)"
    )
