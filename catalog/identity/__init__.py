"""Identify: which genuine images a dataset holds, even after lossy copying.

For every image of a dataset, :func:`catalog.identity.match.identify` finds the reference image it is
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
