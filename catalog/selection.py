"""What a selection is: the filters that say "which images", as plain data.

This module imports nothing heavy, so the command line can build a
:class:`Selection` from its options before numpy or SQLAlchemy are loaded;
:mod:`catalog.select.filters` compiles it to SQL.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from catalog.errors import SelectionError

ORDERS = ("index", "random")
#: Which excluded images a selection keeps: none (the default), all, or only them.
EXCLUDED = ("omit", "include", "only")


@dataclass(frozen=True)
class Selection:
    """Which images: every filter is optional and they combine with AND."""

    dataset: str | None = None
    splits: tuple[str, ...] = ()
    labels: tuple[int | str, ...] = ()  # numbers or class names of the dataset's label set
    index_range: tuple[int, int] | None = None  # half-open [start, stop) within a split
    sample: int | None = None  # uniform random sample of this many
    per_label: int | None = None  # this many of each label (stratified)
    seed: int = 0
    order: str = "index"  # "index" or "random"
    limit: int | None = None
    offset: int = 0
    tags: tuple[str, ...] = ()  # carries every one of these tags
    without_tags: tuple[str, ...] = ()  # carries none of these
    relabelled: bool = False  # only images whose current label differs from the source's
    excluded: str = "omit"  # one of EXCLUDED
    original_labels: bool = False  # select and label by the source's labels

    unlabeled: bool = False  # only images published without a label
    where: tuple[tuple[str, str], ...] = ()  # per-image metadata key=value, all must hold
    group_by: str | None = None  # metadata key whose groups per_group samples
    per_group: int | None = None  # this many random images of each group
    holdout_by: str | None = None  # metadata key of a group-disjoint split ...
    holdout: float | None = None  # ... holding out this fraction of the groups
    holdout_part: str | None = None  # "train" (the rest) or "val" (the held-out groups)
    version: str | None = None  # within this frozen version, with its frozen labels

    def __post_init__(self) -> None:
        bad = [label for label in self.labels if isinstance(label, int) and label < 0]
        if bad:
            msg = f"Label {bad[0]} is negative: labels are numbers 0 and up, or class names"
            raise SelectionError(msg)
        if self.index_range is not None:
            start, stop = self.index_range
            if start < 0 or stop < start:
                msg = f"Index range {start}:{stop} is not a half-open range A:B with 0 <= A <= B"
                raise SelectionError(msg)
        for name in ("sample", "per_label", "per_group", "limit"):
            value = getattr(self, name)
            if value is not None and value < 0:
                msg = f"--{name.replace('_', '-')} must be 0 or more, got {value}"
                raise SelectionError(msg)
        if self.offset < 0:
            msg = f"--offset must be 0 or more, got {self.offset}"
            raise SelectionError(msg)
        samplers = [
            f"--{n.replace('_', '-')}"
            for n in ("sample", "per_label", "per_group")
            if getattr(self, n) is not None
        ]
        if len(samplers) > 1:
            msg = f"{' and '.join(samplers)} cannot be combined"
            raise SelectionError(msg)
        if self.excluded not in EXCLUDED:
            msg = f"Unknown excluded mode {self.excluded!r}: expected one of {', '.join(EXCLUDED)}"
            raise SelectionError(msg)
        if self.order not in ORDERS:
            msg = f"Unknown order {self.order!r}: expected one of {', '.join(ORDERS)}"
            raise SelectionError(msg)
        self._check_family()
        if self.version is not None and self.excluded == "only":
            msg = "--excluded and --version cannot be combined: a version's images are fixed"
            raise SelectionError(msg)

    def _check_family(self) -> None:
        if (self.per_group is None) != (self.group_by is None):
            msg = "--per-group N and --group-by KEY go together"
            raise SelectionError(msg)
        if self.unlabeled and self.labels:
            msg = "--unlabeled and --label cannot be combined: unlabeled images have no label"
            raise SelectionError(msg)
        # A part needs the key and fraction; both without a part is the whole
        # selection the holdout was cut from (as an export's record is re-read).
        if (self.holdout_by is None) != (self.holdout is None) or (
            self.holdout_part is not None and self.holdout_by is None
        ):
            msg = "--holdout-by KEY and --holdout FRACTION go together"
            raise SelectionError(msg)
        if self.holdout_part not in (None, "train", "val"):
            msg = f"Holdout part {self.holdout_part!r}: expected train or val"
            raise SelectionError(msg)
        if self.holdout is not None and not 0 < self.holdout < 1:
            msg = f"--holdout must be a fraction between 0 and 1, got {self.holdout}"
            raise SelectionError(msg)

    def to_json(self) -> dict[str, Any]:
        """The selection as plain JSON values (recorded with each export)."""
        data = asdict(self)
        data["splits"] = list(self.splits)
        data["labels"] = list(self.labels)
        data["index_range"] = list(self.index_range) if self.index_range else None
        data["tags"], data["without_tags"] = list(self.tags), list(self.without_tags)
        data["where"] = [list(pair) for pair in self.where]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Selection:
        """The selection :meth:`to_json` recorded (keys it does not know are ignored)."""
        known = {name: value for name, value in data.items() if name in cls.__dataclass_fields__}
        for name in ("splits", "labels", "tags", "without_tags", "index_range"):
            if known.get(name) is not None:
                known[name] = tuple(known[name])
        if known.get("where") is not None:
            known["where"] = tuple(tuple(pair) for pair in known["where"])
        return cls(**known)

    @property
    def is_random(self) -> bool:
        return (
            self.sample is not None
            or self.per_label is not None
            or self.per_group is not None
            or self.holdout_part is not None
            or self.order == "random"
        )
