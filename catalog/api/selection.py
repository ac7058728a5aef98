"""Some images of a catalog: :class:`CatalogSelection`, what :meth:`catalog.Catalog.select`
returns, to count, list, load, curate or export. ``Catalog.select`` makes them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from sqlalchemy import Engine

from catalog.curation import decisions
from catalog.curation import log as decision_log
from catalog.curation.decisions import Change, Summary
from catalog.db.engine import check_writable, session_scope
from catalog.facts.label_sets import LabelSet, label_set
from catalog.select.counts import count_images, count_left_out, count_selected
from catalog.select.filters import selection_dataset
from catalog.selection import Selection

if TYPE_CHECKING:  # Pillow and the writers are imported where used: not for a count
    import numpy as np
    import numpy.typing as npt
    from PIL import Image as PILImage

    from catalog.api.training import SelectionDataset
    from catalog.export.formats import ExportResult, ExportSettings
    from catalog.select.records import ImageRow


class CatalogSelection:
    """Some images of a catalog, to count, list, load or export."""

    def __init__(self, engine: Engine, selection: Selection) -> None:
        self.engine = engine
        self.selection = selection

    def count(self) -> int:
        with session_scope(self.engine) as session:
            return count_selected(session, self.selection)

    def left_out(self) -> int:
        """How many images the filters match that are left out as excluded."""
        with session_scope(self.engine) as session:
            return count_left_out(session, self.selection)

    def _decide(self, action: str, tag: str | None, note: str | None, by: str | None) -> Summary:
        from catalog.select.ids import select_ids

        with session_scope(self.engine, write=True) as session:
            decisions.lock(session)
            ids = select_ids(session, self.selection).tolist()
            if action == "untag":
                assert tag is not None
                changes = decision_log.untag_changes(session, ids, tag, note)
            else:
                changes = [Change(image, action, tag=tag, note=note) for image in ids]
            return decisions.record(session, changes, author=by)

    def tag(self, name: str, *, note: str | None = None, by: str | None = None) -> Summary:
        """Put tag ``name`` on every selected image."""
        return self._decide("tag", decisions.check_tag(name), note, by)

    def untag(self, name: str, *, note: str | None = None, by: str | None = None) -> Summary:
        """Take tag ``name`` off every selected image that carries it."""
        return self._decide("untag", name, note, by)

    def exclude(self, *, reason: str, by: str | None = None) -> Summary:
        """Exclude every selected image."""
        return self._decide("exclude", None, reason, by)

    def include(self, *, note: str | None = None, by: str | None = None) -> Summary:
        """Include every selected image (select them with ``excluded="only"``)."""
        return self._decide("include", None, note, by)

    def counts(self, by: Sequence[str] = ("split", "label")) -> dict[tuple[Any, ...], int]:
        with session_scope(self.engine) as session:
            return dict(count_images(session, self.selection, by))

    def rows(self) -> list[ImageRow]:
        return list(self.iter_rows())

    def iter_rows(self) -> Iterator[ImageRow]:
        """Stream the rows a chunk at a time; the read stays open while you iterate."""
        from catalog.select.listings import iter_rows

        with session_scope(self.engine) as session:
            yield from iter_rows(session, self.selection)

    def ids(self) -> npt.NDArray[np.int64]:
        from catalog.select.ids import select_ids

        with session_scope(self.engine) as session:
            return select_ids(session, self.selection)

    def arrays(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        """Pixels as uint8 ``(N, H, W)`` and labels as int64 ``(N,)``, ready for training."""
        from catalog.select.reads import load_arrays

        with session_scope(self.engine) as session:
            return load_arrays(session, self.selection)

    def to_numpy(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        """The same as :meth:`arrays`."""
        return self.arrays()

    def dataset(
        self, transform: Callable[[Any], Any] | None = None, *, pil: bool = False
    ) -> SelectionDataset:
        """A map-style dataset of ``(image, label)`` for ``torch.utils.data.DataLoader``
        (see :class:`catalog.api.training.SelectionDataset`); the ids are fixed now.

        Images are uint8 ``(H, W)`` arrays, or PIL images with ``pil``; ``transform``
        is applied to each. Works with DataLoader worker processes.
        """
        from catalog.api.training import make_dataset

        return make_dataset(self.engine, self.selection, transform, pil)

    def to_hf(self) -> Any:
        """A Hugging Face ``datasets.Dataset`` (``image``, ``label`` with class names);
        needs ``pip install "mnist-catalog[hf]"``."""
        from catalog.api.training import to_hf

        return to_hf(self.engine, self.selection)

    def export(
        self, out_dir: str | Path, *, output: str = "folder", **settings: Unpack[ExportSettings]
    ) -> ExportResult:
        """Write the images into ``out_dir`` as ``output``: ``folder`` (image files),
        ``idx``, ``npz``, ``parquet`` or ``webdataset``; ``settings`` are those of
        :func:`catalog.export.export_images` (``layout``, ``fmt``, ``lists``, ``jobs``,
        ``progress`` ...)."""
        check_writable(self.engine)  # before a folder is made or a file written
        from catalog.export import export_images

        with session_scope(self.engine) as session:
            return export_images(session, self.selection, Path(out_dir), output=output, **settings)

    def export_holdout(
        self,
        out_dir: str | Path,
        by: str,
        fraction: float,
        *,
        output: str = "folder",
        **settings: Unpack[ExportSettings],
    ) -> dict[str, ExportResult]:
        """Write ``train/`` and ``val/`` under ``out_dir`` with no ``by`` group in both.

        The groups (values of the metadata key ``by``) are shuffled by the
        selection's seed and ``fraction`` of them held out as ``val``; each part
        is one recorded export whose selection names the holdout. The options are
        those of :meth:`export`.
        """
        results = {}
        for part in ("train", "val"):
            selection = replace(self.selection, holdout_by=by, holdout=fraction, holdout_part=part)
            results[part] = CatalogSelection(self.engine, selection).export(
                Path(out_dir) / part, output=output, **settings
            )
        return results

    def label_set(self) -> LabelSet:
        """The label set of the selection's dataset: numbers, names, ``parse``."""
        with session_scope(self.engine) as session:
            return label_set(session, selection_dataset(session, self.selection))

    def sheet(
        self, path: str | Path | None = None, *, cols: int = 20, scale: int = 2
    ) -> PILImage.Image:
        """A contact sheet of the selection; written as PNG to ``path`` if given."""
        picture, _ = self.contact_sheet(cols=cols, scale=scale)
        if path is not None:
            picture.save(Path(path), format="PNG")
        return picture

    def contact_sheet(self, *, cols: int = 20, scale: int = 2) -> tuple[PILImage.Image, int]:
        """The contact sheet and how many digits it shows."""
        with session_scope(self.engine) as session:
            from catalog.export.sheets import selection_sheet

            return selection_sheet(session, self.selection, cols=cols, scale=scale)
