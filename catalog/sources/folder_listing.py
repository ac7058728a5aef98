"""The listing of a folder of images (see :mod:`catalog.sources.folder`), checked whole
before any image is decoded: split and label names, names that do not parse or are not
UTF-8, duplicate indices, symlinks leading outside ROOT, entries that are not regular
files, and more files than the read budget's images.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from catalog.budget import ReadBudget
from catalog.errors import SourceFormatError
from catalog.sources import IMAGE_SUFFIXES, UNLABELED, check_name, check_split_name

CLASSIC = "classic"
#: The by-label folder of images without a label (what export writes for them).
UNLABELED_FOLDER = "unlabeled"
BY_LABEL = "by-label"

# ASCII digits only: int() also reads Arabic-Indic and other digits, which no index uses.
CLASSIC_NAME = re.compile(r"^(\d{1,18})_(\d+)(\.[^.]+)$", re.ASCII)
INTEGER_STEM = re.compile(r"^\d{1,18}$", re.ASCII)
SUFFIXES = "|".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))


@dataclass
class Split:
    """The listing of one split: files in sorted relative-path order."""

    name: str
    rels: list[str] = field(default_factory=list)  # relative to ROOT, '/'-separated
    paths: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    stems: list[str] = field(default_factory=list)  # by-label only
    indices: list[int] = field(default_factory=list)


class _Lister:
    """List ROOT's entries, refusing symlinks that lead outside it, names that are not
    UTF-8, files that are not regular files, and more files than the budget's images."""

    def __init__(self, root: Path, budget: ReadBudget) -> None:
        self.root = root
        self.budget = budget
        self.listed = 0
        try:
            self.real_root = root.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            msg = f"Cannot read folder {root}: {exc}"
            raise SourceFormatError(msg) from None
        if not self.real_root.is_dir():
            msg = f"Cannot read folder {root}: expected a directory, found a file"
            raise SourceFormatError(msg)

    def entries(self, folder: str, rel: str) -> list[tuple[str, str, bool]]:
        """Return (relative path, path, is_dir) of ``folder``'s non-hidden entries, sorted."""
        try:
            found = []
            with os.scandir(folder) as scan:
                for entry in scan:
                    if entry.name.startswith("."):
                        continue
                    found.append(entry)
                    if self.listed + len(found) > self.budget.max_images:
                        claim = f"{self.root} holds more than {self.budget.max_images:,} files"
                        self.budget.refuse("max_images", claim)
            self.listed += len(found)
            found.sort(key=lambda e: e.name)
            result = []
            for entry in found:
                child = f"{rel}/{entry.name}" if rel else entry.name
                check_name(Path(child), self.root)
                if entry.is_symlink():
                    self._check_link(entry.path, child)
                is_dir = entry.is_dir()
                if not is_dir and not entry.is_file():
                    if not rel:
                        continue  # at ROOT only split folders count: other entries are ignored
                    msg = (
                        f"Refusing to read {child} in {self.root}: it is not a regular file "
                        "(a FIFO, socket, device or broken link)"
                    )
                    raise SourceFormatError(msg)
                result.append((child, entry.path, is_dir))
        except OSError as exc:
            msg = f"Cannot list {rel or '.'} in {self.root}: {exc.strerror or exc}"
            raise SourceFormatError(msg) from None
        return result

    def _check_link(self, path: str, rel: str) -> None:
        target = Path(os.path.realpath(path))
        if not target.is_relative_to(self.real_root):
            msg = (
                f"Refusing to read {rel} in {self.root}: it is a symlink to {target}, "
                "outside the folder"
            )
            raise SourceFormatError(msg)


def _image_suffix(root: Path, rel: str, suffix: str) -> None:
    if suffix.lower() not in IMAGE_SUFFIXES:
        msg = f"Unexpected file {rel} in {root}: expected an image ending in .{SUFFIXES.replace('|', ', .')}"
        raise SourceFormatError(msg)


