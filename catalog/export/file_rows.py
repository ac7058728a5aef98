"""What an export knows about each file it wrote or found: records, not positional tuples.

A folder export has one file per image (:class:`ImageFile`, joined back to its image
for the manifest and the list files); a container export has files that hold many
images (:class:`WrittenFile`). The recorder reads what both have (:class:`FileOutcome`).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

#: What happened to a file: written now, already there and identical, or in the way.
WRITTEN, SKIPPED, CONFLICT = "written", "skipped", "conflict"


class FileOutcome(Protocol):
    """A file as the catalog records it."""

    @property
    def path(self) -> str: ...  # relative to the export's root
    @property
    def image_id(self) -> int: ...  # the (first) image it holds
    @property
    def size(self) -> int: ...
    @property
    def file_sha256(self) -> str: ...  # of the bytes on disk
    @property
    def status(self) -> str: ...  # WRITTEN, SKIPPED or CONFLICT


class ImageFile(NamedTuple):
    """One image's file in a folder export, with what the manifest says of the image."""

    path: str  # relative to the export's root
    dataset: str
    split: str
    split_index: int  # the image's index in its split
    label: int  # current (UNLABELED for none)
    sha256: str  # of the pixels
    file_sha256: str  # of the file's bytes
    image_id: int
    size: int
    status: str  # WRITTEN, SKIPPED or CONFLICT
    original_label: int
    decision: int  # the latest decision about the image, 0 for none


class WrittenFile(NamedTuple):
    """One file of a container export (an IDX file, a shard ...)."""

    path: str
    image_id: int  # the first image it holds
    size: int
    file_sha256: str
    status: str
