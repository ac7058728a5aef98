"""Identify: which genuine images a dataset holds, even after lossy copying.

For every image of a dataset, :func:`identify` finds the reference image it is
(canonical dataset, split and index) and how it matches: ``exact`` (same
pixels), ``lossy`` (the same digit after JPEG re-encoding, a per-image contrast
stretch, grayscale/RGB conversion or a small shift; with the measured error)
or ``none``.

The reference is genuine MNIST, from the registry shipped in ``data/``, or any
dataset of the catalog (``against="fashion"``), whose registry is built in
memory, streamed in blocks.

The shipped files
-----------------
``data/mnist-index.npz`` holds, in canonical order (split ``test`` then
``train``, each by index): the split names and sizes, each image's label, its
digest (the first 8 bytes of the sha256 of its 784 raw uint8 pixels, row-major,
as big-endian uint64: the prefix of the catalog's ``images.sha256``), and the
projection signatures are taken on (the mean and 32 leading principal axes of
the unit-length images, and the int8 scale). ``data/mnist-signatures-<k>.npy``
hold the int8 signatures of 25,000 images each. They were built from the four
genuine MNIST IDX files, checked against :mod:`catalog.sources.fingerprints`, with::

    python scripts/build_identity_registry.py MNIST_FOLDER

Rebuilding gives the same files on the same numpy and LAPACK; a signature
differing by one quantisation step elsewhere does not change any match.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from catalog.identity.match import (
    PIXEL_TOLERANCE,
    SIGNATURE_MARGIN,
    SIGNATURE_TOLERANCE,
    identify_session,
    resolve_reference,
)
from catalog.identity.registry import (
    Registry,
    build_registry,
    load_shipped,
    registry_from_dataset,
)
from catalog.identity.result import (
    KINDS,
    IdentityResult,
    ImageIdentity,
    Leak,
    find_leakage,
)
from catalog.identity.store import IDENTITY_KEYS, store_identity
from catalog.identity.summary import describe_leak, summarize

__all__ = [
    "IDENTITY_KEYS",
    "KINDS",
    "PIXEL_TOLERANCE",
    "SIGNATURE_MARGIN",
    "SIGNATURE_TOLERANCE",
    "IdentityResult",
    "ImageIdentity",
    "Leak",
    "Registry",
    "build_registry",
    "describe_leak",
    "find_leakage",
    "identify",
    "identify_session",
    "load_shipped",
    "registry_from_dataset",
    "resolve_reference",
    "store_identity",
    "summarize",
]


def identify(
    source: Session | object,
    dataset: str | None = None,
    *,
    against: str = "mnist",
    progress: Callable[[int], None] | None = None,
) -> IdentityResult:
    """Say which reference image each image of ``dataset`` is.

    Parameters
    ----------
    source
        A :class:`sqlalchemy.orm.Session` on a catalog, or a :class:`catalog.Catalog`.
    dataset
        The dataset to identify; None for the catalog's only dataset.
    against
        ``"mnist"`` (the shipped registry; pixels confirm lossy matches when the
        catalog also holds the genuine files) or the name of a dataset in the catalog.
    progress
        Called with the number of images done, as work advances.

    Returns
    -------
    IdentityResult
        Per image: kind, canonical split/index/label, error; plus ``summary()``.

    Raises
    ------
    DatasetNotFoundError
        ``dataset`` or ``against`` is not in the catalog.
    """
    if isinstance(source, Session):
        return identify_session(source, dataset, against, progress)
    from catalog.api.catalog import Catalog
    from catalog.db.engine import session_scope

    if not isinstance(source, Catalog):
        msg = f"identify() takes a Session or a Catalog, got {type(source).__name__}"
        raise TypeError(msg)
    with session_scope(source.engine) as session:
        return identify_session(session, dataset, against, progress)
