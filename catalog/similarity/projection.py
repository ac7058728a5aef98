"""A 2-D map of a selection, for the web view's map: each drawn image's place on a plane
where images of one class gather and a mislabelled image sits among another class.

At most ``cap`` images are drawn: a larger selection is sampled first (seeded, so the
same URL draws the same points), then only the sample is read. :func:`map_inputs` reads
the sample's pooled pixels (:mod:`catalog.similarity.layout`; images of mixed sizes fall
back to their embeddings, stored or computed in memory, nothing written) and current
labels; :func:`quick_map` lays them out at once (Fisher's discriminant), :func:`tsne_map`
well but slowly (t-SNE, when openTSNE is installed). :func:`principal_plane` (PCA, the
first map's layout) stays for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.db.models.decisions import Decision
from catalog.db.models.images import Image
from catalog.errors import SelectionError
from catalog.select.filters import CURRENT_LABEL, with_state
from catalog.select.ids import id_chunks, select_ids
from catalog.select.reads import pixels_of
from catalog.selection import Selection
from catalog.similarity.embed import embed_pixels
from catalog.similarity.layout import (
    TSNE_MIN_POINTS,
    fisher_plane,
    pooled_pixels,
    tsne_available,
    tsne_plane,
)
from catalog.similarity.vectors import load_embeddings_of

#: Points drawn unless asked otherwise, and the most a map may ask for.
MAP_POINTS = 20_000


#: What each layout is, as the page says it.
METHODS = {
    "tsne": "t-SNE (openTSNE) of the pooled pixels' first 50 principal components",
    "fisher": "Fisher's linear discriminant (LDA) of the pooled pixels under the current "
    "labels, top two axes",
    "pca": "PCA of the features (first two principal axes)",
}


@dataclass(frozen=True)
class MapInputs:
    """What a layout needs: the drawn images, their features and current labels."""

    ids: npt.NDArray[np.int64]  # (n,)
    features: npt.NDArray[np.float32]  # (n, d)
    labels: npt.NDArray[np.int64]  # (n,) current labels, -1 for an unlabeled image
    total: int  # images in the selection (n of them drawn)


@dataclass(frozen=True)
class MapPoints:
    """The drawn images and where: ``xy[i]`` is image ``ids[i]``'s place, scaled to [0, 1]."""

    ids: npt.NDArray[np.int64]  # (n,)
    xy: npt.NDArray[np.float32]  # (n, 2)
    labels: npt.NDArray[np.int64]  # (n,) current labels, -1 for an unlabeled image
    total: int  # images in the selection (n of them drawn)
    method: str  # a key of METHODS
    pending: bool = False  # a better layout (t-SNE) is being computed


def sample_ids(ids: npt.NDArray[np.int64], cap: int, seed: int) -> npt.NDArray[np.int64]:
    """At most ``cap`` of ``ids``, drawn without replacement, kept in their order."""
    if len(ids) <= cap:
        return ids
    rng = np.random.Generator(np.random.PCG64(seed))
    return ids[np.sort(rng.choice(len(ids), size=cap, replace=False))]


def principal_plane(
    vectors: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.float32], tuple[float, float]]:
    """``vectors`` projected on their first two principal axes, and each axis's share.

    The axes are the top eigenvectors of the ``d x d`` covariance matrix (``eigh``): the
    same plane as an SVD of the centred data, at a fraction of the work for ``n >> d``.
    """
    if len(vectors) == 0:
        return np.zeros((0, 2), np.float32), (0.0, 0.0)
    centred = vectors.astype(np.float64) - vectors.mean(axis=0)
    values, axes = np.linalg.eigh(centred.T @ centred)  # eigenvalues in ascending order
    top = axes[:, ::-1][:, :2]
    plane = np.zeros((len(vectors), 2), np.float64)
    plane[:, : top.shape[1]] = centred @ top
    variance = np.clip(values[::-1], 0, None)
    share = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
    share = np.pad(share, (0, 2 - len(share)))
    return plane.astype(np.float32), (round(float(share[0]), 4), round(float(share[1]), 4))