def _label(root: Path, rel: str, text: str) -> int:
    if text == UNLABELED_FOLDER:
        return UNLABELED
    if (
        not text.isdigit()
        or not text.isascii()
        or len(text) > 5
        or (len(text) > 1 and text[0] == "0")
    ):
        msg = f"Invalid label in {rel} in {root}: expected a number such as 0-9, found {text}"
        raise SourceFormatError(msg)
    return int(text)


def _list_classic(root: Path, split: Split, files: list[tuple[str, str, bool]]) -> None:
    for rel, path, is_dir in files:
        name = rel.rsplit("/", 1)[1]
        match = CLASSIC_NAME.match(name)
        if is_dir or match is None:
            msg = (
                f"Cannot parse image name {rel} in {root}: expected "
                f"<index>_<label>.<{SUFFIXES}> as in 000123_7.png"
            )
            raise SourceFormatError(msg)
        _image_suffix(root, rel, match.group(3))
        split.rels.append(rel)
        split.paths.append(path)
        split.indices.append(int(match.group(1)))
        split.labels.append(_label(root, rel, match.group(2)))


def _list_by_label(
    root: Path, lister: _Lister, split: Split, folders: list[tuple[str, str, bool]]
) -> None:
    for rel, path, is_dir in folders:
        name = rel.rsplit("/", 1)[1]
        if not is_dir or not ((name.isdigit() and name.isascii()) or name == UNLABELED_FOLDER):
            msg = (
                f"Unexpected {'folder' if is_dir else 'file'} {rel} in {root}: expected only "
                f"label folders 0-9 (or other numbers, or {UNLABELED_FOLDER}) in a by-label split"
            )
            raise SourceFormatError(msg)
        label = _label(root, rel, name)
        for file_rel, file_path, file_is_dir in lister.entries(path, rel):
            stem, dot, suffix = file_rel.rsplit("/", 1)[1].rpartition(".")
            if file_is_dir or not dot or not stem:
                msg = (
                    f"Unexpected {'folder' if file_is_dir else 'file'} {file_rel} in {root}: "
                    f"expected images <name>.<{SUFFIXES}> in label folders"
                )
                raise SourceFormatError(msg)
            _image_suffix(root, file_rel, "." + suffix)
            split.rels.append(file_rel)
            split.paths.append(file_path)
            split.labels.append(label)
            split.stems.append(stem)
    if all(INTEGER_STEM.match(stem) for stem in split.stems):
        split.indices = [int(stem) for stem in split.stems]
    else:
        split.indices = list(range(len(split.stems)))


def _check_unique(root: Path, split: Split) -> None:
    seen: dict[int, str] = {}
    for rel, index in zip(split.rels, split.indices, strict=True):
        other = seen.setdefault(index, rel)
        if other != rel:
            msg = f"Duplicate index {index} in split {split.name} of {root}: {other} and {rel}"
            raise SourceFormatError(msg)


def list_folder(root: Path, budget: ReadBudget) -> tuple[str, list[Split]]:
    """Return the layout and the splits of ``root``, every name checked."""
    lister = _Lister(root, budget)
    split_dirs = [(rel, path) for rel, path, is_dir in lister.entries(str(root), "") if is_dir]
    # Sort by "<split>/" so that files come in sorted relative-path order overall.
    split_dirs.sort(key=lambda item: item[0] + "/")
    layouts: dict[str, str] = {}
    splits = []
    for rel, path in split_dirs:
        split = Split(check_split_name(rel, str(root)))
        children = lister.entries(path, rel)
        if any(is_dir for _, _, is_dir in children):
            layouts[rel] = BY_LABEL
            _list_by_label(root, lister, split, children)
        elif children:
            layouts[rel] = CLASSIC
            _list_classic(root, split, children)
        _check_unique(root, split)
        splits.append(split)
    if len(set(layouts.values())) > 1:
        found = ", ".join(f"{split} is {layout}" for split, layout in layouts.items())
        msg = f"Mixed layouts in {root}: expected one layout for all splits, found {found}"
        raise SourceFormatError(msg)
    if not layouts:
        msg = (
            f"No images found in {root}: expected <split>/<index>_<label>.png "
            "or <split>/<label>/<name>.png"
        )
        raise SourceFormatError(msg)
    return next(iter(layouts.values())), splits
