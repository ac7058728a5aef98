"""Selections by per-image metadata: filters (``writer=123``), N per group, and
group-disjoint holdouts (no writer in both train and val).

The SQL side adds one ``EXISTS`` per ``key=value`` filter to a selection's id
query; the sampling side works on numpy arrays of ids and their group values,
drawn by PCG64 from the seed, like every other sample of :mod:`catalog.select.ids`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from sqlalchemy import Select, and_, exists, select
from sqlalchemy.orm import Session

from catalog.db.models.family import ImageMetadata
from catalog.db.models.images import Image
from catalog.errors import SelectionError
from catalog.facts.metadata import check_key

if TYPE_CHECKING:  # numpy is imported where groups are drawn: a count filters without it
    import numpy as np
    import numpy.typing as npt

    from catalog.selection import Selection

AnySelect: TypeAlias = Select[Any]
#: Ids per round trip when reading group values.
CHUNK = 4096
PARTS = ("train", "val")


def parse_where(text: str) -> tuple[str, str]:
    """``"writer=123"`` -> ``("writer", "123")``.

    >>> parse_where("writer=123")
    ('writer', '123')
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        msg = f"--where {text!r} is not KEY=VALUE (e.g. writer=123)"
        raise SelectionError(msg)
    return check_key(key.strip(), "--where"), value.strip()


def filter_metadata(query: AnySelect, where: Sequence[tuple[str, str]]) -> AnySelect:
    """Keep the images that have every ``key=value`` of ``where``."""
    for key, value in where:
        query = query.where(
            exists().where(
                and_(
                    ImageMetadata.image_id == Image.id,
                    ImageMetadata.key == key,
                    ImageMetadata.value == value,
                )
            )
        )
    return query


def group_values(session: Session, ids: npt.NDArray[np.int64], key: str) -> npt.NDArray[np.object_]:
    """The value of ``key`` for each id, in the order of ``ids`` (None where absent)."""
    import numpy as np

    found: dict[int, str] = {}
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK].tolist()
        query = select(ImageMetadata.image_id, ImageMetadata.value).where(
            ImageMetadata.key == key, ImageMetadata.image_id.in_(part)
        )
        found.update((image_id, value) for image_id, value in session.execute(query))
    return np.array([found.get(i) for i in ids.tolist()], dtype=object)


def _require_values(values: npt.NDArray[np.object_], key: str, option: str) -> None:
    missing = int(sum(v is None for v in values.tolist()))
    if missing:
        msg = f"{option} {key}: {missing:,} of the selected images have no {key!r} metadata"
        raise SelectionError(msg)


def per_group(
    values: npt.NDArray[np.object_], n: int, rng: np.random.Generator, key: str
) -> npt.NDArray[np.int64]:
    """Positions of up to ``n`` random images of each group, grouped in value order."""
    import numpy as np

    _require_values(values, key, "--group-by")
    order = rng.permutation(len(values))
    codes = np.unique(values.astype(str), return_inverse=True)[1].reshape(-1)
    # Stable sort by group keeps the random order within each group.
    ranked = order[np.argsort(codes[order], kind="stable")]
    groups = codes[ranked]
    starts = np.searchsorted(groups, groups, side="left")
    keep = (np.arange(len(ranked)) - starts) < n
    return ranked[keep].astype(np.int64)


def holdout_mask(
    values: npt.NDArray[np.object_], fraction: float, seed: int, key: str
) -> npt.NDArray[np.bool_]:
    """True for the images whose group falls in the held-out part.

    Groups (distinct values, sorted) are shuffled by PCG64(seed); the first
    ``round(fraction * groups)`` of them (at least one) are held out, so no
    group is on both sides.
    """
    import numpy as np

    if not 0 < fraction < 1:
        msg = f"--holdout must be a fraction between 0 and 1, got {fraction}"
        raise SelectionError(msg)
    if not len(values):
        return np.zeros(0, dtype=bool)  # nothing selected: nothing to hold out
    _require_values(values, key, "--holdout-by")
    groups, codes = np.unique(values.astype(str), return_inverse=True)
    if len(groups) < 2:
        msg = f"--holdout-by {key}: the selection has {len(groups)} {key} value(s), need 2 or more"
        raise SelectionError(msg)
    rng = np.random.Generator(np.random.PCG64(seed))
    held = max(1, round(fraction * len(groups)))
    chosen = np.zeros(len(groups), dtype=bool)
    chosen[rng.permutation(len(groups))[:held]] = True
    return chosen[codes.reshape(-1)]


def holdout_part(
    session: Session,
    selection: Selection,
    ids: npt.NDArray[np.int64],
    labels: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Keep the ids of the selection's holdout part (``train``: the rest, ``val``: held out)."""
    key = selection.holdout_by or ""
    values = group_values(session, ids, key)
    held = holdout_mask(values, selection.holdout or 0.0, selection.seed, key)
    keep = held if selection.holdout_part == "val" else ~held
    return ids[keep], labels[keep]
