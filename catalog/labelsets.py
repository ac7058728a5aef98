"""Label sets: which labels a dataset has, and the name of each.

Every consumer that validates, parses or names a label asks :func:`label_set`
for the dataset's set, so nothing else assumes ten digit classes. Until label
sets are stored in the catalog, every dataset has the ten digits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from catalog.errors import SelectionError


@dataclass(frozen=True)
class LabelSet:
    """The labels of a dataset: their numbers, ascending, and a name for each."""

    numbers: tuple[int, ...]
    names: tuple[str, ...]

    def __contains__(self, label: object) -> bool:
        return label in self.numbers

    def name(self, label: int | None) -> str:
        """The class name of ``label`` (``""`` for an unlabeled image)."""
        if label is None:
            return ""
        try:
            return self.names[self.numbers.index(label)]
        except ValueError:
            return str(label)

    def parse(self, text: str) -> int:
        """A label given as a number or a class name.

        >>> DIGITS.parse("7")
        7
        """
        value = text.strip()
        if value in self.names:
            return self.numbers[self.names.index(value)]
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is not None and number in self.numbers:
            return number
        msg = f"Label {text!r} is not in the label set: expected one of {self.describe()}"
        raise SelectionError(msg)

    def describe(self) -> str:
        """The set in a few words, for error messages."""
        pairs = [
            str(n) if name == str(n) else f"{n} ({name})"
            for n, name in zip(self.numbers, self.names, strict=True)
        ]
        if len(pairs) > 12:
            pairs = [*pairs[:10], "...", pairs[-1]]
        return ", ".join(pairs)


DIGITS = LabelSet(tuple(range(10)), tuple(str(n) for n in range(10)))


def label_set(session: Session, dataset_id: int) -> LabelSet:
    """The label set of a dataset."""
    del session, dataset_id  # every dataset has the ten digits until sets are stored
    return DIGITS
