"""Build small sources from arrays, in every format the catalog reads.

Tests make their data here rather than checking in files: each helper writes
what the real distribution of that format looks like (names, layouts, dtypes).
"""

from __future__ import annotations

import gzip
import pickle
import struct
import tracemalloc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

Pixels = npt.NDArray[np.uint8]
Labels = npt.NDArray[np.int64]
Split = tuple[Pixels, Labels]

#: IDX type code for each numpy dtype the format can hold.
IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}

PICKLE_SPLITS = ("train", "val", "test")


@contextmanager
def traced_peak() -> Iterator[list[int]]:
    """Trace allocations in the block; the list yielded holds their peak in bytes afterwards."""
    tracemalloc.start()
    peak: list[int] = []
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def idx_bytes(array: npt.NDArray[np.generic]) -> bytes:
    """Return ``array`` in IDX layout: magic (0, 0, type, ndim), big-endian dims, data."""
    code = IDX_CODES[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: npt.NDArray[np.generic], gz: bool) -> Path:
    """Write ``array`` as an IDX file (uint8 images: magic 0x0803, labels: 0x0801)."""
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def write_idx_pair(
    folder: Path,
    split_prefix: str,
    pixels: Pixels,
    labels: npt.NDArray[np.integer],
    gz: bool = True,
    dotted: bool = False,
) -> tuple[Path, Path]:
    """Write ``<prefix>-images-idx3-ubyte(.gz)`` and ``<prefix>-labels-idx1-ubyte(.gz)``.

    ``split_prefix`` is ``train`` or ``t10k`` in the MNIST distribution; ``dotted``
    gives the ``train-images.idx3-ubyte`` spelling some mirrors use.
    """
    folder.mkdir(parents=True, exist_ok=True)
    sep = "." if dotted else "-"
    suffix = ".gz" if gz else ""
    images = folder / f"{split_prefix}-images{sep}idx3-ubyte{suffix}"
    label_file = folder / f"{split_prefix}-labels{sep}idx1-ubyte{suffix}"
    write_idx(images, np.asarray(pixels, dtype=np.uint8), gz)
    write_idx(label_file, np.asarray(labels, dtype=np.uint8), gz)
    return images, label_file


def _as_tuple(splits: Mapping[str, Split] | Sequence[Split]) -> tuple[Split, ...]:
    if not isinstance(splits, Mapping):
        return tuple(splits)
    names = PICKLE_SPLITS if "val" in splits else ("train", "test")
    if set(splits) != set(names):
        msg = f"expected splits {names}, got {sorted(splits)}"
        raise ValueError(msg)
    return tuple(splits[name] for name in names)


def write_pickle_gz(
    path: Path,
    splits: Mapping[str, Split] | Sequence[Split],
    scale: int = 256,
    gz: bool = True,
    protocol: int = 2,
) -> Path:
    """Write the classic ``mnist.pkl.gz`` layout: float32 ``(n, 784)`` pixels / ``scale``.

    ``splits`` is ``{"train", "val", "test"}`` (or ``{"train", "test"}``) to
    ``(pixels uint8 (n, h, w), labels)``, or the tuple of those pairs in order.
    """
    pairs = tuple(
        (
            (pixels.reshape(len(pixels), -1).astype(np.float32) / np.float32(scale)),
            np.asarray(labels, dtype=np.int64),
        )
        for pixels, labels in _as_tuple(splits)
    )
    data = pickle.dumps(pairs, protocol=protocol)
    # Level 1: the real file's level does not matter to the reader, and level 9
    # takes half a minute on 70,000 float images.
    path.write_bytes(gzip.compress(data, compresslevel=1, mtime=0) if gz else data)
    return path


