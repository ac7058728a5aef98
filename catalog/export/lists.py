"""The manifest and the list files that training tools read.

``manifest.csv`` (``path,dataset,split,index,label,sha256,file_sha256,
original_label,decision,name,metadata``: ``label`` is the current one,
``decision`` the latest decision about the image, empty for none, ``name`` the
class name and ``metadata`` the per-image metadata as ``key=value;...``; an export of a
version adds ``version,content_id``) is always written; the lists are any of ``caffe`` (``<split>.txt``: ``path label``),
``mxnet`` (``<split>.lst``: ``index<TAB>label<TAB>path``) and ``csv``
(``<split>.csv``). They share one writer because they share one life: all are
written under temporary names as the export goes and renamed into place
together at the end, or all removed if it fails. An output format without
list files uses it with no list kinds, for its manifest alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import TextIO

from catalog.errors import ExportError
from catalog.export.atomic import TEMP_MARK
from catalog.export.file_rows import ImageFile

#: A label of an image published without one (catalog.sources.UNLABELED, repeated
#: here so that the export package loads no numpy).
UNLABELED = -1

LISTS = ("caffe", "mxnet", "csv")


class Lists:
    """Manifest and list files, written under temporary names, renamed at the end."""

    def __init__(
        self, root: Path, kinds: Sequence[str], stamp: tuple[str, str] | None = None
    ) -> None:
        self.root = root
        #: ``,<version>,<content id>`` at the end of each line of a version's manifest.
        self.suffix = "" if stamp is None else f",{stamp[0]},{stamp[1]}"
        self.kinds = kinds
        self.handles: list[TextIO] = []
        self.final: list[tuple[Path, Path]] = []
        self.manifest = self._open("manifest.csv")
        self.manifest.write(
            "path,dataset,split,index,label,sha256,file_sha256,original_label,decision,"
            "name,metadata" + (",version,content_id" if stamp else "") + "\n"
        )
        self.per_split: dict[tuple[str, str], TextIO] = {}

    def _open(self, name: str) -> TextIO:
        target = self.root / name
        temp = self.root / f".{name}{TEMP_MARK}-{os.getpid()}"
        self.final.append((temp, target))
        handle = temp.open("w", encoding="utf-8", newline="")
        self.handles.append(handle)
        return handle

    def _list(self, kind: str, split: str) -> TextIO:
        key = (kind, split)
        if key not in self.per_split:
            name = {"caffe": f"{split}.txt", "mxnet": f"{split}.lst", "csv": f"{split}.csv"}[kind]
            handle = self._open(name)
            if kind == "csv":
                handle.write("path,label\n")
            self.per_split[key] = handle
        return self.per_split[key]

    def add(self, files: Sequence[ImageFile], extras: Sequence[str] | None = None) -> None:
        """Append one block's files; ``extras`` are each file's quoted name and metadata
        manifest fields."""
        # Every other field is a checked name, a number or a hex digest: no quoting needed.
        tails = extras if extras is not None else [","] * len(files)
        self.manifest.write(
            "".join(
                f"{f.path},{f.dataset},{f.split},{f.split_index},{_label(f.label)},{f.sha256},"
                f"{f.file_sha256},{_label(f.original_label)},{f.decision or ''},{tail}"
                f"{self.suffix}\n"
                for f, tail in zip(files, tails, strict=True)
            )
        )
        for kind in self.kinds:
            by_split: dict[str, list[str]] = {}
            for f in files:
                if kind == "caffe":
                    line = f"{f.path} {f.label}\n"
                elif kind == "mxnet":
                    line = f"{f.split_index}\t{f.label}\t{f.path}\n"
                else:
                    line = f"{f.path},{f.label}\n"  # paths are built from checked names
                by_split.setdefault(f.split, []).append(line)
            for split, lines in by_split.items():
                self._list(kind, split).write("".join(lines))

    def add_lines(self, text: str) -> None:
        """Append manifest lines already formatted (an output with no list files)."""
        assert not self.kinds, "list files are written by add()"
        self.manifest.write(text)

    def abort(self) -> None:
        for handle in self.handles:
            with suppress(OSError):  # a full disk fails the last flush; the file goes anyway
                handle.close()
        for temp, _ in self.final:
            temp.unlink(missing_ok=True)

    def commit(self) -> list[Path]:
        try:
            for handle in self.handles:
                handle.close()
        except OSError as exc:
            msg = f"Cannot write the lists into export folder {self.root}: {exc.strerror}"
            raise ExportError(msg) from None
        for temp, target in self.final:
            os.replace(temp, target)
        return [target for _, target in self.final]


def _label(label: int | None) -> str:
    """A label as the manifest writes it: empty for an unlabeled image."""
    return "" if label is None or label == UNLABELED else str(label)
