"""What a selection is: the filters that say "which images", as plain data.

This module imports nothing heavy, so the command line can build a
:class:`Selection` from its options before numpy or SQLAlchemy are loaded;
:mod:`catalog.query` compiles it to SQL.
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
    labels: tuple[int, ...] = ()
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

    def __post_init__(self) -> None:
        bad = [label for label in self.labels if not 0 <= label <= 9]
        if bad:
            msg = f"Label {bad[0]} is outside 0-9"
            raise SelectionError(msg)
        if self.index_range is not None:
            start, stop = self.index_range
            if start < 0 or stop < start:
                msg = f"Index range {start}:{stop} is not a half-open range A:B with 0 <= A <= B"
                raise SelectionError(msg)
        for name in ("sample", "per_label", "limit"):
            value = getattr(self, name)
            if value is not None and value < 0:
                msg = f"--{name.replace('_', '-')} must be 0 or more, got {value}"
                raise SelectionError(msg)
        if self.offset < 0:
            msg = f"--offset must be 0 or more, got {self.offset}"
            raise SelectionError(msg)
        if self.sample is not None and self.per_label is not None:
            msg = "--sample and --per-label cannot be combined"
            raise SelectionError(msg)
        if self.excluded not in EXCLUDED:
            msg = f"Unknown excluded mode {self.excluded!r}: expected one of {', '.join(EXCLUDED)}"
            raise SelectionError(msg)
        if self.order not in ORDERS:
            msg = f"Unknown order {self.order!r}: expected one of {', '.join(ORDERS)}"
            raise SelectionError(msg)

    def to_json(self) -> dict[str, Any]:
        """The selection as plain JSON values (recorded with each export)."""
        data = asdict(self)
        data["splits"] = list(self.splits)
        data["labels"] = list(self.labels)
        data["index_range"] = list(self.index_range) if self.index_range else None
        data["tags"], data["without_tags"] = list(self.tags), list(self.without_tags)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Selection:
        """The selection :meth:`to_json` recorded (keys it does not know are ignored)."""
        known = {name: value for name, value in data.items() if name in cls.__dataclass_fields__}
        for name in ("splits", "labels", "tags", "without_tags", "index_range"):
            if known.get(name) is not None:
                known[name] = tuple(known[name])
        return cls(**known)

    @property
    def is_random(self) -> bool:
        return self.sample is not None or self.per_label is not None or self.order == "random"