def py2_array_pickle(array: npt.NDArray[np.generic]) -> bytes:
    """Return the protocol-2 opcodes Python 2's cPickle wrote for a numpy array.

    Array data is a Python 2 ``str`` (BINSTRING), the module is ``numpy.core.multiarray``,
    and dtype arguments are ints: Python 3 reads it only with ``encoding="latin1"``.
    """
    dtype_code = array.dtype.str[1:].encode()
    order = "<" if array.dtype.itemsize > 1 else "|"
    data = array.tobytes()
    shape = b"".join(b"J" + struct.pack("<i", n) for n in array.shape)
    return b"".join(
        [
            b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n",
            b"K\x00\x85U\x01b\x87R",  # _reconstruct(ndarray, (0,), 'b')
            b"(K\x01(" + shape + b"t",  # state: (1, shape,
            b"cnumpy\ndtype\nU" + bytes([len(dtype_code)]) + dtype_code + b"K\x00K\x01\x87R",
            b"(K\x03U\x01" + order.encode() + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb",
            b"\x89T" + struct.pack("<I", len(data)) + data,  # False, data)
            b"tb",
        ]
    )


def write_py2_pickle_gz(path: Path, splits: Sequence[tuple[npt.NDArray[np.generic], ...]]) -> Path:
    """Write a tuple of (x, y) array pairs as Python 2 pickled it, gzipped."""
    body = b"".join(b"(" + b"".join(py2_array_pickle(a) for a in pair) + b"t" for pair in splits)
    data = b"\x80\x02(" + body + b"t."
    path.write_bytes(gzip.compress(data, mtime=0))
    return path


def write_npz(
    path: Path,
    x_train: npt.NDArray[np.generic],
    y_train: npt.NDArray[np.generic],
    x_test: npt.NDArray[np.generic],
    y_test: npt.NDArray[np.generic],
    compressed: bool = False,
    **extra: npt.NDArray[np.generic],
) -> Path:
    """Write keras' ``mnist.npz`` layout; ``extra`` adds arrays such as ``x_val``."""
    save: Callable[..., None] = np.savez_compressed if compressed else np.savez
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    with path.open("wb") as out:
        save(out, **arrays, **extra)
    return path


def write_image_folder(
    root: Path,
    split_arrays: Mapping[str, Split],
    layout: str = "classic",
    ext: str = "png",
    indices: Mapping[str, Sequence[int]] | None = None,
) -> Path:
    """Write one image file per digit.

    ``classic`` is ``ROOT/<split>/<index:06d>_<label>.<ext>``; ``by-label`` is
    ``ROOT/<split>/<label>/<index:06d>.<ext>``. ``indices`` gives each split's
    image indices (default 0..n-1).
    """
    for split, (pixels, labels) in split_arrays.items():
        numbers = list(indices[split]) if indices else list(range(len(pixels)))
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for image, label, index in zip(pixels, labels, numbers, strict=True):
            if layout == "classic":
                target = folder / f"{index:06d}_{int(label)}.{ext}"
            elif layout == "by-label":
                target = folder / str(int(label)) / f"{index:06d}.{ext}"
                target.parent.mkdir(exist_ok=True)
            else:
                msg = f"unknown layout {layout!r}"
                raise ValueError(msg)
            Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="L").save(
                target, compress_level=1
            )
    return root


def random_digits(n: int, seed: int, size: int = 28) -> tuple[Pixels, Labels]:
    """Return ``n`` plausible digit-like images (blurred random strokes) and labels."""
    rng = np.random.default_rng(seed)
    strokes, steps = 3, 24
    start = rng.uniform(5, size - 5, (n, strokes, 1, 2))
    end = rng.uniform(5, size - 5, (n, strokes, 1, 2))
    t = np.linspace(0.0, 1.0, steps).reshape(1, 1, steps, 1)
    points = np.rint(start + (end - start) * t).astype(np.intp).reshape(n, -1, 2)
    canvas = np.zeros((n, size + 2, size + 2), dtype=np.float64)
    image = np.repeat(np.arange(n), points.shape[1])
    np.add.at(canvas, (image, points[..., 0].ravel() + 1, points[..., 1].ravel() + 1), 1.0)
    blurred = sum(
        canvas[:, 1 + dy : size + 1 + dy, 1 + dx : size + 1 + dx]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )
    peak = np.maximum(np.asarray(blurred).reshape(n, -1).max(axis=1), 1.0).reshape(n, 1, 1)
    pixels = np.clip(np.asarray(blurred) / peak * 255 * 1.5, 0, 255).astype(np.uint8)
    labels = rng.integers(0, 10, n).astype(np.int64)
    return pixels, labels
