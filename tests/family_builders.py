"""Write small files in the layouts of the MNIST family, from their published descriptions.

- CSV: Kaggle Digit Recognizer (``label,pixel0..pixel783``; test.csv without
  ``label``) and the headerless ``mnist_train.csv`` (label, then 784 values).
- Parquet: the Hugging Face layout (``image`` struct of PNG ``bytes`` and
  ``path``, ``label``; the features JSON under the ``huggingface`` metadata key).
- EMNIST: ``gzip/emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte.gz``
  with images stored transposed, and ``emnist-<split>-mapping.txt``.
- QMNIST: images IDX and ``labels-idx2-int``: int32 N x 8.
- Kuzushiji: ``<name>-{train,test}-{imgs,labels}.npz`` with ``arr_0``, and
  ``<name>_classmap.csv``.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from builders import idx_bytes
from PIL import Image


def write_csv(
    path: Path,
    pixels: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64] | None,
    header: str = "kaggle",
    extra: Mapping[str, Sequence[object]] | None = None,
) -> Path:
    """``header``: ``kaggle`` (label,pixel0...), ``rxc`` (label,1x1...) or ``none``."""
    n = len(pixels)
    flat = pixels.reshape(n, -1)
    side = pixels.shape[1]
    if not extra and n > 1000:
        return _write_csv_fast(path, flat, labels, header, side)
    lines = []
    if header != "none":
        names = (
            [f"pixel{i}" for i in range(flat.shape[1])]
            if header == "kaggle"
            else [f"{r}x{c}" for r in range(1, side + 1) for c in range(1, side + 1)]
        )
        lines.append(",".join([*(["label"] if labels is not None else []), *names, *(extra or {})]))
    for i in range(n):
        fields = [str(int(labels[i]))] if labels is not None else []
        fields += [str(v) for v in flat[i].tolist()]
        fields += [str(values[i]) for values in (extra or {}).values()]
        lines.append(",".join(fields))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


_DECIMAL = np.array([str(i) for i in range(256)], dtype=object)


def _write_csv_fast(
    path: Path,
    flat: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64] | None,
    header: str,
    side: int,
) -> Path:
    """The same text as :func:`write_csv`, a row at a time through a lookup table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        if header != "none":
            names = (
                [f"pixel{i}" for i in range(flat.shape[1])]
                if header == "kaggle"
                else [f"{r}x{c}" for r in range(1, side + 1) for c in range(1, side + 1)]
            )
            out.write(",".join([*(["label"] if labels is not None else []), *names]) + "\n")
        for i, row in enumerate(flat):
            prefix = f"{int(labels[i])}," if labels is not None else ""
            out.write(prefix + ",".join(_DECIMAL[row]) + "\n")
    return path


def png_bytes(image: npt.NDArray[np.uint8]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image, mode="L").save(out, format="PNG")
    return out.getvalue()


def write_parquet(
    path: Path,
    pixels: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64] | None,
    names: Sequence[str] | None = None,
    row_group_size: int = 1000,
) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = pa.array(
        [{"bytes": png_bytes(p), "path": f"{i}.png"} for i, p in enumerate(pixels)],
        type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    )
    columns = {"image": images}
    features: dict[str, object] = {"image": {"_type": "Image"}}
    if labels is not None:
        columns["label"] = pa.array(np.asarray(labels, dtype=np.int64))
        features["label"] = (
            {"names": list(names), "_type": "ClassLabel"}
            if names
            else {"dtype": "int64", "_type": "Value"}
        )
    table = pa.table(columns)
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def emnist_members(
    subset: str, splits: Mapping[str, tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]]
) -> dict[str, bytes]:
    """File name -> gz bytes, images stored transposed as EMNIST publishes them."""
    files: dict[str, bytes] = {}
    for split, (pixels, labels) in splits.items():
        transposed = np.ascontiguousarray(pixels.transpose(0, 2, 1))
        files[f"emnist-{subset}-{split}-images-idx3-ubyte.gz"] = gzip.compress(
            idx_bytes(transposed), mtime=0
        )
        files[f"emnist-{subset}-{split}-labels-idx1-ubyte.gz"] = gzip.compress(
            idx_bytes(np.asarray(labels, dtype=np.uint8)), mtime=0
        )
    return files


def mapping_text(names: Mapping[int, Sequence[int]]) -> str:
    return "".join(f"{n} {' '.join(map(str, codes))}\n" for n, codes in names.items())


def write_emnist_zip(path: Path, subsets: Mapping[str, tuple[dict[str, bytes], str]]) -> Path:
    """``subsets``: name -> (members from :func:`emnist_members`, mapping text)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for subset, (members, mapping) in subsets.items():
            for name, data in members.items():
                archive.writestr(f"gzip/{name}", data)
            archive.writestr(f"gzip/emnist-{subset}-mapping.txt", mapping)
    return path


def write_qmnist(
    folder: Path, split: str, pixels: npt.NDArray[np.uint8], extended: npt.NDArray[np.int32]
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "xnist" if split == "xnist" else f"qmnist-{split}"
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(pixels), mtime=0)
    )
    labels = idx_bytes(np.asarray(extended, dtype=np.int32))
    (folder / f"{prefix}-labels-idx2-int.gz").write_bytes(gzip.compress(labels, mtime=0))
    return folder


def write_kuzushiji(
    folder: Path,
    name: str,
    split: str,
    pixels: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.integer],
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{name}-{split}-imgs.npz").open("wb") as out:
        np.savez_compressed(out, pixels)
    with (folder / f"{name}-{split}-labels.npz").open("wb") as out:
        np.savez_compressed(out, labels)
    return folder
