"""Label-error scores of a whole dataset in bounded memory: fitted on a sample, all scored.

The model (:mod:`catalog.audit.label_model`) is fitted on a stratified random sample of at
most :data:`SAMPLE` train images (all of them when there are fewer; every image when there
is no train split), drawn per label in proportion from ``seed``:

* the principal components are fitted on the sample's pixels;
* sample images are judged by 5-fold cross-fitting within the sample;
* every other image is judged by the model fitted on the whole sample, its pixels streamed
  from the catalog block by block, so it never saw them either.

So every image is judged out of sample, and memory is the sample's features (60,000 x 50
float32: 12 MB) and a block of pixels at a time, plus a few numbers per image, whatever
the size of the dataset. On MNIST (60,000 train images) this is exactly cross-fitting on all
of train and a model of all of train for test, as before.

Time is the six fits on the sample (a constant: they take the same time at 70,000 images as
at a million) plus one streamed pass that projects and scores the rest (linear). The six
fits are independent and seeded each, so they run :data:`FIT_THREADS` at a time, each with
one BLAS thread (its mini-batch products are too small to share): the same result, in
about half the time on two cores.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from catalog.audit.features import PcaFit, fit_pca_blocks, project
from catalog.audit.images import DatasetImages
from catalog.audit.label_model import (
    FOLDS,
    Method,
    Predictor,
    fit_predictor,
    one_blas_thread,
    out_of_sample_probabilities,
)

__all__ = [
    "FIT_THREADS",
    "SAMPLE",
    "StreamedScores",
    "score_images",
    "score_label_errors",
    "stratified_sample",
]

SAMPLE = 60_000
"""Most train images the label model is fitted on (the rest are scored by it)."""

FIT_THREADS = min(2, os.cpu_count() or 1)
"""Fits run at once (numpy lets go of the GIL in the products that are most of a fit)."""


@dataclass(frozen=True)
class StreamedScores:
    """Per-image result of :func:`score_label_errors`, aligned with the dataset's images.

    Attributes
    ----------
    suggested
        ``(N,)`` most probable label other than the given one.
    score
        ``(N,)`` ``p(suggested) - p(given)`` out of sample; higher is more suspicious.
    sampled
        ``(N,)`` True for the images the model was fitted on (judged by cross-fitting).
    """

    suggested: npt.NDArray[np.int64]
    score: npt.NDArray[np.float64]
    sampled: npt.NDArray[np.bool_]
    pca: PcaFit | None = None  # the features the model sees
    predict: Predictor | None = None  # the model of the whole sample (None: nothing outside)

    def ranked(self) -> npt.NDArray[np.int64]:
        """Positions by decreasing score, ties broken by position."""
        return np.lexsort((np.arange(len(self.score)), -self.score)).astype(np.int64)


def stratified_sample(
    labels: npt.NDArray[np.int64], pool: npt.NDArray[np.int64], size: int, seed: int
) -> npt.NDArray[np.int64]:
    """Up to ``size`` positions of ``pool``, each label in proportion, sorted.

    >>> labels = np.array([0] * 6 + [1] * 3)
    >>> stratified_sample(labels, np.arange(9), 6, seed=0).tolist()  # four 0s, two 1s
    [2, 3, 4, 5, 6, 7]
    """
    if len(pool) <= size:
        return np.sort(pool)
    rng = np.random.default_rng(seed)
    picked: list[npt.NDArray[np.int64]] = []
    for label in np.unique(labels[pool]).tolist():
        members = pool[labels[pool] == label]
        take = max(1, round(len(members) * size / len(pool)))
        picked.append(rng.permutation(members)[:take])
    return np.sort(np.concatenate(picked))


def score_label_errors(
    data: DatasetImages,
    *,
    method: Method = "mlp",
    seed: int = 0,
    sample: int = SAMPLE,
    progress: Callable[[int], None] | None = None,
) -> StreamedScores:
    """Score every image of ``data`` by how likely its label is wrong (see the module).

    Raises
    ------
    ValueError
        If the images have different sizes or the sample has fewer than 10 images.
    """
    labels = data.labels
    classes = int(labels.max()) + 1 if len(labels) else 1
    train = np.flatnonzero(data.splits == "train")
    pool = train if len(train) else np.arange(len(labels))
    fitted = stratified_sample(labels, pool, sample, seed)
    # The sample's pixels are read in blocks (three times) rather than held.
    pca = fit_pca_blocks(lambda: (block for _, block in data.blocks(fitted)))
    features = np.concatenate([project(pca, block) for _, block in data.blocks(fitted)])
    fit_y = labels[fitted]
    # One BLAS thread for all the fits at once: per fit, threadpoolctl would restore the
    # setting while another fit still runs.
    with one_blas_thread(), ThreadPoolExecutor(FIT_THREADS) as fits:
        # The model of the whole sample, for the images outside it (if any).
        whole = (
            fits.submit(fit_predictor, method, features, fit_y, classes, (seed, FOLDS))
            if len(fitted) < len(labels)
            else None
        )
        probabilities = out_of_sample_probabilities(
            features, fit_y, np.zeros(len(fitted), bool), classes, method=method, seed=seed,
            progress=progress, mapper=fits.map,
        )  # fmt: skip
        predict = None if whole is None else whole.result()
    suggested = np.zeros(len(labels), np.int64)
    score = np.zeros(len(labels), np.float64)
    suggested[fitted], score[fitted] = _margins(probabilities, fit_y)
    sampled = np.zeros(len(labels), bool)
    sampled[fitted] = True
    if predict is None:
        return StreamedScores(suggested, score, sampled, pca)
    del features
    score_images(data, ~sampled, pca, predict, suggested, score, progress)
    return StreamedScores(suggested, score, sampled, pca, predict)


def score_images(
    data: DatasetImages,
    todo: npt.NDArray[np.bool_],
    pca: PcaFit,
    predict: Predictor,
    suggested: npt.NDArray[np.int64],
    score: npt.NDArray[np.float64],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Score the images where ``todo`` with a fitted model, into ``suggested`` and ``score``.

    Most of the images are streamed in order; a few (a sampled train split's rest, an
    ingest's new images) are read by id.
    """
    rest = np.flatnonzero(todo)
    source = data.blocks() if len(rest) > len(todo) // 2 else data.blocks(rest)
    for positions, block in source:
        wanted = todo[positions]
        if not wanted.any():
            continue
        at = positions[wanted]
        probs = predict(project(pca, block[wanted]))
        suggested[at], score[at] = _margins(probs, data.labels[at])
        if progress is not None:
            progress(len(at))


def _margins(
    probabilities: npt.NDArray[np.float64], given: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The most probable other label and ``p(it) - p(given)``, per row."""
    rows = np.arange(len(given))
    p_given = probabilities[rows, given]
    others = probabilities.copy()
    others[rows, given] = -np.inf
    suggested = others.argmax(axis=1).astype(np.int64)
    return suggested, probabilities[rows, suggested] - p_given
