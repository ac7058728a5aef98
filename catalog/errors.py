"""Errors a user can fix. The CLI prints their message on one line and exits 1."""

from __future__ import annotations

from typing import Any


class CatalogError(Exception):
    """Base class for errors a user can fix."""


class UnknownFormatError(CatalogError):
    """The source is not IDX, pickle, npz or an image folder."""


class SourceFormatError(CatalogError):
    """The source is in a known format but its content is malformed."""


class UnsafePickleError(SourceFormatError):
    """A pickle asked for something other than numpy array reconstruction."""


class DatasetNotFoundError(CatalogError):
    """No dataset of that name is in the catalog."""


class ImageNotFoundError(CatalogError):
    """No image at that split and index."""


class SelectionError(CatalogError):
    """A filter names a label, split or range that cannot be selected."""


class InvalidNameError(CatalogError):
    """A dataset or split name is not safe to store or to use in a path."""


class DownloadError(CatalogError):
    """No mirror delivered a file whose checksum matched."""


class ExportError(CatalogError):
    """An export could not write where it was asked to."""


class ExportConflictError(ExportError):
    """A file at an export path differs from what the export would write."""


class CatalogLocationError(CatalogError):
    """The catalog URL or path cannot be opened."""


class DatasetConflictError(CatalogError):
    """The dataset already holds different images in a split this source provides."""


class DecisionError(CatalogError):
    """A curation decision names an image, label, tag or row that cannot be applied."""


class StaleDecisionError(DecisionError):
    """A decision was made after the one its author saw: nothing is recorded.

    ``latest`` holds the newer decision (id, action, label, tag, by, at ...), so a
    face can say who decided what and when.
    """

    def __init__(self, message: str, latest: dict[str, Any]) -> None:
        super().__init__(message)
        self.latest = latest


class UnknownTagError(DecisionError):
    """No image carries the tag asked to be removed."""


class MissingExtraError(CatalogError):
    """An optional dependency that this use needs is not installed."""


class SchemaOutdatedError(CatalogLocationError):
    """A shared catalog's schema is older than this client: ``mnist-catalog db upgrade``."""


class CatalogReadOnlyError(CatalogError):
    """The catalog may not be written by this role, or by this (older) client."""


class CatalogConnectionError(CatalogLocationError):
    """The connection to the catalog's server was lost or refused."""


class CatalogBusyError(CatalogError):
    """Another client held a lock too long, or won a conflict (deadlock, serialization)."""


class OverBudgetError(SourceFormatError):
    """A source asks for more than the read budget allows; a ``--max-...`` option raises it."""


class EmptySourceError(SourceFormatError):
    """A source holds no images."""


class BackupError(CatalogError):
    """A backup could not be written where it was asked to, or not on this backend."""
