"""Leakage: images of a train-like split that are copies of test images, found
across identity results against one reference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from catalog.identity.result import IdentityResult


@dataclass(frozen=True)
class Leak:
    """Images of one split that are copies of images in a test split."""

    dataset: str
    split: str
    test_dataset: str  # a dataset in the catalog, or the reference itself
    test_split: str
    count: int
    examples: tuple[tuple[int, int], ...]  # (index in split, index in test split), first few


def is_test(split: str) -> bool:
    """Whether a split name denotes held-out test data.

    >>> is_test("test"), is_test("t10k"), is_test("val")
    (True, True, False)
    """
    return split.startswith(("test", "t10k"))


def find_leakage(results: list[IdentityResult], examples: int = 5) -> list[Leak]:
    """Images of a non-test split that are copies of test images.

    Within one result: images of a train-like split whose canonical image is in
    the reference's test split, and canonical images that both a train-like and
    a test split of the dataset hold. Across results against the same
    reference: a train-like split of one dataset sharing canonical images with
    a test split of another.
    """
    leaks: list[Leak] = []
    names = sorted({str(s) for r in results for s in np.unique(r.canonical_splits)} - {""})
    keyed = [(r, _keys(r, names)) for r in results]
    for r, keys in keyed:
        for split in sorted(set(r.splits.tolist())):
            if is_test(split):
                continue
            rows = np.flatnonzero((r.splits == split) & r.matched())
            into_test = rows[[is_test(str(s)) for s in r.canonical_splits[rows]]]
            for test_split in sorted(set(r.canonical_splits[into_test].tolist())):
                hit = into_test[r.canonical_splits[into_test] == test_split]
                leaks.append(Leak(r.dataset, split, r.reference, test_split, len(hit),
                                  tuple((int(r.indices[i]), int(r.canonical_indices[i]))
                                        for i in hit[:examples])))  # fmt: skip
            for other, other_keys in keyed:
                if other.reference != r.reference or other.dataset == r.reference:
                    continue  # the reference's own test split is covered above
                for test_split in sorted({s for s in other.splits.tolist() if is_test(s)}):
                    leaks += _shared(r, keys, split, other, other_keys, test_split, examples)
    return [leak for leak in leaks if leak.count]


def _keys(r: IdentityResult, names: list[str]) -> npt.NDArray[np.int64]:
    """One integer per image for its canonical image (-1 where none)."""
    codes = np.full(len(r.canonical_splits), -1, np.int64)
    for code, name in enumerate(names):
        codes[r.canonical_splits == name] = code
    return np.where(codes >= 0, codes * (1 << 40) + r.canonical_indices, -1)


def _shared(
    r: IdentityResult, keys: npt.NDArray[np.int64], split: str,
    other: IdentityResult, other_keys: npt.NDArray[np.int64], test_split: str, examples: int,
) -> list[Leak]:  # fmt: skip
    mine = np.flatnonzero((r.splits == split) & (keys >= 0))
    theirs = np.flatnonzero((other.splits == test_split) & (other_keys >= 0))
    common, at_mine, at_theirs = np.intersect1d(keys[mine], other_keys[theirs], return_indices=True)
    if not len(common):
        return []
    pairs = tuple(
        (int(r.indices[mine[a]]), int(other.indices[theirs[b]]))
        for a, b in zip(at_mine[:examples], at_theirs[:examples], strict=True)
    )
    return [Leak(r.dataset, split, other.dataset, test_split, len(common), pairs)]


def describe_leak(leak: Leak) -> str:
    """One line for a :class:`Leak`.

    >>> describe_leak(Leak("old", "train", "mnist", "test", 3, ((50, 10), (51, 11))))
    'old train: 3 images are copies of mnist test images (train 50 = test 10, train 51 = test 11, ...)'
    """
    shown = ", ".join(f"{leak.split} {a:,} = {leak.test_split} {b:,}" for a, b in leak.examples)
    more = ", ..." if leak.count > len(leak.examples) else ""
    return (
        f"{leak.dataset} {leak.split}: {leak.count:,} images are copies of "
        f"{leak.test_dataset} {leak.test_split} images ({shown}{more})"
    )
