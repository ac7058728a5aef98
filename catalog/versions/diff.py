"""What changed between two versions, or between a version and the selection as it stands.

Images are matched by place (split, index) in the versions' dataset. An image in B
only is *added*, in A only *removed*; one in both with another label is *relabelled*
(old -> new). An image whose pixels differ (a place re-ingested with other pixels) is
another image: removed from A and added in B.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from catalog.errors import VersionError
from catalog.selection import Selection
from catalog.versions.content import CURRENT
from catalog.versions.freeze import Frozen, get_version, selected_images, version_images


@dataclass(frozen=True)
class DiffImage:
    """One image that changed: its place, pixels and label (the old one too, if relabelled)."""

    split: str
    index: int
    sha256: str
    label: int | None  # in B (added, relabelled) or in A (removed)
    old_label: int | None = None  # relabelled: the label in A

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "split": self.split, "index": self.index, "sha256": self.sha256, "label": self.label,
        }  # fmt: skip
        return data


@dataclass
class VersionDiff:
    """The images added, removed and relabelled from ``a`` to ``b``."""

    a: str
    b: str
    dataset: str
    counts: dict[str, dict[str, int]]  # side ("a", "b") -> images per split
    added: list[DiffImage] = field(default_factory=list)
    removed: list[DiffImage] = field(default_factory=list)
    relabelled: list[DiffImage] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not (self.added or self.removed or self.relabelled)

    def by(self, kind: str, key: str) -> dict[str, int]:
        """How many images of ``kind`` (added, removed, relabelled) per ``split`` or
        ``label`` (the new label; a removed image's old one)."""
        images: list[DiffImage] = getattr(self, kind)
        found = Counter(
            str(image.split if key == "split" else "" if image.label is None else image.label)
            for image in images
        )
        return dict(sorted(found.items()))

    def to_json(self) -> dict[str, Any]:
        kinds = ("added", "removed", "relabelled")
        data: dict[str, Any] = {"a": self.a, "b": self.b, "dataset": self.dataset,
                                "splits": self.counts}  # fmt: skip
        for kind in kinds:
            data[kind] = {
                "count": len(getattr(self, kind)),
                "by_split": self.by(kind, "split"),
                "by_label": self.by(kind, "label"),
            }
        data["images"] = {
            "added": [image.to_json() for image in self.added],
            "removed": [image.to_json() for image in self.removed],
            "relabelled": [
                {**image.to_json(), "old_label": image.old_label} for image in self.relabelled
            ],
        }
        return data


def _side(session: Session, name: str, other: str) -> tuple[str, list[Frozen]]:
    """The dataset and images of one side: a version, or ``current``: the other
    side's version's selection as it stands now."""
    if name != CURRENT:
        row = get_version(session, name)
        return row.dataset, version_images(session, row)
    if other == CURRENT:
        msg = "diff needs at least one version: both sides are 'current'"
        raise VersionError(msg)
    row = get_version(session, other)
    recorded = dict(row.selection)
    if recorded.get("version") is None:
        recorded["dataset"] = row.dataset
    selection = Selection.from_json(recorded)
    return row.dataset, selected_images(session, selection)


def diff_versions(session: Session, a: str, b: str) -> VersionDiff:
    """The images added, removed and relabelled from ``a`` to ``b`` (version names,
    or ``"current"`` for the other's selection as it stands now).

    Raises
    ------
    VersionError
        If a name is unknown, both are ``current``, or the versions are of two datasets.
    """
    dataset_a, images_a = _side(session, a, b)
    dataset_b, images_b = _side(session, b, a)
    if dataset_a != dataset_b:
        msg = f"Versions {a!r} and {b!r} are of two datasets ({dataset_a}, {dataset_b})"
        raise VersionError(msg)
    counts = {
        "a": dict(sorted(Counter(i[0] for i in images_a).items())),
        "b": dict(sorted(Counter(i[0] for i in images_b).items())),
    }
    result = VersionDiff(a, b, dataset_a, counts)
    # Rows are (split, index, sha256, label); most are equal in both: compare whole rows
    # first (C speed), then look at the few that differ.
    rows_a, rows_b = set(map(tuple, images_a)), set(map(tuple, images_b))
    only_a, only_b = rows_a - rows_b, rows_b - rows_a
    before = {(row[0], row[1]): row for row in only_a}
    kept: set[tuple[str, int]] = set()
    for split, index, sha256, label in sorted(only_b, key=_order):
        old = before.get((split, index))
        if old is not None and old[2] == sha256:  # the same image, another label
            kept.add((split, index))
            result.relabelled.append(DiffImage(split, index, sha256, label, old[3]))
        else:
            result.added.append(DiffImage(split, index, sha256, label))
    result.removed = [
        DiffImage(*row) for row in sorted(only_a, key=_order) if (row[0], row[1]) not in kept
    ]
    return result


def _order(row: tuple[Any, ...]) -> tuple[bytes, int]:
    return row[0].encode(), row[1]
