"""A selection as training code takes it: a map-style dataset, numpy arrays, Hugging Face.

:class:`SelectionDataset` is what ``torch.utils.data.DataLoader`` wants
(``__len__``, ``__getitem__``, and ``__getitems__`` for a whole batch in one
query) without importing torch. It holds the selected ids, fixed when it is
made, and the catalog's URL; each process opens its own engine on first use,
so DataLoader workers (forked or spawned) never share a connection with the
parent. A fork is noticed by the process id: the inherited engine is dropped
without closing the parent's connections, as SQLAlchemy's pooling guide says.

>>> from catalog import Catalog
>>> data = Catalog.open("catalog.db").select(labels=[3, 5]).dataset()  # doctest: +SKIP
>>> image, label = data[0]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from catalog.db.engine import make_engine, session_scope
from catalog.errors import MissingExtraError
from catalog.select.filters import selection_dataset
from catalog.select.ids import select_ids
from catalog.select.reads import iter_pixel_blocks, load_by_ids
from catalog.selection import Selection

Transform = Callable[[Any], Any]


class SelectionDataset:
    """The selected images as ``(image, label)`` pairs, by position in the selection.

    Parameters
    ----------
    url
        The catalog's SQLAlchemy URL (with its password, if any: workers connect with it).
    ids
        The selected image ids, in selection order.
    transform
        Applied to each image (a uint8 ``(H, W)`` array, or a PIL image with ``pil``).
    pil
        Give images as PIL ``L`` images, as torchvision's MNIST does.
    version
        The version the ids were selected in: its frozen labels are the labels.
    """

    def __init__(
        self,
        url: str,
        ids: npt.NDArray[np.int64],
        transform: Transform | None = None,
        *,
        pil: bool = False,
        version: str | None = None,
    ) -> None:
        self.url = url
        self.version = version
        self.ids = ids
        self.transform = transform
        self.pil = pil
        self.engine: Engine | None = None
        self.pid = 0

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, position: int) -> tuple[Any, int]:
        if not -len(self.ids) <= position < len(self.ids):
            msg = f"index {position} out of range for a dataset of {len(self.ids)} images"
            raise IndexError(msg)
        return self.__getitems__([position])[0]

    def __getitems__(self, positions: Sequence[int]) -> list[tuple[Any, int]]:
        """Several items in one query (DataLoader calls this for a batch)."""
        ids = self.ids[np.asarray(positions, dtype=np.intp)].tolist()
        with session_scope(self.connect()) as session:
            block = load_by_ids(session, ids, Selection(version=self.version))
        items = []
        for pixels, label in zip(block.pixels, block.labels.tolist(), strict=True):
            image: Any = pixels.copy()  # writable, as torch.from_numpy wants
            if self.pil:
                from PIL import Image

                image = Image.fromarray(image)  # uint8 (H, W): mode L
            if self.transform is not None:
                image = self.transform(image)
            items.append((image, label))
        return items

    def connect(self) -> Engine:
        """This process's engine, made on first use (and again after a fork)."""
        if self.engine is None or self.pid != os.getpid():
            if self.engine is not None:
                self.engine.dispose(close=False)  # the parent's connections stay its own
            self.engine = make_engine(self.url)
            self.pid = os.getpid()
        return self.engine

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["engine"] = None  # each process connects for itself
        state["pid"] = 0
        return state

    def __repr__(self) -> str:
        return f"SelectionDataset({len(self.ids):,} images)"


def make_dataset(
    engine: Engine, selection: Selection, transform: Transform | None, pil: bool
) -> SelectionDataset:
    """A :class:`SelectionDataset` of ``selection`` in the catalog behind ``engine``."""
    with session_scope(engine) as session:
        ids = select_ids(session, selection)
    url = engine.url.render_as_string(hide_password=False)
    return SelectionDataset(url, ids, transform, pil=pil, version=selection.version)


def to_hf(engine: Engine, selection: Selection) -> Any:
    """The selection as a ``datasets.Dataset`` with ``image`` (PNG) and ``label``
    (``ClassLabel`` with the dataset's class names), as ``datasets`` loads MNIST."""
    try:
        import datasets
    except ModuleNotFoundError:
        msg = 'to_hf() needs Hugging Face datasets: pip install "mnist-catalog[hf]"'
        raise MissingExtraError(msg) from None
    from catalog.export.encoders import encode_pngs
    from catalog.facts.label_sets import label_set

    images: list[dict[str, Any]] = []
    labels: list[int] = []
    with session_scope(engine) as session:
        names = label_set(session, selection_dataset(session, selection)).by_position()
        for block in iter_pixel_blocks(session, selection):
            images += [{"bytes": png, "path": None} for png in encode_pngs(block.pixels)]
            labels += block.labels.tolist()
    # ClassLabel names label i at i; a sparse set (0 and 2,147,483,647) stays integers.
    label = datasets.Value("int64") if names is None else datasets.ClassLabel(names=list(names))
    features = datasets.Features({"image": datasets.Image(), "label": label})
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
