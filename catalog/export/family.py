"""What exports add for the MNIST family: label folders named by class, an
``unlabeled/`` folder, and the class name and per-image metadata in the manifest."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.db import Dataset
from catalog.errors import SelectionError
from catalog.labelsets import LabelSet, label_set
from catalog.metadata import metadata_of
from catalog.sources import UNLABELED

FOLDER_NAMES = ("numbers", "names")
UNLABELED_FOLDER = "unlabeled"
#: Characters a class name cannot keep in a folder name ("T-shirt/top" -> "T-shirt-top").
UNSAFE = re.compile(r"[\x00-\x1f/\\:*?\"<>|]+")


def folder_name(name: str) -> str:
    """A class name made safe as one path component.

    >>> folder_name("T-shirt/top")
    'T-shirt-top'
    """
    safe = UNSAFE.sub("-", name).strip(" .-")
    return safe or "_"


def label_folders(session: Session, folder_names: str) -> Callable[[int, int], int | str]:
    """``(dataset id, label) -> folder``: the number, the class name, or ``unlabeled``."""
    if folder_names not in FOLDER_NAMES:
        msg = f"Unknown --folder-names {folder_names!r}: expected numbers or names"
        raise SelectionError(msg)
    numbers: dict[int, list[int]] = {}
    # Every set is read now: the export's session must not start a read between its writes.
    sets: dict[int, list[str]] = {}
    if folder_names == "names":
        for dataset_id in list(session.scalars(select(Dataset.id))):
            labels_of = label_set(session, dataset_id)
            names = [folder_name(n) for n in labels_of.names]
            if len(set(names)) != len(names):
                msg = f"Class names of dataset {dataset_id} collide as folder names: use --folder-names numbers"
                raise SelectionError(msg)
            sets[dataset_id] = [folder_name(labels_of.name(n)) for n in labels_of.numbers]
            numbers[dataset_id] = list(labels_of.numbers)
    session.commit()

    def folder(dataset_id: int, label: int) -> int | str:
        if label == UNLABELED:
            return UNLABELED_FOLDER
        if folder_names == "numbers" or label not in numbers[dataset_id]:
            return label
        return sets[dataset_id][numbers[dataset_id].index(label)]

    return folder


def manifest_extras(session: Session, files: Sequence[Any]) -> list[str]:
    """For each file row (label at 4, dataset name at 1, image id at 7): the quoted
    class name and metadata (``key=value;...``) fields of the manifest."""
    ids = [row[7] for row in files]
    meta = metadata_of(session, ids)
    names = dict(session.execute(select(Dataset.name, Dataset.id)).all())
    sets: dict[int, LabelSet] = {}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="")
    extras = []
    for row in files:
        dataset_id = names[row[1]]
        if dataset_id not in sets:
            sets[dataset_id] = label_set(session, dataset_id)
        label = row[4]
        name = "" if label == UNLABELED else sets[dataset_id].name(label)
        pairs = ";".join(f"{k}={v}" for k, v in sorted(meta.get(row[7], {}).items()))
        out.seek(0)
        out.truncate()
        writer.writerow([name, pairs])
        extras.append(out.getvalue())
    return extras
