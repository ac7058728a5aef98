"""What :func:`catalog.identity.match.identify` returns, and the summary people read.

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
        """Lines to read at a glance (see :func:`summarize`)."""
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


#: Runs listed per mapping before it is summarised as reordered.
MAX_RUNS = 4


def runs(
    indices: npt.NDArray[np.int64], canonical: npt.NDArray[np.int64]
) -> list[tuple[int, int, int, int]]:
    """Maximal runs where both index and canonical index go up by one.

    >>> runs(np.array([0, 1, 2, 5]), np.array([10, 11, 12, 3]))
    [(0, 2, 10, 12), (5, 5, 3, 3)]
    """
    if not len(indices):
        return []
    breaks = np.flatnonzero((np.diff(indices) != 1) | (np.diff(canonical) != 1)) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(indices)]]) - 1
    return [
        (int(indices[a]), int(indices[b]), int(canonical[a]), int(canonical[b]))
        for a, b in zip(starts, stops, strict=True)
    ]


def span(first: int, last: int) -> str:
    """
    >>> span(50000, 59999), span(7, 7)
    ('50,000-59,999', '7')
    """
    return f"{first:,}" if first == last else f"{first:,}-{last:,}"


def describe_split(r: IdentityResult, split: str, whole: dict[str, int]) -> list[str]:
    """How one split maps: ``"val 0-9,999 = mnist train 50,000-59,999 (exact)"``."""
    parts: list[tuple[int, str]] = []  # (first index, text), listed by first index
    mask = r.splits == split
    size = int(mask.sum())
    for kind in (EXACT, LOSSY):
        for target in sorted(set(r.canonical_splits[mask & (r.kinds == kind)].tolist())):
            sel = mask & (r.kinds == kind) & (r.canonical_splits == target)
            found = runs(r.indices[sel], r.canonical_indices[sel])
            name = KINDS[kind]
            if (
                len(found) == 1
                and found[0][0] == 0
                and found[0][2] == 0
                and (found[0][1] + 1 == size and found[0][3] + 1 == whole.get(target, -1))
            ):
                parts.append((0, f"{split} = {r.reference} {target} ({name})"))
            elif len(found) <= MAX_RUNS:
                parts += [
                    (a, f"{split} {span(a, b)} = {r.reference} {target} {span(c, d)} ({name})")
                    for a, b, c, d in found
                ]
            else:
                text = (
                    f"{split}: {int(sel.sum()):,} images = {r.reference} {target} "
                    f"({name}, in another order)"
                )
                parts.append((int(r.indices[sel][0]), text))
    unmatched = mask & (r.kinds == NONE)
    if unmatched.any():
        parts.append(
            (
                int(r.indices[unmatched][0]),
                f"{split}: {int(unmatched.sum()):,} images not in {r.reference} (none)",
            )
        )
    return [text for _, text in sorted(parts)]


def summarize(r: IdentityResult, whole: dict[str, int] | None = None) -> list[str]:
    """Lines to read at a glance: the mapping, the lossy copies, labels, what to do.

    ``whole`` gives the reference's split sizes, so a split that maps onto all of
    one is written ``test = mnist test``; by default the shipped sizes for mnist.
    """
    if whole is None:
        from catalog.sources.fingerprints import KNOWN_SPLITS

        whole = {k.split: k.size for k in KNOWN_SPLITS if k.dataset == r.reference}
    lines: list[str] = []
    mapping: list[str] = []
    for split in sorted(set(r.splits.tolist())):
        mapping += describe_split(r, split, whole)
    if mapping:
        lines.append("; ".join(mapping))
    total, lossy = len(r), r.count("lossy")
    if lossy:
        how = " + ".join(r.transforms())
        error = r.max_error()
        measured = f", max error {error:.0f} levels" if error is not None else ""
        lines.append(f"{lossy:,} of {total:,} lossy copies of {r.reference} ({how}{measured})")
    disagree = r.label_disagreements()
    matched = int(r.matched().sum())
    if matched:
        if not disagree:
            lines.append("labels agree for all" if matched == total else
                         f"labels agree for all {matched:,} matched images")  # fmt: skip
        else:
            shown = ", ".join(
                f"{d.split} {d.index:,} says {d.label} ({r.reference} {d.canonical_split} "
                f"{d.canonical_index:,} is {d.canonical_label})"
                for d in disagree[:5]
            )
            more = f" and {len(disagree) - 5:,} more" if len(disagree) > 5 else ""
            lines.append(f"{len(disagree):,} labels disagree: {shown}{more}")
    if lossy and r.reference in ("mnist",):
        lines.append(f"re-ingest the originals with `{reingest_command(r)}`")
    lines += r.notes
    return lines


def reingest_command(r: IdentityResult) -> str:
    """The command that ingests the genuine files of ``r``'s reference: the name of a known
    dataset always means its verified files (cache or download), never a folder of that
    name; a copy named like the reference gets the originals beside it, not over it."""
    command = f"mnist-catalog ingest {r.reference}"
    if r.dataset == r.reference:
        command += f" --dataset {r.reference}-original"
    return command