def _scaled(plane: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Each axis mapped to [0, 1] (a flat axis to 0.5)."""
    if len(plane) == 0:
        return plane
    low, high = plane.min(axis=0), plane.max(axis=0)
    span = np.where(high > low, high - low, 1)
    scaled: npt.NDArray[np.float32] = ((plane - low) / span).astype(np.float32)
    scaled[:, high <= low] = 0.5
    return scaled


def catalog_version(session: Session) -> tuple[int, int]:
    """(newest image id, newest decision id): a map drawn at one version holds at it."""
    image = session.scalar(select(func.max(Image.id)))
    decision = session.scalar(select(func.max(Decision.id)))
    return int(image or 0), int(decision or 0)


def map_inputs(
    session: Session, selection: Selection, *, cap: int = MAP_POINTS, seed: int = 0
) -> MapInputs:
    """The features and labels of at most ``cap`` of ``selection``'s images."""
    ids = select_ids(session, selection)
    drawn = sample_ids(ids, cap, seed)
    try:
        features = pooled_pixels(pixels_of(session, drawn))
    except SelectionError:  # images of several sizes: their embeddings have one size
        features = _embeddings(session, drawn)
    return MapInputs(drawn, features, _labels_of(session, drawn), len(ids))


def quick_map(inputs: MapInputs, *, pending: bool = False) -> MapPoints:
    """The layout drawn at once: Fisher's discriminant, or PCA if under two classes."""
    plane = fisher_plane(inputs.features, inputs.labels) if len(inputs.ids) > 2 else None
    method = "fisher"
    if plane is None:
        plane, method = principal_plane(inputs.features)[0], "pca"
    return MapPoints(
        inputs.ids, _scaled(plane), inputs.labels, inputs.total, method, pending=pending
    )


def wants_tsne(inputs: MapInputs) -> bool:
    """Whether a t-SNE layout of ``inputs`` can be drawn (enough points, openTSNE)."""
    return len(inputs.ids) >= TSNE_MIN_POINTS and tsne_available()


def tsne_map(inputs: MapInputs, *, seed: int = 0) -> MapPoints:
    """The good layout: t-SNE of the features (needs :func:`wants_tsne`)."""
    plane = tsne_plane(inputs.features, seed=seed)
    return MapPoints(inputs.ids, _scaled(plane), inputs.labels, inputs.total, "tsne")


def map_points(
    session: Session, selection: Selection, *, cap: int = MAP_POINTS, seed: int = 0
) -> MapPoints:
    """The map of ``selection`` at once: t-SNE when it can, else the quick layout."""
    inputs = map_inputs(session, selection, cap=cap, seed=seed)
    return tsne_map(inputs, seed=seed) if wants_tsne(inputs) else quick_map(inputs)


def _embeddings(session: Session, drawn: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """The stored embeddings of ``drawn``, in that order; a missing one computed now."""
    stored = load_embeddings_of(session, drawn)
    vectors = np.zeros((len(drawn), stored.vectors.shape[1]), np.float32)
    has = np.isin(drawn, stored.ids)
    position = {int(i): row for row, i in enumerate(drawn.tolist())}
    rows = np.fromiter((position[int(i)] for i in stored.ids.tolist()), np.int64, len(stored))
    vectors[rows] = stored.vectors
    if not has.all():
        vectors[~has] = embed_pixels(pixels_of(session, drawn[~has]))
    return vectors


def _labels_of(session: Session, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The current label of each of ``ids`` (-1: unlabeled), in that order."""
    found: dict[int, int] = {}
    for chunk in id_chunks(ids):
        query = with_state(select(Image.id, CURRENT_LABEL)).where(Image.id.in_(chunk.tolist()))
        found.update(
            {int(i): -1 if label is None else int(label) for i, label in session.execute(query)}
        )
    return np.fromiter((found.get(i, -1) for i in ids.tolist()), np.int64, len(ids))
