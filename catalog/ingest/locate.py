"""Where an ingest's source is: a path on disk, or a known dataset's verified files.

A bare known name (``mnist``, ``fashion-mnist`` ...) always means that dataset's
canonical files: taken from the download cache when a copy there verifies, else
downloaded and verified. Anything else is a path. A folder or file named like a
known dataset in the working folder is therefore never read by accident (the old
recipe writes lossy JPEGs to ``./mnist``): :attr:`Located.note` says it was passed
over and how to ingest it instead (``./mnist``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from catalog.sources.download import DownloadProgress, dataset_cache_dir, download_dataset
from catalog.sources.fingerprints import KNOWN_DATASETS

#: How a source was found.
FROM_PATH, FROM_CACHE, DOWNLOADED = "path", "cache", "downloaded"


@dataclass(frozen=True)
class Located:
    """A source to ingest, and how it was found."""

    path: Path
    how: str  # FROM_PATH, FROM_CACHE or DOWNLOADED
    dataset: str | None = None  # the dataset name the source implies (None: from the path)
    note: str | None = None  # what the user should know about the choice

    def describe(self, name: str) -> str:
        """One line for people: which files of known dataset ``name``, from where."""
        where = self.path.parent if self.path.is_file() else self.path
        if self.how == DOWNLOADED:
            return f"Downloaded {name} into {where}"
        if self.how == FROM_CACHE:
            return f"Using the verified {name} files in {where}"
        return f"Reading {self.path}"


def is_known_name(source: str) -> bool:
    """Whether ``source`` is a bare known dataset name (not a path that looks like one).

    >>> is_known_name("mnist"), is_known_name("./mnist"), is_known_name("data/mnist")
    (True, False, False)
    """
    return source in KNOWN_DATASETS


def locate_source(
    source: str,
    *,
    cache_dir: Path | None = None,
    mirrors: list[str] | None = None,
    progress: DownloadProgress | None = None,
) -> Located:
    """The files ``source`` names: a bare known dataset name gives its verified files
    (from the cache, or downloaded into it); anything else is a path.

    Raises
    ------
    DownloadError
        If a known dataset's files are neither in the cache nor downloadable; the
        message says how to ingest without the network.
    """
    if not is_known_name(source):
        return Located(Path(source).expanduser(), FROM_PATH)
    folder = dataset_cache_dir(source, cache_dir)
    targets = [folder / known.name for known in KNOWN_DATASETS[source].files]
    before = [_identity(target) for target in targets]
    paths = download_dataset(source, cache_dir=cache_dir, mirrors=mirrors, progress=progress)
    cached = before == [_identity(target) for target in targets]
    path = paths[0] if len(paths) == 1 else paths[0].parent  # EMNIST: the zip itself
    shadowed = Path(source)
    note = None
    if shadowed.exists():
        kind = "folder" if shadowed.is_dir() else "file"
        note = (
            f"the {kind} ./{source} here was not read: `{source}` names the known dataset; "
            f"to ingest the {kind}, run `mnist-catalog ingest ./{source}`"
        )
    dataset = None if source == "emnist" else source  # an EMNIST split names its dataset
    return Located(path, FROM_CACHE if cached else DOWNLOADED, dataset, note)


def _identity(path: Path) -> tuple[int, int] | None:
    """Inode and modification time: a file downloaded again is another file."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_ino, found.st_mtime_ns
