"""The at-a-glance summary of an identity result, with index ranges compressed."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from catalog.identity import result as res

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


def describe_split(r: res.IdentityResult, split: str, whole: dict[str, int]) -> list[str]:
    """How one split maps: ``"val 0-9,999 = mnist train 50,000-59,999 (exact)"``."""
    parts: list[tuple[int, str]] = []  # (first index, text), listed by first index
    mask = r.splits == split
    size = int(mask.sum())
    for kind in (res.EXACT, res.LOSSY):
        for target in sorted(set(r.canonical_splits[mask & (r.kinds == kind)].tolist())):
            sel = mask & (r.kinds == kind) & (r.canonical_splits == target)
            found = runs(r.indices[sel], r.canonical_indices[sel])
            name = res.KINDS[kind]
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
    unmatched = mask & (r.kinds == res.NONE)
    if unmatched.any():
        parts.append(
            (
                int(r.indices[unmatched][0]),
                f"{split}: {int(unmatched.sum()):,} images not in {r.reference} (none)",
            )
        )
    return [text for _, text in sorted(parts)]


def summarize(r: res.IdentityResult, whole: dict[str, int] | None = None) -> list[str]:
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
        lines.append(f"re-ingest the originals with `mnist-catalog ingest {r.reference}`")
    lines += r.notes
    return lines


def describe_leak(leak: res.Leak) -> str:
    """One line for a :class:`~catalog.identity.result.Leak`.

    >>> describe_leak(res.Leak("old", "train", "mnist", "test", 3, ((50, 10), (51, 11))))
    'old train: 3 images are copies of mnist test images (train 50 = test 10, train 51 = test 11, ...)'
    """
    shown = ", ".join(f"{leak.split} {a:,} = {leak.test_split} {b:,}" for a, b in leak.examples)
    more = ", ..." if leak.count > len(leak.examples) else ""
    return (
        f"{leak.dataset} {leak.split}: {leak.count:,} images are copies of "
        f"{leak.test_dataset} {leak.test_split} images ({shown}{more})"
    )
