"""What :func:`catalog.identity.identify` returns, and the summary people read.

Results are columns (numpy arrays, one row per image in (split, index) order),
so 70,000 images cost a few arrays, not 70,000 objects; :meth:`IdentityResult.matches`
gives per-image records for storing or printing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

#: Match kinds, by code.
KINDS = ("none", "exact", "lossy")
NONE, EXACT, LOSSY = 0, 1, 2
#: How a match was confirmed, by code.
CONFIRMATIONS = ("", "digest", "pixels", "signature")
UNCONFIRMED, BY_DIGEST, BY_PIXELS, BY_SIGNATURE = 0, 1, 2, 3


@dataclass(frozen=True)
class ImageIdentity:
    """One image of the identified dataset and the reference image it is."""

    image_id: int
    split: str
    index: int
    label: int
    kind: str  # exact, lossy or none
    canonical_dataset: str | None  # e.g. "mnist"; None when kind is none
    canonical_split: str | None
    canonical_index: int | None
    canonical_label: int | None
    confirmed_by: str | None  # digest, pixels or signature
    max_error: float | None  # max |difference| in levels after undoing stretch and shift
    shift: tuple[int, int] = (0, 0)  # (rows, columns) the image is moved by

    @property
    def label_agrees(self) -> bool | None:
        return None if self.canonical_label is None else self.label == self.canonical_label


@dataclass(frozen=True)
class Sampled:
    """How a search was cut short: ``searched`` images of the ``pending`` ones (those no
    digest matched) were searched, at random; ``matched`` of them were lossy copies,
    too few to search the rest (:data:`catalog.identity.sampling.DERIVED_SHARE`)."""

    searched: int
    pending: int
    matched: int

    @property
    def unsearched(self) -> int:
        return self.pending - self.searched


@dataclass
class IdentityResult:
    """Per image of ``dataset``: which image of ``reference`` it is, and how it matches."""

    dataset: str
    reference: str
    image_ids: npt.NDArray[np.int64]
    splits: npt.NDArray[np.str_]
    indices: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]
    kinds: npt.NDArray[np.uint8]  # codes into KINDS
    confirmed_by: npt.NDArray[np.uint8]  # codes into CONFIRMATIONS
    canonical_splits: npt.NDArray[np.str_]  # "" where kind is none
    canonical_indices: npt.NDArray[np.int64]  # -1 where kind is none
    canonical_labels: npt.NDArray[np.int64]  # -1 where kind is none
    max_errors: npt.NDArray[np.float32]  # levels; 0 exact, nan when not measured
    gains: npt.NDArray[np.float32]  # fitted contrast gain (1 exact, nan unmeasured)
    shifts: npt.NDArray[np.int8]  # (n, 2)
    distances: npt.NDArray[np.float32]  # signature distance to the candidate, nan for exact
    stretched: npt.NDArray[np.bool_]  # the gain is the reference's own min/max stretch
    notes: list[str] = field(default_factory=list)
    #: Set when only a sample of the images no digest matched was searched; the others
    #: are "none" unsearched (``searched`` false).
    sampled: Sampled | None = None
    searched: npt.NDArray[np.bool_] | None = None  # None: every image was looked at
    #: Images whose match was read back from an earlier run instead of searched again.
    reused: int = 0
    #: Images searched by signature in this run (not matched by digest, nor reused).
    searched_now: int = 0

    def __len__(self) -> int:
        return len(self.image_ids)

    def count(self, kind: str) -> int:
        return int((self.kinds == KINDS.index(kind)).sum())

    def counts(self) -> dict[str, int]:
        return {kind: self.count(kind) for kind in KINDS}

    def matched(self) -> npt.NDArray[np.bool_]:
        matched: npt.NDArray[np.bool_] = self.kinds != NONE
        return matched

    def record(self, i: int) -> ImageIdentity:
        matched = bool(self.kinds[i] != NONE)
        error = float(self.max_errors[i])
        return ImageIdentity(
            image_id=int(self.image_ids[i]),
            split=str(self.splits[i]),
            index=int(self.indices[i]),
            label=int(self.labels[i]),
            kind=KINDS[int(self.kinds[i])],
            canonical_dataset=self.reference if matched else None,
            canonical_split=str(self.canonical_splits[i]) if matched else None,
            canonical_index=int(self.canonical_indices[i]) if matched else None,
            canonical_label=int(self.canonical_labels[i]) if matched else None,
            confirmed_by=CONFIRMATIONS[int(self.confirmed_by[i])] if matched else None,
            max_error=None if not matched or np.isnan(error) else round(error, 1),
            shift=(int(self.shifts[i, 0]), int(self.shifts[i, 1])),
        )

    def matches(self) -> Iterator[ImageIdentity]:
        """Every image's identity, in (split, index) order."""
        for i in range(len(self)):
            yield self.record(i)

    def label_disagreements(self) -> list[ImageIdentity]:
        """Matched images whose label differs from the canonical image's label."""
        return [self.record(int(i)) for i in np.flatnonzero(self.disagreeing())]

    def disagreeing(self) -> npt.NDArray[np.bool_]:
        """Matched, both labelled, and the labels differ (an unlabeled image disagrees with none)."""
        labelled = (self.labels >= 0) & (self.canonical_labels >= 0)
        found: npt.NDArray[np.bool_] = (
            self.matched() & labelled & (self.labels != self.canonical_labels)
        )
        return found

    def repeated(self) -> dict[tuple[str, int], list[tuple[str, int]]]:
        """Canonical images that more than one image of the dataset is a copy of."""
        keys = np.char.add(np.char.add(self.canonical_splits, ":"),
                           self.canonical_indices.astype(np.str_))  # fmt: skip
        keys = keys[self.matched()]
        places = np.flatnonzero(self.matched())
        unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        out: dict[tuple[str, int], list[tuple[str, int]]] = {}
        for code in np.flatnonzero(counts > 1):
            split, index = str(unique[code]).split(":")
            where = places[inverse == code]
            out[(split, int(index))] = [(str(self.splits[i]), int(self.indices[i])) for i in where]
        return out

    def max_error(self) -> float | None:
        """The largest measured error of a lossy match, in levels."""
        errors = self.max_errors[(self.kinds == LOSSY) & ~np.isnan(self.max_errors)]
        return float(errors.max()) if len(errors) else None

    def transforms(self) -> list[str]:
        """What the lossy copies went through, as far as the pixels tell."""
        lossy = self.kinds == LOSSY
        found = []
        if lossy.any():
            found.append("JPEG-like re-encoding")
        if (lossy & self.stretched).any():
            found.append("contrast stretch")
        if (lossy & (self.shifts != 0).any(axis=1)).any():
            found.append("shift")
        return found

    def summary(self) -> list[str]:
        """Lines to read at a glance (see :func:`catalog.identity.summary.summarize`)."""
        from catalog.identity.summary import summarize

        return summarize(self)

    def to_json(self, *, images: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "dataset": self.dataset,
            "reference": self.reference,
            "counts": self.counts(),
            "max_error": self.max_error(),
            "transforms": self.transforms(),
            "summary": self.summary(),
            "label_disagreements": [vars(r) for r in self.label_disagreements()],
            "notes": list(self.notes),
        }
        if images:
            data["images"] = [vars(r) for r in self.matches()]
        return data


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
