"""What ``db check`` returns: the broken rows it names, and how many rows it read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.db.models.images import Dataset

#: Broken rows named per check; past it they are counted (a ruined catalog must not
#: make a report the size of the catalog).
MAX_NAMED = 1000

Progress = Callable[[int], None]


@dataclass(frozen=True)
class BrokenRow:
    """One row that is not what it should be: ``mnist test:1530`` ``pixels do not match
    their sha256``."""

    check: str  # the check that found it: pixels, decisions, label-counts, files, storage
    row: str  # names the row: an image (dataset split:index), a count, a path
    problem: str  # what is wrong with it

    def __str__(self) -> str:
        return f"{self.row} {self.problem}"


@dataclass
class IntegrityReport:
    """Every check's rows read, the broken rows named, and the time each took."""

    checked: dict[str, int] = field(default_factory=dict)  # check -> rows it read
    broken: list[BrokenRow] = field(default_factory=list)  # at most MAX_NAMED a check
    broken_counts: dict[str, int] = field(default_factory=dict)  # check -> all it found
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.broken_counts

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "broken_counts": self.broken_counts,
            "broken": [asdict(row) for row in self.broken],
            "seconds": self.seconds,
        }


class Found:
    """Broken rows as checks find them: the first :data:`MAX_NAMED` of a check are named,
    the rest counted."""

    def __init__(self) -> None:
        self.rows: list[BrokenRow] = []
        self.counts: Counter[str] = Counter()

    def add(self, check: str, row: str, problem: str) -> None:
        self.counts[check] += 1
        if self.counts[check] <= MAX_NAMED:
            self.rows.append(BrokenRow(check, row, problem))


class Check(Protocol):
    """``run(session, found, progress) -> rows read``: one check of the catalog."""

    def __call__(self, session: Session, found: Found, progress: Progress | None, /) -> int: ...


def dataset_names(session: Session) -> dict[int, str]:
    """Dataset id -> name, to name the images of broken rows."""
    return {row.id: row.name for row in session.execute(select(Dataset.id, Dataset.name))}


def image_name(names: dict[int, str], dataset_id: int, split: str, index: int) -> str:
    """``mnist test:1530``.

    >>> image_name({1: "mnist"}, 1, "test", 1530)
    'mnist test:1530'
    """
    return f"{names.get(dataset_id, f'dataset #{dataset_id}')} {split}:{index}"
