"""Label sets: which labels a dataset has, and the name of each.

Every consumer that validates, parses or names a label asks :func:`label_set`
for the dataset's set, so nothing else assumes ten digit classes. Sets are
stored in the catalog (table ``label_names``), written at ingest from what the
source publishes (an EMNIST mapping, a parquet ClassLabel, a KMNIST class map),
else from the built-in names of a genuine dataset (Fashion-MNIST, KMNIST), else
the digits, else the numbers the source's images carry (sparse: only those present).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from catalog.errors import SelectionError

#: The most names :meth:`LabelSet.by_position` lists; a sparser set (labels 0 and
#: 2,147,483,647) stays plain integers where a list of names by position is written.
MOST_BY_POSITION = 4096


@dataclass(frozen=True)
class LabelSet:
    """The labels of a dataset: their numbers, ascending, and a name for each.

    A set holds the labels a dataset has, not every number up to the largest: a CSV
    labelled 0, 1,000,000 and 2,147,483,647 has a set of three. Lookups by number and
    by name are dictionary lookups.
    """

    numbers: tuple[int, ...]
    names: tuple[str, ...]
    _by_number: dict[int, str] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_number = dict(zip(self.numbers, self.names, strict=True))
        by_name: dict[str, int] = {}
        for number, name in by_number.items():
            by_name.setdefault(name, number)  # the first of two equal names, as before
        object.__setattr__(self, "_by_number", by_number)
        object.__setattr__(self, "_by_name", by_name)

    def __contains__(self, label: object) -> bool:
        return label in self._by_number

    def name(self, label: int | None) -> str:
        """The class name of ``label`` (``""`` for an unlabeled image).

        >>> LabelSet((0, 1_000_000), ("zero", "million")).name(1_000_000)
        'million'
        """
        if label is None:
            return ""
        return self._by_number.get(label, str(label))

    def parse(self, text: str) -> int:
        """A label given as a number or a class name.

        >>> DIGITS.parse("7")
        7
        """
        value = text.strip()
        if value in self._by_name:
            return self._by_name[value]
        # One of a name's '/'-separated forms: "a" for EMNIST letters' "A/a".
        forms = [
            n for n, name in zip(self.numbers, self.names, strict=True) if value in name.split("/")
        ]
        if len(forms) == 1:
            return forms[0]
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is not None and number in self._by_number:
            return number
        msg = f"Label {text!r} is not in the label set: expected one of {self.describe()}"
        raise SelectionError(msg)

    def by_position(self) -> tuple[str, ...] | None:
        """The names by position, from 0 to the largest label (the form of Hugging Face's
        ``ClassLabel``: label ``i`` is named at ``i``), a number the set lacks named by
        itself; None when that would take more than :data:`MOST_BY_POSITION` names.

        >>> LabelSet((1, 2), ("A/a", "B/b")).by_position()
        ('0', 'A/a', 'B/b')
        >>> LabelSet((0, 2**31 - 1), ("0", "2147483647")).by_position() is None
        True
        """
        if not self.numbers:
            return ()
        if self.numbers[0] < 0 or self.numbers[-1] >= MOST_BY_POSITION:
            return None
        return tuple(self._by_number.get(n, str(n)) for n in range(self.numbers[-1] + 1))

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


def from_names(names: dict[int, str]) -> LabelSet:
    """A set from number -> name."""
    numbers = tuple(sorted(names))
    return LabelSet(numbers, tuple(names[n] for n in numbers))


#: Class names of the known datasets, by the names of :mod:`catalog.sources.fingerprints`.
FASHION_MNIST = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
#: KMNIST's classes (kmnist_classmap.csv): お き す つ な は ま や れ を.
KMNIST = ("お", "き", "す", "つ", "な", "は", "ま", "や", "れ", "を")
#: Kuzushiji-49's classes (k49_classmap.csv): the 48 hiragana in gojūon order and ゝ.
K49 = tuple(
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわゐゑをんゝ"
)
BUILT_IN: dict[str, tuple[str, ...]] = {
    "mnist": DIGITS.names,
    "qmnist": DIGITS.names,
    "fashion-mnist": FASHION_MNIST,
    "kmnist": KMNIST,
    "k49": K49,
}


def built_in(name: str) -> LabelSet | None:
    """The built-in set of a known dataset (``fashion-mnist``...), or None."""
    names = BUILT_IN.get(name)
    return None if names is None else LabelSet(tuple(range(len(names))), names)


def label_set(session: Session, dataset_id: int) -> LabelSet:
    """The label set of a dataset, as stored; the digits for a dataset with none stored."""
    from catalog.db.models.family import LabelName

    rows = session.execute(
        select(LabelName.number, LabelName.name)
        .where(LabelName.dataset_id == dataset_id)
        .order_by(LabelName.number)
    ).all()
    if not rows:
        return DIGITS
    return LabelSet(tuple(r.number for r in rows), tuple(r.name for r in rows))


def store_label_set(session: Session, dataset_id: int, labels: LabelSet, origin: str) -> None:
    """Make ``labels`` the stored set of a dataset, and record where it came from."""
    from catalog.db.models.family import LabelName
    from catalog.db.models.images import Dataset

    session.execute(delete(LabelName).where(LabelName.dataset_id == dataset_id))
    session.add_all(
        LabelName(dataset_id=dataset_id, number=n, name=name)
        for n, name in zip(labels.numbers, labels.names, strict=True)
    )
    dataset = session.get(Dataset, dataset_id)
    if dataset is not None:
        dataset.label_set = origin[:64]
    session.flush()
