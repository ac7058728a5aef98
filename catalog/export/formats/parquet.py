"""The ``parquet`` output format: the Hugging Face layout, one file per split.

``OUT/<split>.parquet`` with two columns, as ``datasets`` writes an image
classification set: ``image``, a struct of ``bytes`` (an 8-bit grayscale PNG,
exactly the catalog's pixels) and ``path`` (null), and ``label`` (int64; -1 for an
unlabeled image, which is what ``datasets``' ``ClassLabel`` means by no label). The
schema's ``huggingface`` metadata names the features (``Image`` and a
``ClassLabel`` with the dataset's class names), so
``datasets.load_dataset("parquet", data_files=...)`` gives images and named
classes. Row groups hold :data:`ROW_GROUP` images, so a streaming reader holds
one small group at a time. The manifest's ``path`` is ``<file>#<row>``. An export of a
version adds the schema metadata key ``mnist_catalog``: ``{"version", "content_id"}``.

A file already there whose PNGs another deflate wrote (same pixels, other
bytes) and whose other columns and metadata are equal is replaced without
``--overwrite`` (:func:`same_parquet`).

Needs pyarrow: ``pip install "mnist-catalog[parquet]"``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from catalog.errors import MissingExtraError
from catalog.export.background import Background
from catalog.export.container import (
    AtomicFile,
    ContainerExport,
    refuse_folder_options,
    split_runs,
)
from catalog.export.formats import ExportOptions, ExportResult
from catalog.export.pngs import encoded_blocks
from catalog.export.pool import default_jobs
from catalog.export.samepixels import same_pngs
from catalog.facts.label_sets import label_set
from catalog.select.filters import selection_dataset
from catalog.selection import Selection
from catalog.versions.freeze import version_stamp

#: Images per row group: about 250 KB of MNIST PNGs. (``datasets`` caps image
#: sets at 100 rows a group, sized for photographs; 1,000 digits are smaller
#: than 100 photographs, and fewer groups read faster.)
ROW_GROUP = 1000


def import_pyarrow() -> Any:
    """pyarrow and pyarrow.parquet, or a one-line error naming the extra."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        msg = 'Parquet output needs pyarrow: pip install "mnist-catalog[parquet]"'
        raise MissingExtraError(msg) from None
    return pa, pq


def hf_features(names: tuple[str, ...] | None) -> dict[str, Any]:
    """The ``huggingface`` schema metadata of an image classification set: the label a
    ``ClassLabel`` of ``names`` by position, or plain integers (``None``: a sparse set)."""
    label = (
        {"dtype": "int64", "_type": "Value"}
        if names is None
        else {"names": list(names), "_type": "ClassLabel"}
    )
    return {"info": {"features": {"image": {"_type": "Image"}, "label": label}}}


def same_parquet(existing: Path, written: Path) -> bool:
    """Whether two parquet files hold the same table: schema and metadata, every
    column but the PNG bytes equal, and PNGs of the same pixels."""
    pa, pq = import_pyarrow()
    try:
        old = pq.read_table(existing)
    except (pa.ArrowException, OSError):
        return False
    new = pq.read_table(written)
    if not old.schema.equals(new.schema, check_metadata=True) or old.num_rows != new.num_rows:
        return False
    if any(not old.column(name).equals(new.column(name)) for name in new.column_names[1:]):
        return False
    before, after = old.column("image").combine_chunks(), new.column("image").combine_chunks()
    return bool(before.field("path").equals(after.field("path"))) and same_pngs(
        before.field("bytes").to_pylist(), after.field("bytes").to_pylist()
    )


def write_parquet(
    session: Session, selection: Selection, out_dir: Path, options: ExportOptions
) -> ExportResult:
    """Write the selection as one parquet file per split (an
    :class:`~catalog.export.formats.OutputWriter`)."""
    refuse_folder_options(options, "parquet")
    pa, pq = import_pyarrow()
    labels = label_set(session, selection_dataset(session, selection))
    metadata = {"huggingface": json.dumps(hf_features(labels.by_position()))}
    stamp = version_stamp(session, selection)
    if stamp is not None:  # the version this file holds, as the manifest names it
        metadata["mnist_catalog"] = json.dumps({"version": stamp[0], "content_id": stamp[1]})
    schema = pa.schema(
        [
            ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
            ("label", pa.int64()),
        ],
        metadata=metadata,
    )
    with ContainerExport(
        session, selection, out_dir, options, "parquet", "png", same_parquet
    ) as export:
        splits: dict[str, SplitFile] = {}
        try:
            with Background() as background:
                for block, pngs, digests in encoded_blocks(export, options.jobs or default_jobs()):
                    for split, rows in split_runs(block):
                        if split not in splits:
                            file = export.open(f"{split}.parquet", int(block.ids[rows[0]]))
                            writer = pq.ParquetWriter(file.handle, schema, compression="snappy")
                            splits[split] = SplitFile(file, writer, pa, schema, background)
                        out, start, n = splits[split], splits[split].rows, len(rows)
                        if n == len(block):  # a block of one split: no copies
                            picked, their = pngs, digests
                        else:
                            part = rows.tolist()
                            picked, their = [pngs[i] for i in part], [digests[i] for i in part]
                        out.add(picked, block.labels[rows].tolist())
                        prefix = f"{split}.parquet#"
                        paths = [prefix + str(row) for row in range(start, start + n)]
                        export.add(block, rows, paths, their)
                for out in splits.values():
                    out.flush(everything=True)
                background.drain()
        finally:
            for out in splits.values():
                out.writer.close()
        return export.finish()


class SplitFile:
    """One split's parquet file: rows gathered into whole row groups of
    :data:`ROW_GROUP`, written by the export's writer thread."""

    def __init__(
        self, file: AtomicFile, writer: Any, pa: Any, schema: Any, background: Background
    ) -> None:
        self.file, self.writer, self.pa, self.schema = file, writer, pa, schema
        self.background = background
        self.pngs: list[bytes] = []
        self.labels: list[int] = []
        self.rows = 0  # rows added

    def add(self, pngs: list[bytes], labels: list[int]) -> None:
        self.pngs += pngs
        self.labels += labels
        self.rows += len(pngs)
        self.flush()

    def flush(self, everything: bool = False) -> None:
        """Hand the whole row groups gathered (with ``everything``, the rest too) to
        the writer thread."""
        n = len(self.pngs) if everything else len(self.pngs) // ROW_GROUP * ROW_GROUP
        if n == 0:
            return
        self.background.submit(self._write, self.pngs[:n], self.labels[:n])
        del self.pngs[:n], self.labels[:n]
        self.file.images += n

    def _write(self, pngs: list[bytes], labels: list[int]) -> None:
        pa, n = self.pa, len(pngs)
        # Arrays from their buffers: ``pa.array`` of a list checks for pandas
        # objects, which imports pandas (most of a second) on first use.
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum([len(png) for png in pngs], out=offsets[1:])
        data = pa.py_buffer(b"".join(pngs))
        image = pa.StructArray.from_arrays(
            [
                pa.BinaryArray.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), data]),
                pa.nulls(n, pa.string()),
            ],
            names=["bytes", "path"],
        )
        numbers = np.asarray(labels, dtype=np.int64)
        label = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(numbers)])
        table = pa.Table.from_arrays([image, label], schema=self.schema)
        self.writer.write_table(table, row_group_size=ROW_GROUP)
